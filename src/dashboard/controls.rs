//! What the user chose to look at (table query and window, trace filter, inspected
//! connection): signals shared by the components and the `/live` client.
// The server build renders only the page shell; the browser build (`hydrate`) and the
// native unit tests drive the rest.
#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

use crate::protocol::{TableQuery, TraceQuery, ViewSpec};
use leptos::prelude::*;

/// What the user chose to look at; turned into the [`ViewSpec`] sent to the observer.
#[derive(Clone, Copy)]
pub(crate) struct ViewControls {
    pub table: RwSignal<TableQuery>,
    /// The trace filter (kinds, source, connection, IP, direction, text or regex).
    pub trace: RwSignal<TraceQuery>,
    /// The connection open in the inspector.
    pub selected: RwSignal<Option<u64>>,
    /// The table rows on screen (offset, limit): moved by scrolling without a resubscribe.
    pub window: RwSignal<(u32, u32)>,
    /// The moment (ms) shown from the record instead of live; in the URL as `?at=`.
    pub at: RwSignal<Option<u64>>,
}

impl ViewControls {
    /// The current view, read without tracking (called from socket callbacks).
    pub(crate) fn spec(&self) -> ViewSpec {
        ViewSpec {
            table: Some({
                let (offset, limit) = self.window.get_untracked();
                TableQuery {
                    offset,
                    limit,
                    ..self.table.get_untracked()
                }
            }),
            trace: Some(TraceQuery {
                limit: crate::dashboard::model::DEFAULT_TRACE_KEEP as u32,
                ..self.trace.get_untracked()
            }),
            detail: self.selected.get_untracked(),
            charts: true,
        }
    }
}
