//! The observer server: ingest → aggregator → hub → `/live`, plus the API and the dashboard.

pub(crate) mod aggregator;
pub(crate) mod api;
pub(crate) mod apigw;
pub(crate) mod assets;
pub(crate) mod auth;
pub mod bus;
pub mod config;
pub(crate) mod error;
pub(crate) mod export;
pub(crate) mod history;
mod history_export;
mod history_trace;
pub(crate) mod ingest;
pub(crate) mod listen;
pub(crate) mod live;
mod past;
pub mod record;
pub(crate) mod scrub;
pub mod tls;

pub use assets::embedded as dashboard_embedded;
pub use auth::config::AuthConfig;
pub use auth::login::hash_password;
pub use auth::SESSION_COOKIES;

use crate::dashboard::app::{shell, App};
use aggregator::Aggregator;
use auth::Auth;
use axum::extract::FromRef;
use axum::routing::{get, post};
use axum::Router;
use config::ObserverConfig;
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Shared by every handler: the aggregator handle, the configuration and the door.
#[derive(Clone)]
pub(crate) struct AppState {
    pub agg: Aggregator,
    pub config: Arc<ObserverConfig>,
    pub leptos: LeptosOptions,
    pub auth: Arc<Auth>,
    /// Tap sessions and browsers connected now, for `--max-taps` / `--max-browsers`.
    pub taps: Arc<AtomicUsize>,
    pub browsers: Arc<AtomicUsize>,
    /// The per-tap events/s limit (`--max-tap-events-per-sec`), keyed by source id.
    pub tap_rate: Option<Arc<governor::DefaultKeyedRateLimiter<Arc<str>>>>,
    /// Where accepted tap frames are recorded (off unless `--data-dir`).
    pub recorder: record::Recorder,
}

/// One place held in a bounded set (tap sessions, browsers); released on drop.
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a place unless `max` are taken.
    pub fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(s: &AppState) -> Self {
        s.leptos.clone()
    }
}

/// Builds the whole observer router and starts its aggregator task (without a record; see
/// [`serve`]).
pub fn router(config: ObserverConfig) -> Router {
    build(config, None)
}

/// The router, with the record opened by [`serve`] when the config asks for one.
fn build(config: ObserverConfig, record: Option<record::Opened>) -> Router {
    let leptos = LeptosOptions::builder()
        .output_name("sockscope")
        .site_root(
            config
                .site_root
                .as_ref()
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default(),
        )
        .site_pkg_dir("pkg")
        .site_addr(config.listen)
        .build();
    let tap_rate = std::num::NonZeroU32::new(config.max_tap_events_per_sec).map(|per_s| {
        // A burst of one second, and never less than one whole batch.
        let burst = per_s.max(
            std::num::NonZeroU32::new(config.wire.max_events.min(u32::MAX as usize) as u32)
                .unwrap_or(per_s),
        );
        let quota = governor::Quota::per_second(per_s).allow_burst(burst);
        Arc::new(governor::RateLimiter::keyed(quota))
    });
    let (recorder, restore) = match record {
        Some(o) => (o.recorder, Some(o.restore)),
        None => (record::Recorder::default(), None),
    };
    let state = AppState {
        agg: Aggregator::spawn_restoring(config.agg.clone(), restore),
        recorder,
        auth: Arc::new(Auth::new(config.auth.clone())),
        config: Arc::new(config),
        leptos: leptos.clone(),
        taps: Arc::default(),
        browsers: Arc::default(),
        tap_rate,
    };
    if let Some(b) = &state.config.bus {
        bus::spawn(b.clone(), state.clone());
    }
    let routes = generate_route_list(App);
    Router::new()
        .route("/login", get(auth::login::login_page))
        .route("/auth/login", post(auth::login::login))
        .route("/auth/logout", post(auth::login::logout))
        .route("/api/me", get(auth::login::me))
        .route("/ingest", get(ingest::ingest_ws).post(ingest::ingest_post))
        .route("/ingest/apigw", axum::routing::post(apigw::ingest_apigw))
        .route("/live", get(live::live_ws))
        .route("/api/overview", get(api::overview))
        .route("/api/sources", get(api::sources))
        .route("/api/series", get(api::series))
        .route("/api/connections", get(api::connections))
        .route("/api/connections/{id}", get(api::connection))
        .route("/api/trace", get(api::trace))
        .route("/api/history/connections", get(history::connections))
        .route("/api/history/events", get(history::events))
        .route("/api/history/trace", get(history_trace::trace))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route("/api/export", get(export::export))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_frame_bytes,
        ))
        .leptos_routes(&state, routes, move || shell(leptos.clone()))
        .fallback(assets::fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .with_state(state)
}

/// Serves the observer on an already bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ObserverConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = config.tls.clone();
    let limits = listen::ClientLimits {
        max_clients: config.max_clients,
        header_timeout: config.header_timeout,
    };
    let record = match &config.record {
        Some(r) => Some(record::open(r).map_err(|e| std::io::Error::other(format!("{e:#}")))?),
        None => None,
    };
    let recorder = record.as_ref().map(|o| o.recorder.clone());
    let app = build(config, record);
    let served = match tls {
        Some(files) => {
            let first = tls::load(&files).map_err(std::io::Error::other)?;
            let listener = tls::listen(listener, files, first);
            listen::serve_on(listener, app, limits, shutdown).await
        }
        None => listen::serve_on(listener, app, limits, shutdown).await,
    };
    // What ingest accepted until the end is on disk before the process goes.
    if let Some(r) = recorder {
        let flushed = tokio::task::spawn_blocking(move || r.flush(Duration::from_secs(5)))
            .await
            .unwrap_or(false);
        if !flushed {
            tracing::warn!("the record could not be flushed at shutdown");
        }
    }
    served
}
