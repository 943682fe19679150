//! The browser side (feature `hydrate`; rendered on the server too for the first paint): the
//! page shell, the `/live` socket client, the pure live model and its trace buffer, chart and
//! virtual-scroll geometry, formatting, and the components that render the model.

pub mod app;
pub mod chart;
pub mod components;
pub mod controls;
pub mod format;
#[cfg(feature = "hydrate")]
mod live_client;
pub mod model;
pub mod trace_buffer;
pub mod virtual_scroll;
