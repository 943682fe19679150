//! Dashboard widgets. Each renders part of the live model; none holds logic of its own.
//! Everything a tap supplied is rendered as text nodes, never as HTML.
// `#[component]` expands to `pub` props structs whatever the function's visibility.
#![allow(unreachable_pub)]

mod charts;
mod detail;
mod history;
mod json;
mod overview;
mod past;
mod status;
mod table;
#[cfg(all(test, feature = "ssr"))]
mod tests;
mod trace;

pub(crate) use charts::Charts;
pub(crate) use detail::DetailPanel;
pub(crate) use history::HistoryPanel;
pub(crate) use overview::Overview;
pub(crate) use past::PastBanner;
pub(crate) use status::{SessionBadge, StatusBadge};
pub(crate) use table::ConnTable;
pub(crate) use trace::TracePanel;
