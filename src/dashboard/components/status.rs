//! The connection-state indicator of the dashboard's own live socket, and who is signed in.

use crate::dashboard::model::LiveModel;
use leptos::prelude::*;

#[component]
pub(crate) fn StatusBadge() -> impl IntoView {
    let model = expect_context::<RwSignal<LiveModel>>();
    let status = Memo::new(move |_| model.with(|m| m.status));
    view! {
        <span class="status" data-status=move || status.get().css() data-testid="link-status">
            <span class="dot"></span>
            {move || status.get().label()}
        </span>
    }
}

/// The signed-in role, and a logout button when the observer asks for a login.
#[component]
pub(crate) fn SessionBadge() -> impl IntoView {
    let model = expect_context::<RwSignal<LiveModel>>();
    let who = Memo::new(move |_| model.with(|m| (m.role, m.login)));
    view! {
        <span class="session" data-testid="session" data-role=move || who.get().0.label()>
            {move || {
                let (role, login) = who.get();
                if login {
                    role.label().to_string()
                } else {
                    "open (loopback, no login)".to_string()
                }
            }}
            <Show when=move || who.get().1>
                <form method="post" action="/auth/logout" class="logout">
                    <button type="submit" data-testid="logout">"Log out"</button>
                </form>
            </Show>
        </span>
    }
}
