//! The connection-state indicator of the dashboard's own live socket.

use crate::model::LiveModel;
use leptos::prelude::*;

#[component]
pub fn StatusBadge() -> impl IntoView {
    let model = expect_context::<RwSignal<LiveModel>>();
    let status = Memo::new(move |_| model.with(|m| m.status));
    view! {
        <span class="status" data-status=move || status.get().css() data-testid="link-status">
            <span class="dot"></span>
            {move || status.get().label()}
        </span>
    }
}
