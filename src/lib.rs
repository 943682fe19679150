#![recursion_limit = "256"]
#![warn(unreachable_pub)]
//! sockscope: real-time observability for WebSocket traffic.
//!
//! The rooms, in dependency order (each uses only the ones above it):
//! - [`protocol`]: types both sides share: the `/live` frames, API rows, views, close codes.
//! - [`dashboard`]: the browser: page shell, `/live` client, live model, components.
//! - [`flags`] (server side from here on): helpers every command's settings use.
//! - [`server`]: the observer: ingest → aggregator (with its hub) → `/live`, API, auth.
//! - [`proxy`]: the tapped reverse proxy (its tap is `sockscope-tap`, in `crates/tap`).
//! - [`cli`]: the command line, config files, and the CLI-only tools (demo, sample app, load).
//!
//! A tap event's path: `crates/tap` → `server::ingest` → `server::aggregator` →
//! `server::aggregator::hub` → `server::live` → `dashboard::model` → `dashboard::components`.

pub(crate) mod dashboard;
pub mod protocol;

#[cfg(feature = "ssr")]
pub mod cli;
#[cfg(feature = "ssr")]
pub(crate) mod client_ip;
#[cfg(feature = "ssr")]
pub(crate) mod flags;
#[cfg(feature = "ssr")]
pub mod proxy;
#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(dashboard::app::App);
}
