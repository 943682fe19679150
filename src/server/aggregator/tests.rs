//! Unit tests of the aggregator state, without sockets.

use super::filter::TraceFilter;
use super::state::State;
use crate::protocol::{SortKey, StateFilter, TableQuery, TraceKind, TraceQuery};
use crate::server::aggregator::hub::Hub;
use crate::server::config::AggConfig;
use sockscope_wire::{
    Closer, ConnClose, ConnOpen, Direction, Event, Hello, Message, Opcode, SourceKind,
};
use tokio::sync::mpsc;

pub(super) const T0: u64 = 1_700_000_000_000_000;

pub(super) fn hello(source: &str, instance: Option<u64>) -> Event {
    Event::Hello(Hello {
        capture: None,
        source: source.into(),
        name: String::new(),
        kind: SourceKind::Proxy,
        version: String::new(),
        hostname: String::new(),
        instance,
    })
}

pub(super) fn open(conn: u64, path: &str) -> Event {
    Event::ConnOpen(ConnOpen {
        user_agent: Some("ua".into()),
        ..ConnOpen::new(conn, "192.0.2.1", path)
    })
}

pub(super) fn msg(conn: u64, dir: Direction, text: &str) -> Event {
    Event::Message(Message {
        flight: false,
        conn,
        ts: None,
        dir,
        opcode: Opcode::Text,
        size: text.len() as u64,
        text: Some(text.into()),
        data: None,
        truncated: false,
        redacted: 0,
    })
}

pub(super) fn close(conn: u64, code: u16) -> Event {
    Event::ConnClose(ConnClose {
        conn,
        ts: None,
        code: Some(code),
        reason: None,
        by: Closer::Client,
    })
}

#[test]
fn counts_rates_and_close_codes() {
    let mut s = State::new(AggConfig::default());
    let errs = s.apply(
        None,
        vec![
            hello("a", None),
            open(1, "/x"),
            msg(1, Direction::ClientToServer, "abc"),
            msg(1, Direction::ServerToClient, "hello"),
            msg(1, Direction::ServerToClient, "hi"),
        ],
        T0,
    );
    assert!(errs.is_empty(), "{errs:?}");
    let c = s.conns.get(&1).unwrap();
    assert_eq!(
        (c.msgs_in, c.bytes_in, c.msgs_out, c.bytes_out),
        (1, 3, 2, 7)
    );
    // The rate reports the last complete second.
    let row = c.row("a", T0 / 1_000_000 + 1);
    assert_eq!((row.rate_msgs, row.rate_bytes), (3, 10));
    s.apply(Some("a"), vec![close(1, 1008)], T0 + 10);
    let row = s.conns.get(&1).unwrap().row("a", 0);
    assert_eq!(row.close_code, Some(1008));
    assert_eq!(
        (s.totals.open, s.totals.closed, s.sources[0].open),
        (0, 1, 0)
    );
}

#[test]
fn semantic_errors_name_the_event_and_the_rest_applies() {
    let mut s = State::new(AggConfig::default());
    let errs = s.apply(None, vec![open(1, "/")], T0);
    assert_eq!(errs[0].code, "no_hello");
    let errs = s.apply(
        None,
        vec![
            hello("a", None),
            msg(9, Direction::ClientToServer, "x"),
            open(1, "/"),
            close(2, 1000),
            open(1, "/again"),
        ],
        T0,
    );
    let codes: Vec<_> = errs.iter().map(|e| (e.code.as_str(), e.index)).collect();
    assert_eq!(
        codes,
        vec![
            ("unknown_connection", 1),
            ("unknown_connection", 3),
            ("duplicate_connection", 4)
        ]
    );
    // The duplicate replaced the first record, which was closed as abort.
    assert_eq!(s.totals.open, 1);
    assert_eq!(
        s.conns.get(&1).unwrap().closed.as_ref().unwrap().by,
        Closer::Abort
    );
    assert_eq!(&*s.conns.get(&2).unwrap().path, "/again");
    assert_eq!(s.stats.ingest_errors, 4);
}

#[test]
fn new_tap_instance_closes_what_the_old_one_left_open() {
    let mut s = State::new(AggConfig::default());
    s.apply(
        None,
        vec![hello("a", Some(1)), open(1, "/"), open(2, "/")],
        T0,
    );
    s.apply(None, vec![hello("a", Some(1)), open(3, "/")], T0);
    assert_eq!(s.totals.open, 3, "same instance: nothing closed");
    s.apply(None, vec![hello("a", Some(2))], T0);
    assert_eq!(s.totals.open, 0);
    let c = s.conns.get(&1).unwrap().closed.clone().unwrap();
    assert_eq!(
        (c.by, c.reason.as_deref()),
        (Closer::Abort, Some("tap restarted"))
    );
}

#[test]
fn a_source_online_under_one_token_refuses_another_until_it_has_been_gone_a_while() {
    use crate::server::aggregator::source::CREDENTIAL_HOLD;
    use crate::server::error::ErrorCode;
    let mut s = State::new(AggConfig::default());
    let (mine, theirs) = (Some(11), Some(22));
    let errs = s.apply_as(None, vec![hello("edge", Some(1)), open(1, "/")], T0, mine);
    assert!(errs.is_empty(), "{errs:?}");
    s.session("edge", true);
    // Another token's hello with a new instance neither closes the connection nor speaks.
    let errs = s.apply_as(
        None,
        vec![hello("edge", Some(2)), open(2, "/x")],
        T0,
        theirs,
    );
    assert_eq!(
        errs.iter().map(|e| e.code).collect::<Vec<_>>(),
        [ErrorCode::SourceTaken, ErrorCode::SourceTaken]
    );
    assert!(
        errs[0].message.contains("another tap token"),
        "{}",
        errs[0].message
    );
    assert_eq!(s.totals.open, 1);
    // Nor can its later batches on the same session.
    let errs = s.apply_as(Some("edge"), vec![close(1, 1000)], T0, theirs);
    assert_eq!(errs[0].code, ErrorCode::SourceTaken);
    assert_eq!(s.totals.open, 1);
    // The same token (a restarted tap) may.
    assert!(s
        .apply_as(None, vec![hello("edge", Some(1))], T0, mine)
        .is_empty());
    // Once the tap has been gone longer than the hold, a new token takes the source over
    // (a tap restarted with a rotated token) and what the old instance left open is closed.
    s.session("edge", false);
    let later = T0 + CREDENTIAL_HOLD.as_micros() as u64 + 1;
    let errs = s.apply_as(
        None,
        vec![hello("edge", Some(3))],
        later - 2_000_000,
        theirs,
    );
    assert_eq!(
        errs[0].code,
        ErrorCode::SourceTaken,
        "still within the hold"
    );
    assert!(s
        .apply_as(None, vec![hello("edge", Some(3))], later, theirs)
        .is_empty());
    assert_eq!(s.totals.open, 0);
}

#[test]
fn table_filters_sorts_and_windows() {
    let mut s = State::new(AggConfig::default());
    let mut events = vec![hello("a", None)];
    for i in 1..=20 {
        events.push(open(i, &format!("/room/{}", i % 4)));
        for _ in 0..i % 5 {
            events.push(msg(i, Direction::ClientToServer, "m"));
        }
    }
    events.push(close(20, 1000));
    s.apply(None, events, T0);
    let q = |state, q: &str, sort, desc, offset, limit| TableQuery {
        state,
        q: q.into(),
        sort,
        desc,
        offset,
        limit,
    };
    let ids =
        |(_, rows): (u64, Vec<&super::conn::Conn>)| rows.iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.table(&q(StateFilter::Open, "", SortKey::Id, true, 0, 3), 0)),
        vec![19, 18, 17]
    );
    assert_eq!(
        ids(s.table(&q(StateFilter::All, "", SortKey::Id, true, 0, 2), 0)),
        vec![20, 19]
    );
    assert_eq!(
        ids(s.table(&q(StateFilter::Closed, "", SortKey::Id, true, 0, 5), 0)),
        vec![20]
    );
    assert_eq!(
        s.table(&q(StateFilter::Open, "", SortKey::Id, true, 0, 3), 0)
            .0,
        19
    );
    assert_eq!(
        s.table(&q(StateFilter::Open, "ROOM/1", SortKey::Id, true, 0, 50), 0)
            .0,
        5
    );
    // msgs_in = i % 5: 4 for 4, 9, 14, 19; ties broken by id.
    assert_eq!(
        ids(s.table(&q(StateFilter::Open, "", SortKey::MsgsIn, true, 0, 4), 0)),
        vec![19, 14, 9, 4]
    );
    assert_eq!(
        ids(s.table(&q(StateFilter::Open, "", SortKey::MsgsIn, true, 2, 3), 0)),
        vec![9, 4, 18]
    );
    assert_eq!(
        ids(s.table(&q(StateFilter::Open, "", SortKey::MsgsIn, false, 0, 2), 0)),
        vec![5, 10]
    );
    assert!(ids(s.table(&q(StateFilter::Open, "", SortKey::Path, true, 100, 5), 0)).is_empty());
}

#[test]
fn trace_ring_is_bounded_and_filtered() {
    let cfg = AggConfig {
        trace_capacity: 5,
        ..AggConfig::default()
    };
    let mut s = State::new(cfg);
    let mut events = vec![hello("a", None), open(1, "/")];
    for i in 0..10 {
        events.push(msg(1, Direction::ServerToClient, &format!("m{i}")));
    }
    events.push(close(1, 1001));
    s.apply(None, events, T0);
    assert_eq!(s.trace.len(), 5);
    let all = TraceFilter::new(TraceQuery {
        kinds: vec![],
        conn: None,
        limit: 100,
        ..Default::default()
    })
    .unwrap();
    let (items, _) = s.trace_since(&all, 0);
    assert_eq!(items[0].kind, TraceKind::Close);
    assert_eq!(items[1].text, "m9");
    let closes = TraceFilter::new(TraceQuery {
        kinds: vec![TraceKind::Close],
        conn: Some(1),
        limit: 100,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.trace_since(&closes, 0).0.len(), 1);
    let two = TraceFilter::new(TraceQuery {
        kinds: vec![],
        conn: None,
        limit: 2,
        ..Default::default()
    })
    .unwrap();
    let (items, skipped) = s.trace_since(&two, 0);
    assert_eq!((items.len(), skipped), (2, 3));
    let after = s.trace_seq;
    assert!(s.trace_since(&all, after).0.is_empty());
}

#[test]
fn global_message_cap_removes_oldest_messages_first() {
    let cfg = AggConfig {
        max_stored_messages: 3,
        conn_messages: 10,
        ..AggConfig::default()
    };
    let mut s = State::new(cfg);
    s.apply(
        None,
        vec![
            hello("a", None),
            open(1, "/"),
            open(2, "/"),
            msg(1, Direction::ClientToServer, "a1"),
            msg(2, Direction::ClientToServer, "b1"),
            msg(1, Direction::ClientToServer, "a2"),
            msg(2, Direction::ClientToServer, "b2"),
        ],
        T0,
    );
    let texts = |id| {
        s.detail(id, 0)
            .unwrap()
            .messages
            .into_iter()
            .map(|m| m.text.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(1), vec!["a2"]);
    assert_eq!(texts(2), vec!["b1", "b2"]);
    assert_eq!(s.store.bytes(), 6);
}

#[test]
fn snapshots_share_a_time_budget_per_second_across_browsers() {
    let mut s = State::new(AggConfig::default());
    s.apply(None, vec![hello("a", None), open(1, "/")], T0);
    let mut hub = Hub::default();
    hub.set_budget(std::time::Duration::ZERO);
    let spec = crate::protocol::ViewSpec {
        table: Some(TableQuery::default()),
        ..Default::default()
    };
    let mut rxs = Vec::new();
    for id in 1..=3 {
        let (tx, rx) = mpsc::channel(8);
        hub.subscribe(id, tx, spec.clone(), crate::protocol::Role::Inspector);
        rxs.push(rx);
    }
    // Three browsers want a snapshot in the same second: the first is built, two wait.
    hub.publish(&s, T0, None);
    let got = rxs
        .iter_mut()
        .map(|r| r.try_recv().is_ok())
        .filter(|ok| *ok)
        .count();
    assert_eq!((got, hub.deferred), (1, 2));
    // The next seconds serve the others.
    hub.publish(&s, T0 + 1_000_000, None);
    hub.publish(&s, T0 + 2_000_000, None);
    let mut snapshots = 0;
    for rx in &mut rxs {
        while let Ok(text) = rx.try_recv() {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            snapshots += usize::from(v["type"] == "snapshot");
        }
    }
    assert_eq!(snapshots, 2, "each waiting browser got its snapshot");
}

#[test]
fn hub_resnapshots_a_browser_that_falls_behind() {
    let mut s = State::new(AggConfig::default());
    s.apply(None, vec![hello("a", None), open(1, "/")], T0);
    let mut hub = Hub::default();
    let (tx, mut rx) = mpsc::channel(1);
    let spec = crate::protocol::ViewSpec {
        table: Some(TableQuery::default()),
        trace: None,
        detail: None,
        charts: false,
    };
    hub.subscribe(7, tx, spec, crate::protocol::Role::Inspector);
    hub.publish(&s, T0, None); // snapshot fills the queue
    hub.publish(&s, T0, None); // no room: nothing built, counted once
    hub.publish(&s, T0, None);
    hub.publish(&s, T0, None);
    assert_eq!(
        hub.resnapshots, 1,
        "a browser that is not reading is counted once"
    );
    let first: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
    assert_eq!(first["type"], "snapshot");
    assert!(rx.try_recv().is_err());
    hub.publish(&s, T0, None);
    let next: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
    assert_eq!(
        next["type"], "snapshot",
        "after a drop the browser gets a full snapshot"
    );
    assert_eq!(next["table"]["ids"], serde_json::json!([1]));
    hub.publish(&s, T0, None);
    let next: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
    assert_eq!(next["type"], "delta");
    assert!(next["table"].is_null(), "nothing changed in the window");
    drop(rx);
    hub.publish(&s, T0, None);
    assert_eq!(hub.subscribers(), 0, "a closed browser is forgotten");
}

#[test]
fn trace_filters_by_direction_ip_source_and_payload_text_or_regex() {
    let mut s = State::new(AggConfig::default());
    let long = format!("{}needle-at-the-end", "x".repeat(300));
    s.apply(
        None,
        vec![
            hello("edge-a", None),
            open(1, "/a"),
            msg(1, Direction::ClientToServer, "order 42 placed"),
            msg(1, Direction::ServerToClient, &long),
        ],
        T0,
    );
    let f = |q: TraceQuery| TraceFilter::new(TraceQuery { limit: 100, ..q }).unwrap();
    let n = |q: TraceQuery| s.trace_since(&f(q), 0).0.len();
    assert_eq!(
        n(TraceQuery {
            dir: Some(Direction::ServerToClient),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        n(TraceQuery {
            ip: Some("192.0.2.".into()),
            ..Default::default()
        }),
        3
    );
    assert_eq!(
        n(TraceQuery {
            ip: Some("10.".into()),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        n(TraceQuery {
            source: Some("edge-a".into()),
            ..Default::default()
        }),
        3
    );
    assert_eq!(
        n(TraceQuery {
            source: Some("nope".into()),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        n(TraceQuery {
            text: Some("ORDER".into()),
            ..Default::default()
        }),
        1
    );
    // Past the 120-character preview: found in the stored payload.
    assert_eq!(
        n(TraceQuery {
            text: Some("needle-at-the-end".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        n(TraceQuery {
            text: Some(r"order \d+".into()),
            regex: true,
            ..Default::default()
        }),
        1
    );
    let e = TraceFilter::new(TraceQuery {
        text: Some("(unclosed".into()),
        regex: true,
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(e.contains("invalid regular expression"), "{e}");
}

#[test]
fn a_tap_clock_far_ahead_is_clamped_so_retention_still_ends_its_connections() {
    use super::state::{event_time, MAX_CLOCK_AHEAD_US};
    assert_eq!(event_time(None, T0), T0);
    assert_eq!(event_time(Some(T0 - 5), T0), T0 - 5);
    let decade = 10 * 365 * 86_400 * 1_000_000u64;
    assert_eq!(event_time(Some(T0 + decade), T0), T0 + MAX_CLOCK_AHEAD_US);
    let mut s = State::new(AggConfig::default());
    let mut o = open(1, "/future");
    if let Event::ConnOpen(c) = &mut o {
        c.ts = Some(T0 + decade);
    }
    s.apply(None, vec![hello("a", None), o], T0);
    let opened = s.conns.values().next().unwrap().opened_us;
    assert_eq!(opened, T0 + MAX_CLOCK_AHEAD_US);
}
