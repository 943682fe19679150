//! The observer server: ingest → aggregator → hub → `/live`, plus the API and the dashboard.

pub mod aggregator;
pub mod api;
pub mod apigw;
pub mod config;
pub mod export;
pub mod hub;
pub mod ingest;
pub mod live;

use crate::app::{shell, App};
use aggregator::Aggregator;
use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use config::ObserverConfig;
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::Arc;

/// Shared by every handler: the aggregator handle and the configuration.
#[derive(Clone)]
pub struct AppState {
    pub agg: Aggregator,
    pub config: Arc<ObserverConfig>,
    pub leptos: LeptosOptions,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(s: &AppState) -> Self {
        s.leptos.clone()
    }
}

/// Builds the whole observer router and starts its aggregator task.
pub fn router(config: ObserverConfig) -> Router {
    let leptos = LeptosOptions::builder()
        .output_name("sockscope")
        .site_root(config.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(config.listen)
        .build();
    let state = AppState {
        agg: Aggregator::spawn(config.agg.clone()),
        config: Arc::new(config),
        leptos: leptos.clone(),
    };
    let routes = generate_route_list(App);
    Router::new()
        .route("/ingest", get(ingest::ingest_ws).post(ingest::ingest_post))
        .route("/ingest/apigw", axum::routing::post(apigw::ingest_apigw))
        .route("/live", get(live::live_ws))
        .route("/api/overview", get(api::overview))
        .route("/api/sources", get(api::sources))
        .route("/api/series", get(api::series))
        .route("/api/connections", get(api::connections))
        .route("/api/connections/{id}", get(api::connection))
        .route("/api/trace", get(api::trace))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route("/api/export", get(export::export))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_frame_bytes,
        ))
        .leptos_routes(&state, routes, move || shell(leptos.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .with_state(state)
}

/// Serves the observer on an already bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ObserverConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(config);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
