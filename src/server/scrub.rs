//! Role enforcement on what leaves the observer: viewers get metadata only. Every path that
//! hands out connections or trace entries (API, export, `/live`) goes through here.

use crate::protocol::{
    ConnDetail, ConnRow, HistoryConn, HistoryEvent, Role, TraceEntry, TraceKind, TraceQuery,
};

/// What a viewer sees in place of a query value or a close reason.
pub(crate) const HIDDEN: &str = "[hidden]";

/// A path as a viewer may see it: the query's values hidden, its names kept
/// (`/ws?room=[hidden]&user=[hidden]`).
pub(crate) fn path(role: Role, path: &str) -> String {
    let Some((base, query)) = path.split_once('?').filter(|_| !role.sees_payloads()) else {
        return path.to_string();
    };
    let hidden: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, v)) if !v.is_empty() => format!("{name}={HIDDEN}"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", hidden.join("&"))
}

/// A table row as `role` may see it: a viewer gets no query values and no close reason.
pub(crate) fn row(role: Role, mut r: ConnRow) -> ConnRow {
    if !role.sees_payloads() {
        r.path = path(role, &r.path);
        if r.close_reason.is_some() {
            r.close_reason = Some(HIDDEN.into());
        }
    }
    r
}

/// A history row as `role` may see it (as [`row`] does for live rows).
pub(crate) fn history_conn(role: Role, mut c: HistoryConn) -> HistoryConn {
    if !role.sees_payloads() {
        c.path = path(role, &c.path);
        if c.close_reason.is_some() {
            c.close_reason = Some(HIDDEN.into());
        }
        for m in &mut c.last_messages {
            m.text = None;
        }
    }
    c
}

/// One event of a connection's history as `role` may see it.
pub(crate) fn history_event(role: Role, e: HistoryEvent) -> HistoryEvent {
    if role.sees_payloads() {
        return e;
    }
    match e {
        HistoryEvent::Open {
            ts_ms,
            ip,
            user_agent,
            path,
        } => HistoryEvent::Open {
            ts_ms,
            ip,
            user_agent,
            path: self::path(role, &path),
        },
        HistoryEvent::Message {
            ts_ms,
            dir,
            opcode,
            size,
            truncated,
            ..
        } => HistoryEvent::Message {
            ts_ms,
            dir,
            opcode,
            size,
            truncated,
            text: None,
            data_b64: None,
        },
        HistoryEvent::Close {
            ts_ms,
            code,
            reason,
            by,
        } => HistoryEvent::Close {
            ts_ms,
            code,
            reason: reason.map(|_| HIDDEN.into()),
            by,
        },
    }
}

/// What a viewer's filter may not do, and why.
pub(crate) const PAYLOAD_SEARCH_NEEDS_INSPECTOR: &str =
    "searching text looks inside payloads, which needs the inspector role; \
     filter by kind, source, connection, IP or direction instead";

/// A connection as `role` may see it.
pub(crate) fn detail(role: Role, mut d: ConnDetail) -> ConnDetail {
    if !role.sees_payloads() {
        d.row = row(role, d.row);
        d.headers.clear();
        for m in &mut d.messages {
            m.text = None;
            m.data_b64 = None;
        }
        d.payloads_hidden = true;
    }
    d
}

/// Trace entries as `role` may see them: a viewer gets no payload previews.
pub(crate) fn trace(role: Role, mut entries: Vec<TraceEntry>) -> Vec<TraceEntry> {
    if !role.sees_payloads() {
        for e in &mut entries {
            match e.kind {
                TraceKind::Message => e.text.clear(),
                // "ip path": the path's query values are hidden.
                TraceKind::Open => {
                    if let Some((ip, p)) = e.text.split_once(' ') {
                        e.text = format!("{ip} {}", path(role, p));
                    }
                }
                // The close reason.
                TraceKind::Close if !e.text.is_empty() => e.text = HIDDEN.into(),
                _ => {}
            }
        }
    }
    entries
}

/// Refuses trace filters that would reveal payload content to a viewer.
pub(crate) fn check_query(role: Role, q: &TraceQuery) -> Result<(), String> {
    let searches = q.text.as_deref().is_some_and(|t| !t.is_empty());
    if searches && !role.sees_payloads() {
        return Err(PAYLOAD_SEARCH_NEEDS_INSPECTOR.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ConnRow, ConnState, MessageView};
    use sockscope_wire::{Direction, Opcode};

    fn conn() -> ConnDetail {
        ConnDetail {
            row: ConnRow {
                id: 1,
                source: "s".into(),
                ip: "::1".into(),
                user_agent: "ua".into(),
                path: "/chat".into(),
                state: ConnState::Open,
                opened_ms: 0,
                closed_ms: None,
                close_code: None,
                close_reason: None,
                closed_by: None,
                msgs_in: 1,
                msgs_out: 0,
                bytes_in: 6,
                bytes_out: 0,
                rate_msgs: 0,
                rate_bytes: 0,
                unknown_since_ms: None,
            },
            tap_conn: 1,
            subprotocol: None,
            headers: vec![("origin".into(), "https://a".into())],
            messages: vec![MessageView {
                flight: false,
                seq: 1,
                ts_us: 1,
                dir: Direction::ClientToServer,
                opcode: Opcode::Text,
                size: 6,
                truncated: false,
                text: Some("secret".into()),
                data_b64: Some("c2VjcmV0".into()),
                payload_evicted: false,
                redacted: 0,
            }],
            payloads_hidden: false,
            capture: None,
            capture_bytes: None,
            redacted_headers: vec![],
        }
    }

    #[test]
    fn viewers_get_metadata_only() {
        let v = detail(Role::Viewer, conn());
        assert!(v.payloads_hidden && v.headers.is_empty());
        assert_eq!((v.messages[0].text.as_ref(), v.messages[0].size), (None, 6));
        assert_eq!(v.messages[0].data_b64, None);
        assert_eq!(v.row.path, "/chat", "metadata stays");
        assert_eq!(detail(Role::Inspector, conn()), conn());
    }

    #[test]
    fn viewers_cannot_search_payloads() {
        let q = TraceQuery {
            text: Some("pass".into()),
            ..TraceQuery::default()
        };
        assert!(check_query(Role::Viewer, &q).is_err());
        assert!(check_query(Role::Inspector, &q).is_ok());
        assert!(check_query(Role::Viewer, &TraceQuery::default()).is_ok());
    }
}
