//! The page shell (with its Content-Security-Policy) and the dashboard page: the live model
//! lives in a signal, components render it.
// `#[component]` expands to `pub` props structs whatever the function's visibility.
#![allow(unreachable_pub)]

use crate::dashboard::components::{
    Charts, ConnTable, DetailPanel, HistoryPanel, Overview, PastBanner, SessionBadge, StatusBadge,
    TracePanel,
};
use crate::dashboard::controls::ViewControls;
use crate::dashboard::model::LiveModel;
use crate::protocol::{TableQuery, TraceQuery};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::StaticSegment;

#[cfg(feature = "ssr")]
pub(crate) fn shell(options: LeptosOptions) -> impl IntoView {
    use leptos_meta::MetaTags;
    #[cfg(feature = "ssr")]
    content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.ico" sizes="any"/>
                <link rel="icon" href="/icon.svg" type="image/svg+xml"/>
                <link rel="apple-touch-icon" href="/apple-touch-icon.png"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Only the scripts this page's render marked with its nonce may run (the hydration loader,
/// and the wasm it imports): a payload that ever slipped into the page as HTML could not
/// execute. leptos_axum makes a fresh nonce for every render.
#[cfg(feature = "ssr")]
fn content_security_policy() {
    use axum::http::{header, HeaderValue};
    let (Some(nonce), Some(res)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(&csp(Some(&nonce))) {
        res.insert_header(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// The Content-Security-Policy of every response: never framed, no plugins, no `<base>`; with
/// a page's nonce, only scripts carrying it run (and what they import: the dashboard's wasm),
/// otherwise no script at all.
#[cfg(feature = "ssr")]
pub(crate) fn csp(nonce: Option<&str>) -> String {
    let script = match nonce {
        Some(n) => format!("script-src 'nonce-{n}' 'strict-dynamic' 'wasm-unsafe-eval'"),
        None => "script-src 'none'".to_string(),
    };
    format!(
        "{script}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
}

#[component]
pub(crate) fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/sockscope.css"/>
        <Title text="sockscope"/>
        <Router>
            <Routes fallback=|| view! { <p class="notfound">"Page not found."</p> }>
                <Route path=StaticSegment("") view=Dashboard/>
            </Routes>
        </Router>
    }
}

#[component]
fn Dashboard() -> impl IntoView {
    let model = RwSignal::new(LiveModel::default());
    let controls = ViewControls {
        table: RwSignal::new(TableQuery::default()),
        trace: RwSignal::new(TraceQuery::default()),
        selected: RwSignal::new(None),
        window: RwSignal::new((0, 50)),
        at: RwSignal::new(None),
    };
    provide_context(model);
    provide_context(controls);
    #[cfg(feature = "hydrate")]
    crate::dashboard::live_client::start(model, controls);
    view! {
        <header class="top">
            <h1>"sockscope"</h1>
            <span class="tagline">"live WebSocket traffic"</span>
            <StatusBadge/>
            <SessionBadge/>
        </header>
        <main class="dashboard">
            <Overview/>
            <Charts/>
            <PastBanner/>
            <HistoryPanel/>
            <DetailPanel/>
            <div class="columns">
                <ConnTable/>
                <TracePanel/>
            </div>
        </main>
    }
    .into_any()
}
