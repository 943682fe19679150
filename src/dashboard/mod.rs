//! The browser side (feature `hydrate`; rendered on the server too for the first paint): the
//! page shell, the `/live` socket client, the pure live model and its trace buffer, chart and
//! virtual-scroll geometry, formatting, and the components that render the model.

pub(crate) mod app;
pub(crate) mod chart;
pub(crate) mod components;
pub(crate) mod controls;
pub(crate) mod format;
pub(crate) mod history_search;
#[cfg(feature = "hydrate")]
mod live_client;
pub(crate) mod model;
pub(crate) mod trace_buffer;
pub(crate) mod virtual_scroll;
