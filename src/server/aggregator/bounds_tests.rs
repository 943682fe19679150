//! Unit tests of the state's bounds: the message FIFO stays proportional to what is held, and a
//! source is forgotten only when nothing points at it.

use super::state::State;
use super::tests::{close, hello, msg, open, T0};
use crate::server::config::AggConfig;
use sockscope_wire::{Direction, Event};

#[test]
fn the_message_fifo_stays_proportional_to_what_is_held() {
    let cfg = AggConfig {
        conn_messages: 2,
        ..AggConfig::default()
    };
    let mut s = State::new(cfg);
    let mut events = vec![hello("a", None)];
    for c in 1..=300 {
        events.push(open(c, "/"));
        for i in 0..10 {
            events.push(msg(c, Direction::ClientToServer, &format!("{c}-{i}")));
        }
    }
    s.apply(None, events, T0);
    // 3,000 stored, 2 kept per connection: the FIFO's stale entries were compacted.
    assert_eq!(s.store.held(), 600);
    assert!(s.store.entries() <= 4096, "{} entries", s.store.entries());
    let texts: Vec<_> = (s.detail(300, 0).unwrap().messages)
        .into_iter()
        .map(|m| m.text.unwrap())
        .collect();
    assert_eq!(texts, vec!["300-8", "300-9"]);
    // Evicted connections leave nothing behind either.
    s.apply(
        None,
        std::iter::once(hello("a", None))
            .chain((1..=300).map(|c| close(c, 1000)))
            .collect(),
        T0,
    );
    s.second(T0 + 2 * 3_600_000_000);
    assert_eq!((s.conns.len(), s.store.held(), s.store.bytes()), (0, 0, 0));
    let mut events = vec![hello("a", None), open(1000, "/")];
    events.extend((0..2100).map(|i| msg(1000, Direction::ServerToClient, &format!("{i}"))));
    s.apply(None, events, T0);
    assert_eq!(s.store.held(), 2);
    assert!(s.store.entries() <= 4096, "{} entries", s.store.entries());
}

#[test]
fn compaction_keeps_the_payload_budget_and_the_newest_payloads() {
    let cfg = AggConfig {
        conn_messages: 4,
        payload_budget: 100,
        ..AggConfig::default()
    };
    let mut s = State::new(cfg);
    s.apply(
        None,
        std::iter::once(hello("a", None))
            .chain((1..=10).map(|c| open(c, "/")))
            .collect(),
        T0,
    );
    for round in 0..300u64 {
        let text = |c: u64| format!("{:>10}", round * 10 + c);
        let events = std::iter::once(hello("a", None))
            .chain((1..=10).map(|c| msg(c, Direction::ClientToServer, &text(c))))
            .collect();
        s.apply(None, events, T0);
        assert!(s.store.bytes() <= 100, "round {round}: {}", s.store.bytes());
        assert!(s.store.entries() <= 4096);
    }
    // The last round's ten 10-byte payloads fill the budget; older ones were dropped.
    for c in 1..=10 {
        let m = s.detail(c, 0).unwrap().messages;
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[3].text.as_deref(),
            Some(format!("{:>10}", 2990 + c).as_str())
        );
        assert!(m[2].payload_evicted, "connection {c}");
    }
    assert_eq!(s.store.held(), 40);
    assert_eq!(s.store.bytes(), 100);
}

#[test]
fn a_source_is_forgotten_only_when_nothing_points_at_it() {
    let cfg = AggConfig {
        max_sources: 2,
        trace_capacity: 4,
        ..AggConfig::default()
    };
    let retention = cfg.retention.as_micros() as u64;
    let mut s = State::new(cfg);
    assert!(s
        .apply(
            None,
            vec![hello("a", None), open(1, "/a"), close(1, 1000)],
            T0
        )
        .is_empty());
    assert!(s
        .apply(None, vec![hello("c", None), open(7, "/c")], T0)
        .is_empty());
    // Full, and "a" still has a tracked connection and trace records: "b" is refused.
    let errs = s.apply(None, vec![hello("b", None), open(1, "/b")], T0 + 1);
    assert_eq!(
        errs.iter().map(|e| e.code).collect::<Vec<_>>(),
        ["source_limit", "source_limit"]
    );
    assert!(
        errs[0].message.contains("--max-sources"),
        "{}",
        errs[0].message
    );
    assert_eq!(s.stats.refused.sources, 1);
    // Retention evicts a's connection, but its trace records still name it.
    s.second(T0 + retention + 2_000_000);
    assert_eq!(s.totals.tracked, 1);
    assert_eq!(
        s.apply(None, vec![hello("b", None)], T0 + retention + 3_000_000)[0].code,
        "source_limit"
    );
    // Once c's records have pushed a's out of the trace ring, "a" can go; "c" (open) stays.
    let now = T0 + retention + 4_000_000;
    let msgs: Vec<Event> = (0..4)
        .map(|i| msg(7, Direction::ClientToServer, &format!("m{i}")))
        .collect();
    assert!(s.apply(Some("c"), msgs, now).is_empty());
    assert!(s
        .apply(None, vec![hello("b", None), open(1, "/b")], now)
        .is_empty());
    let mut ids: Vec<String> = s.sources.iter().map(|x| x.id.to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["b", "c"]);
    assert_eq!(s.stats.sources_forgotten, 1);
    // Every trace record still resolves to its own source's name.
    let names: Vec<String> = s.trace.iter().map(|r| s.trace_entry(r).source).collect();
    assert_eq!(names, ["c", "c", "c", "b"]);
}

#[test]
fn connection_metadata_is_held_to_its_budgets_and_cuts_are_counted() {
    use sockscope_wire::{ConnOpen, Header};
    let cfg = AggConfig {
        conn_meta_bytes: 1024,
        metadata_budget: 1 << 20,
        ..AggConfig::default()
    };
    let mut s = State::new(cfg);
    // 64 headers of 8 KiB, as an anonymous client of the tapped app can send.
    let big: Vec<Header> = (0..64)
        .map(|i| Header(format!("x-h{i}"), "v".repeat(8192)))
        .collect();
    let open = |conn: u64| {
        Event::ConnOpen(ConnOpen {
            headers: big.clone(),
            ..ConnOpen::new(conn, "192.0.2.1", "/ws?x=1")
        })
    };
    s.apply(None, vec![hello("a", None), open(1), open(2)], T0);
    for c in s.conns.values() {
        assert!(c.meta_bytes() <= 1024, "{}", c.meta_bytes());
        assert_eq!(&*c.path, "/ws?x=1", "the path is kept");
    }
    assert_eq!(s.stats.metadata_cut, 2);
    assert_eq!(
        s.stats.metadata_bytes,
        s.conns.values().map(|c| c.meta_bytes() as u64).sum::<u64>()
    );
}
