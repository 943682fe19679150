//! The time-travel banner: which moment the table and trace show (from the record), replay
//! from there at 1×, 10× or 100×, and the way back to live.

use crate::dashboard::controls::ViewControls;
use crate::dashboard::format;
use crate::dashboard::model::LiveModel;
use leptos::prelude::*;
use std::time::Duration;

/// How often a replay moves the moment on.
const REPLAY_STEP: Duration = Duration::from_millis(1000);

#[component]
pub(crate) fn PastBanner() -> impl IntoView {
    let model = expect_context::<RwSignal<LiveModel>>();
    let controls = expect_context::<ViewControls>();
    let speed = RwSignal::new(0u64);
    let ticker: StoredValue<Option<IntervalHandle>> = StoredValue::new(None);
    let stop = move || {
        if let Some(h) = ticker.get_value() {
            h.clear();
        }
        ticker.set_value(None);
        speed.set(0);
    };
    let replay = move |x: u64| {
        stop();
        speed.set(x);
        let step = REPLAY_STEP.as_millis() as u64 * x;
        let h = set_interval_with_handle(
            move || {
                let Some(at) = controls.at.get_untracked() else {
                    return;
                };
                let next = at + step;
                // Caught up with live: stay at the newest moment recorded.
                let now = model.with_untracked(|m| m.now_ms);
                controls
                    .at
                    .set(Some(if now > 0 { next.min(now) } else { next }));
            },
            REPLAY_STEP,
        )
        .ok();
        ticker.set_value(h);
    };
    let moment = move || model.with(|m| m.past.map(format::clock).unwrap_or_default());
    view! {
        <Show when=move || model.with(|m| m.past.is_some())>
            <div class="past-banner" data-testid="past-banner" role="status">
                <span>"viewing " <b data-testid="past-moment">{moment}</b> " from the record"</span>
                {move || model.with(|m| m.past_error.clone()).map(|e| view! { <span class="error">{e}</span> })}
                <button data-testid="replay-1" on:click=move |_| replay(1)>"▶ 1×"</button>
                <button data-testid="replay-10" on:click=move |_| replay(10)>"▶ 10×"</button>
                <button data-testid="replay-100" on:click=move |_| replay(100)>"▶ 100×"</button>
                <Show when=move || { speed.get() != 0 }>
                    <button data-testid="replay-stop" on:click=move |_| stop()>"❚❚"</button>
                </Show>
                <button data-testid="back-to-live" on:click=move |_| { stop(); controls.at.set(None); }>"back to live"</button>
            </div>
        </Show>
    }
}
