//! Dashboard widgets. Each renders part of the live model; none holds logic of its own.
//! Everything a tap supplied is rendered as text nodes, never as HTML.

mod charts;
mod detail;
mod json;
mod overview;
mod status;
mod table;
#[cfg(all(test, feature = "ssr"))]
mod tests;
mod trace;

pub use charts::Charts;
pub use detail::DetailPanel;
pub use overview::Overview;
pub use status::{SessionBadge, StatusBadge};
pub use table::ConnTable;
pub use trace::TracePanel;
