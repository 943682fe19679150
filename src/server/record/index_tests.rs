//! The index against segments written here: lives that span segments, what is saved and
//! loaded, the segment being written, the past as of a moment, and the queries on top.

use super::store::{idx_path, CACHE};
use super::*;
use crate::server::record::history::{self, ConnFilter};
use crate::server::record::segment::{seal_block, segment_name, MAGIC};
use serde_json::{json, Value};
use sockscope_wire::Encoding;
use std::io::Write;
use std::path::{Path, PathBuf};

const T0: u64 = 1_764_000_000_000_000; // µs

/// One JSON frame with these events, arriving at `t0 + s` seconds.
fn entry(s: u64, source: Option<&str>, events: Vec<Value>) -> Entry {
    Entry {
        bus_seq: None,
        arrival_us: T0 + s * 1_000_000,
        encoding: Encoding::Json,
        source: source.map(Arc::from),
        frame: serde_json::to_vec(&json!({"v": 1, "events": events}))
            .unwrap()
            .into(),
    }
}

fn open(conn: u64, s: u64) -> Value {
    json!({"type": "conn_open", "conn": conn, "ts": T0 + s * 1_000_000, "ip": "192.0.2.1", "path": format!("/c{conn}")})
}

fn msg(conn: u64, s: u64, text: &str) -> Value {
    json!({"type": "message", "conn": conn, "ts": T0 + s * 1_000_000, "dir": "c2s", "opcode": "text", "size": text.len(), "text": text})
}

fn close(conn: u64, s: u64, code: u16) -> Value {
    json!({"type": "conn_close", "conn": conn, "ts": T0 + s * 1_000_000, "code": code, "by": "client"})
}

/// Writes a segment of `blocks` (each a list of entries) into `dir`; returns its path.
fn segment(dir: &Path, start_s: u64, blocks: &[Vec<Entry>]) -> PathBuf {
    let path = dir.join(segment_name(T0 + start_s * 1_000_000));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(MAGIC).unwrap();
    for b in blocks {
        append(&mut f, b);
    }
    path
}

fn append(f: &mut std::fs::File, entries: &[Entry]) {
    let mut raw = Vec::new();
    for e in entries {
        e.write_to(&mut raw);
    }
    f.write_all(&seal_block(&raw).unwrap()).unwrap();
}

/// Three segments: conn 1 opens in the first, talks in the second, closes (1006) in the
/// third; conn 2 opens and closes in the first; conn 3 opens in the second and stays open.
fn three(dir: &Path) -> Vec<PathBuf> {
    let s = Some("edge");
    vec![
        segment(
            dir,
            0,
            &[
                vec![entry(
                    0,
                    None,
                    vec![
                        json!({"type": "hello", "source": "edge", "kind": "proxy"}),
                        open(1, 0),
                        open(2, 0),
                    ],
                )],
                vec![entry(1, s, vec![msg(2, 1, "a"), close(2, 2, 1000)])],
            ],
        ),
        segment(
            dir,
            10,
            &[
                vec![entry(10, s, vec![msg(1, 10, "x1"), open(3, 11)])],
                vec![entry(20, s, vec![msg(1, 20, "x22")])],
            ],
        ),
        segment(dir, 30, &[vec![entry(30, s, vec![close(1, 30, 1006)])]]),
    ]
}

fn conns(dir: &Path, f: ConnFilter) -> Vec<HistoryConn> {
    history::connections(dir, &ConnFilter { limit: 100, ..f })
        .unwrap()
        .items
}

#[test]
fn a_life_spanning_segments_is_summed_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let segs = three(dir.path());
    let last = index(&segs, 2).unwrap();
    let l1 = last.lives.iter().find(|l| l.sum.conn == 1).unwrap();
    assert_eq!((l1.sum.msgs_in, l1.sum.bytes_in), (2, 5), "{l1:?}");
    assert_eq!(l1.start.msgs_in, 2, "counts carried in from before");
    assert_eq!(l1.sum.close_code, Some(1006));
    assert_eq!(l1.sum.path, "/c1", "the open's details are carried along");
    // Conn 3 is open at the end, carried through the last segment without an event there.
    let open: Vec<u64> = last.open_lives().map(|c| c.conn).collect();
    assert_eq!(open, [3]);
    assert_eq!(last.carried().count(), 1);
    // The middle segment: conn 1 talked there (two blocks), conn 3 opened there.
    let mid = index(&segs, 1).unwrap();
    let l1 = mid.lives.iter().find(|l| l.sum.conn == 1).unwrap();
    assert_eq!(l1.postings.blocks(), [0, 1]);
}

#[test]
fn closed_segments_save_their_index_and_a_damaged_one_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let segs = three(dir.path());
    index(&segs, 2).unwrap();
    // The closed ones were saved; the last is still being written, so not yet.
    assert!(idx_path(&segs[0]).exists() && idx_path(&segs[1]).exists());
    assert!(!idx_path(&segs[2]).exists());
    let saved = std::fs::read(idx_path(&segs[1])).unwrap();
    let back = SegIndex::from_bytes(&saved).unwrap();
    let built = index(&segs, 1).unwrap();
    assert_eq!(back.lives.len(), built.lives.len());
    assert_eq!(back.block_ts, built.block_ts);
    let mut a: Vec<u64> = back.open_lives().map(|c| c.conn).collect();
    a.sort();
    assert_eq!(a, [1, 3]);
    // Damage: a flipped byte fails the checksum; the file is not believed.
    let mut bad = saved.clone();
    let n = bad.len() - 1;
    bad[n] ^= 0xff;
    assert!(SegIndex::from_bytes(&bad).is_none());
    assert!(SegIndex::from_bytes(b"SSIDX01\nshort").is_none());
    // Written back damaged and forgotten from memory: rebuilt from the segment.
    std::fs::write(idx_path(&segs[1]), bad).unwrap();
    CACHE.lock().unwrap().map.clear();
    let again = index(&segs, 1).unwrap();
    assert_eq!(again.lives.len(), built.lives.len());
    assert!(SegIndex::from_bytes(&std::fs::read(idx_path(&segs[1])).unwrap()).is_some());
}

#[test]
fn the_segment_being_written_is_indexed_as_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let s = Some("edge");
    let hello = json!({"type": "hello", "source": "edge", "kind": "proxy"});
    let path = segment(
        dir.path(),
        0,
        &[vec![entry(0, None, vec![hello, open(1, 0)])]],
    );
    let segs = vec![path.clone()];
    assert_eq!(index(&segs, 0).unwrap().lives[0].sum.msgs_in, 0);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    append(&mut f, &[entry(5, s, vec![msg(1, 5, "hi")])]);
    let ix = index(&segs, 0).unwrap();
    assert_eq!(ix.blocks.len(), 2);
    assert_eq!(ix.lives[0].sum.msgs_in, 1);
    // A half-written block at the end is left for later.
    f.write_all(&[9, 0, 0, 0, 1]).unwrap();
    assert_eq!(index(&segs, 0).unwrap().blocks.len(), 2);
}

#[test]
fn a_reopened_id_ends_the_old_life_also_after_loading() {
    let dir = tempfile::tempdir().unwrap();
    let s = Some("edge");
    let hello = json!({"type": "hello", "source": "edge", "kind": "proxy"});
    let segs = vec![
        segment(
            dir.path(),
            0,
            &[vec![entry(0, None, vec![hello, open(7, 0)])]],
        ),
        segment(
            dir.path(),
            10,
            &[vec![entry(10, s, vec![open(7, 10), close(7, 12, 1000)])]],
        ),
        segment(dir.path(), 20, &[vec![entry(20, s, vec![open(8, 20)])]]),
    ];
    let mid = index(&segs, 1).unwrap();
    assert_eq!(mid.lives.len(), 2, "the old life and the new");
    assert_eq!(mid.open_lives().count(), 0);
    let loaded = SegIndex::from_bytes(&std::fs::read(idx_path(&segs[1])).unwrap()).unwrap();
    assert_eq!(loaded.open_lives().count(), 0);
    let lives = conns(dir.path(), ConnFilter::default());
    assert_eq!(lives.len(), 3, "{lives:?}");
}

#[test]
fn queries_answer_from_the_index_as_of_a_moment() {
    let dir = tempfile::tempdir().unwrap();
    three(dir.path());
    let ms = |s: u64| (T0 + s * 1_000_000) / 1000;
    // Closed with 1006 in [25 s, 35 s]: conn 1, with its whole life's counts.
    let f = ConnFilter {
        closed: Some(true),
        code: Some(1006),
        from_ms: Some(ms(25)),
        to_ms: Some(ms(35)),
        ..ConnFilter::default()
    };
    let got = conns(dir.path(), f);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].conn, got[0].msgs_in), (1, 2));
    // As of 15 s: conn 1 open with one message, conn 2 closed, conn 3 open.
    let f = ConnFilter {
        until_ms: Some(ms(15)),
        ..ConnFilter::default()
    };
    let got = conns(dir.path(), f);
    let by = |id| got.iter().find(|c| c.conn == id).unwrap();
    assert_eq!((by(1).closed_ms, by(1).msgs_in), (None, 1), "{got:?}");
    assert_eq!(by(1).last_messages.len(), 1);
    assert_eq!(by(2).close_code, Some(1000));
    assert_eq!(by(3).closed_ms, None);
    // One life's events, across the three segments, read from its blocks only.
    let ev = history::events(dir.path(), "edge", 1, None).unwrap();
    let kinds: Vec<&str> = ev
        .items
        .iter()
        .map(|e| match e {
            crate::protocol::HistoryEvent::Open { .. } => "open",
            crate::protocol::HistoryEvent::Message { .. } => "message",
            crate::protocol::HistoryEvent::Close { .. } => "close",
        })
        .collect();
    assert_eq!(kinds, ["open", "message", "message", "close"]);
    // The trace of a window, newest first.
    let t = history::trace(dir.path(), (ms(9), ms(21)), 10, None, |_| true)
        .unwrap()
        .items;
    let texts: Vec<&str> = t.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, ["x22", "192.0.2.1 /c3", "x1"]);
}

#[test]
fn a_restart_seeds_what_came_before_the_tail_and_replays_only_the_tail() {
    use crate::server::aggregator::state::State;
    use crate::server::config::AggConfig;
    let dir = tempfile::tempdir().unwrap();
    let segs = three(dir.path());
    // Series of 5 s, from 25 s: the tail is the segment covering 25 s (from 10 s) and the last.
    let cfg = AggConfig {
        series_len: 5,
        ..AggConfig::default()
    };
    let stats = Arc::new(crate::server::record::RecordStats::default());
    let restore = crate::server::record::restore::Restore {
        segments: segs,
        stats: stats.clone(),
    };
    let state = restore.into_state(State::new(cfg));
    let by = |tap: u64| state.conns.values().find(|c| c.tap_conn == tap).unwrap();
    // Conn 2 closed in the first segment: seeded from the index, with its counts.
    let c2 = by(2);
    assert_eq!(c2.closed.as_ref().map(|c| c.code), Some(Some(1000)));
    assert_eq!((c2.msgs_in, c2.bytes_in), (1, 1));
    // Conn 1 was open where the tail begins (seeded), talked twice and closed in it.
    let c1 = by(1);
    assert_eq!(c1.closed.as_ref().map(|c| c.code), Some(Some(1006)));
    assert_eq!(c1.msgs_in, 2);
    // Conn 3 is still open: its state is unknown until its tap speaks of it.
    assert!(by(3).is_open());
    assert_eq!(state.unknown.len(), 1);
    assert_eq!(state.totals.open, 1);
    assert_eq!(state.totals.closed, 2);
    // Only the tail's four events were replayed, not the first segment's five.
    assert_eq!(
        stats
            .restored_events
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
}
