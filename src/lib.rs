#![recursion_limit = "256"]
//! sockscope: real-time observability for WebSocket traffic.
//!
//! Data path: tap → [`server::ingest`] → [`server::aggregator`] → [`server::hub`] → `/live`
//! → [`model`] (browser) → [`components`].

pub mod app;
pub mod chart;
#[cfg(feature = "ssr")]
pub mod cli;
pub mod close_code;
pub mod components;
pub mod decode;
#[cfg(feature = "ssr")]
pub mod demo;
pub mod format;
#[cfg(feature = "hydrate")]
mod live_client;
#[cfg(feature = "ssr")]
pub mod load;
pub mod model;
pub mod protocol;
#[cfg(feature = "ssr")]
pub mod proxy;
#[cfg(feature = "ssr")]
pub mod sample_app;
#[cfg(feature = "ssr")]
pub mod server;
pub mod trace_buffer;
pub mod virtual_scroll;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
