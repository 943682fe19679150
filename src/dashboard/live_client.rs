//! The browser's `/live` connection: subscribes with the current view, feeds frames into the
//! model, resubscribes when the view changes, and reconnects with capped backoff.

use crate::dashboard::controls::ViewControls;
use crate::dashboard::model::{Applied, LinkStatus, LiveModel};
use crate::protocol::{ClientMsg, ServerMsg};
use leptos::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// Longest wait between reconnect attempts.
const MAX_BACKOFF_MS: u64 = 5_000;

struct Link {
    ws: Option<WebSocket>,
    attempt: u32,
}

fn url() -> Option<String> {
    let loc = web_sys::window()?.location();
    let scheme = if loc.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/live", loc.host().ok()?))
}

fn send(ws: &WebSocket, msg: &ClientMsg) {
    if let Ok(text) = serde_json::to_string(msg) {
        let _ = ws.send_with_str(&text);
    }
}

fn send_spec(ws: &WebSocket, controls: ViewControls) {
    send(ws, &ClientMsg::Subscribe(controls.spec()));
    // Looking at the past: the observer shows that moment again for the new view.
    if let Some(at) = controls.at.get_untracked() {
        send(ws, &ClientMsg::At { at_ms: Some(at) });
    }
}

/// `?at=<ms>` of the page's address: a shared moment.
fn url_at() -> Option<u64> {
    let search = web_sys::window()?.location().search().ok()?;
    search
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| kv.strip_prefix("at="))
        .and_then(|v| v.parse().ok())
}

/// Puts the moment in the page's address (or takes it out), without reloading.
fn set_url_at(at: Option<u64>) {
    let Some(w) = web_sys::window() else { return };
    let Ok(path) = w.location().pathname() else {
        return;
    };
    let url = match at {
        Some(t) => format!("{path}?at={t}"),
        None => path,
    };
    if let Ok(h) = w.history() {
        let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
    }
}

pub(super) fn start(model: RwSignal<LiveModel>, controls: ViewControls) {
    let link = Rc::new(RefCell::new(Link {
        ws: None,
        attempt: 0,
    }));
    if let Some(t) = url_at() {
        controls.at.set(Some(t));
    }
    // A moment chosen (a click on a chart, a replay step, the URL) or left.
    {
        let link = link.clone();
        Effect::new(move |prev: Option<Option<u64>>| {
            let at = controls.at.get();
            set_url_at(at);
            if let Some(ws) = link.borrow().ws.as_ref() {
                if ws.ready_state() == WebSocket::OPEN {
                    match at {
                        Some(_) => send(ws, &ClientMsg::At { at_ms: at }),
                        None if prev.flatten().is_some() => {
                            model.update(|m| m.back_to_live());
                            send(ws, &ClientMsg::At { at_ms: None });
                            send_spec(ws, controls);
                        }
                        None => {}
                    }
                }
            }
            at
        });
    }
    // Any change of the view resubscribes (the observer answers with a snapshot).
    {
        let link = link.clone();
        Effect::new(move |_| {
            let spec_changed = (
                controls.table.get(),
                controls.trace.get(),
                controls.selected.get(),
            );
            let _ = spec_changed;
            if let Some(ws) = link.borrow().ws.as_ref() {
                if ws.ready_state() == WebSocket::OPEN {
                    send_spec(ws, controls);
                }
            }
        });
    }
    // Scrolling moves the table window only: no snapshot of everything else.
    {
        let link = link.clone();
        Effect::new(move |_| {
            let (offset, limit) = controls.window.get();
            if let Some(ws) = link.borrow().ws.as_ref() {
                if ws.ready_state() == WebSocket::OPEN {
                    send(ws, &ClientMsg::Window { offset, limit });
                }
            }
        });
    }
    connect(link, model, controls);
}

fn connect(link: Rc<RefCell<Link>>, model: RwSignal<LiveModel>, controls: ViewControls) {
    let Some(url) = url() else { return };
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(_) => {
            schedule(link, model, controls);
            return;
        }
    };
    {
        let link = link.clone();
        let ws2 = ws.clone();
        let onopen = Closure::<dyn FnMut()>::new(move || {
            link.borrow_mut().attempt = 0;
            model.update(|m| m.status = LinkStatus::Live);
            send_spec(&ws2, controls);
        });
        ws.set_onopen(Some(onopen.as_ref().unchecked_ref()));
        onopen.forget();
    }
    {
        let ws2 = ws.clone();
        let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let Some(text) = ev.data().as_string() else {
                return;
            };
            let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) else {
                return;
            };
            let mut outcome = Applied::Ok;
            model.update(|m| outcome = m.apply(msg));
            if outcome == Applied::Resubscribe {
                send_spec(&ws2, controls);
            }
        });
        ws.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        onmessage.forget();
    }
    {
        let link = link.clone();
        let onclose = Closure::<dyn FnMut(CloseEvent)>::new(move |_ev: CloseEvent| {
            link.borrow_mut().ws = None;
            schedule(link.clone(), model, controls);
        });
        ws.set_onclose(Some(onclose.as_ref().unchecked_ref()));
        onclose.forget();
    }
    link.borrow_mut().ws = Some(ws);
}

/// Waits (250 ms doubling up to 5 s) and connects again.
fn schedule(link: Rc<RefCell<Link>>, model: RwSignal<LiveModel>, controls: ViewControls) {
    let attempt = {
        let mut l = link.borrow_mut();
        l.attempt += 1;
        l.attempt
    };
    model.update(|m| m.disconnected(attempt));
    let delay = (250u64 << attempt.min(5)).min(MAX_BACKOFF_MS);
    let link = link.clone();
    set_timeout(
        move || connect(link, model, controls),
        Duration::from_millis(delay),
    );
}
