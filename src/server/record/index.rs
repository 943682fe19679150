//! The record's index: for each segment, where its blocks lie in time, every connection life it
//! touched (a running summary and the blocks holding its events) and the lives open at its end.
//! Derived from the segments alone: kept beside a closed segment as `.idx` (written in the
//! background at the lowest CPU priority), extended on demand for the segment being written,
//! and rebuilt whenever missing or damaged. History queries read indexes and only the blocks
//! they need, not the whole record.

use super::segment::{BlockRef, Entry, RECORDED};
use crate::protocol::{HistoryConn, HistoryMessage};
use serde::{Deserialize, Serialize};
use sockscope_wire::{decode_batch, Direction, Event, Hello};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// First bytes of an index file (format version 1). The header goes on with the segment's
/// length when indexed, its time bounds (`lo`, `hi`) and the CRC-32 of the compressed body.
const IDX_MAGIC: &[u8; 8] = b"SSIDX01\n";
/// Bytes of an index file's header.
pub(super) const HEAD: usize = 36;
/// Last messages kept per connection in a history row.
pub(crate) const LAST_MESSAGES: usize = 3;
/// Characters of a payload shown in a history row's last messages.
const PREVIEW: usize = 256;
/// An event's own time is believed up to this far past its arrival (µs).
pub(crate) const TS_SLACK_US: u64 = 60_000_000;

/// A connection's data messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Counts {
    fn of(c: &HistoryConn) -> Self {
        Counts {
            msgs_in: c.msgs_in,
            msgs_out: c.msgs_out,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
        }
    }

    fn add(&mut self, o: &Counts) {
        self.msgs_in += o.msgs_in;
        self.msgs_out += o.msgs_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }

    fn count(&mut self, dir: Direction, size: u64) {
        match dir {
            Direction::ClientToServer => {
                self.msgs_in += 1;
                self.bytes_in += size;
            }
            Direction::ServerToClient => {
                self.msgs_out += 1;
                self.bytes_out += size;
            }
        }
    }

    fn set(&self, c: &mut HistoryConn) {
        c.msgs_in = self.msgs_in;
        c.msgs_out = self.msgs_out;
        c.bytes_in = self.bytes_in;
        c.bytes_out = self.bytes_out;
    }
}

/// One connection life as one segment saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Life {
    /// As of the segment's end, counted over the whole life so far.
    pub sum: HistoryConn,
    /// Its counts when the segment began (zero when it opened in it).
    pub start: Counts,
    /// The entries of this segment's blocks with its events, and the data counted in each.
    pub postings: Postings,
}

impl Life {
    /// The life as it stood at `at_us` (`block_ts`: the time bounds of its segment's blocks):
    /// counts through the blocks whose events begin by then. `None` if it had not opened yet.
    pub(crate) fn as_of(&self, block_ts: &[(u64, u64)], at_us: u64) -> Option<HistoryConn> {
        if self.sum.opened_ms * 1000 > at_us {
            return None;
        }
        let mut c = self.sum.clone();
        if block_ts.last().is_some_and(|(_, hi)| *hi <= at_us)
            || c.closed_ms.is_some_and(|t| t * 1000 <= at_us)
        {
            // The segment (or the life) was over by then.
            return Some(c);
        }
        let mut n = self.start;
        for (b, _, k) in self.postings.iter() {
            if block_ts.get(b as usize).is_some_and(|(lo, _)| *lo <= at_us) {
                n.add(&k);
            }
        }
        n.set(&mut c);
        if c.closed_ms.is_some_and(|t| t * 1000 > at_us) {
            c.closed_ms = None;
            c.close_code = None;
            c.close_reason = None;
            c.closed_by = None;
        }
        c.last_messages.retain(|m| m.ts_ms * 1000 <= at_us);
        Some(c)
    }
}

/// Where an open life is held while a segment is indexed.
#[derive(Clone, Debug)]
enum Slot {
    /// In `lives`: it had an event in this segment.
    Active(usize),
    /// Open since an earlier segment, with no event in this one yet.
    Carried(Box<HistoryConn>),
}

type Key = (Arc<str>, u64);

/// The index of one segment.
#[derive(Clone, Debug, Default)]
pub(crate) struct SegIndex {
    /// Bytes of the segment file indexed (through its last whole block).
    pub len: u64,
    /// The segment's length when it was indexed: a closed segment's index is current while
    /// its file has this length.
    file_len: u64,
    pub blocks: Vec<BlockRef>,
    /// Per block: the earliest and latest time of its events and arrivals (µs).
    pub block_ts: Vec<(u64, u64)>,
    /// The same over the whole segment ((MAX, 0) when it has none).
    pub lo: u64,
    pub hi: u64,
    /// Every connection life with an event in this segment, in order of its first one.
    pub lives: Vec<Life>,
    open: HashMap<Key, Slot>,
    /// The latest hello of each source, in this segment or before: a restart that replays only
    /// the record's tail knows its sources from these.
    pub hellos: BTreeMap<String, Hello>,
    /// The last bus stream sequence recorded in this segment or before (0: none).
    pub bus_seq: u64,
    /// Events read to build it.
    pub events: u64,
}

/// What an index file holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    len: u64,
    file_len: u64,
    blocks: Vec<BlockRef>,
    block_ts: Vec<(u64, u64)>,
    lo: u64,
    hi: u64,
    lives: Vec<Life>,
    carried: Vec<HistoryConn>,
    hellos: Vec<Hello>,
    #[serde(default)]
    bus_seq: u64,
    events: u64,
}

impl SegIndex {
    /// Starts a segment's index with the lives open at the end of the one before.
    fn after(prev: Option<&SegIndex>) -> Self {
        let mut ix = SegIndex {
            lo: u64::MAX,
            ..SegIndex::default()
        };
        if let Some(p) = prev {
            ix.hellos = p.hellos.clone();
            ix.bus_seq = p.bus_seq;
            for c in p.open_lives() {
                ix.open.insert(
                    (Arc::from(c.source.as_str()), c.conn),
                    Slot::Carried(Box::new(c)),
                );
            }
        }
        ix
    }

    /// Lives open at the end of what is indexed.
    pub(crate) fn open_lives(&self) -> impl Iterator<Item = HistoryConn> + '_ {
        self.open.values().map(|s| match s {
            Slot::Active(i) => self.lives[*i].sum.clone(),
            Slot::Carried(c) => (**c).clone(),
        })
    }

    /// Lives open since before this segment with no event in it.
    pub(crate) fn carried(&self) -> impl Iterator<Item = &HistoryConn> + '_ {
        self.open.values().filter_map(|s| match s {
            Slot::Carried(c) => Some(&**c),
            Slot::Active(_) => None,
        })
    }

    /// Brings the life `key` into `lives` (it has an event in this entry) and returns its
    /// summary and the entry's counts.
    fn active(
        &mut self,
        key: &Key,
        (block, entry): (u32, u32),
    ) -> Option<(&mut HistoryConn, &mut Counts)> {
        let i = match self.open.get_mut(key)? {
            Slot::Active(i) => *i,
            slot @ Slot::Carried(_) => {
                let i = self.lives.len();
                let Slot::Carried(c) = std::mem::replace(slot, Slot::Active(i)) else {
                    unreachable!("matched above")
                };
                self.lives.push(Life {
                    start: Counts::of(&c),
                    sum: *c,
                    postings: Postings::default(),
                });
                i
            }
        };
        let life = &mut self.lives[i];
        Some((&mut life.sum, life.postings.at(block, entry)))
    }

    /// Applies one block's entries.
    fn block(&mut self, place: BlockRef, entries: Vec<Entry>) {
        let block = self.blocks.len() as u32;
        self.blocks.push(place);
        let (mut lo, mut hi) = (place.first_us, place.last_us);
        for (entry, e) in entries.into_iter().enumerate() {
            self.bus_seq = self.bus_seq.max(e.bus_seq.unwrap_or(0));
            let at = (block, entry as u32);
            self.events += frame_events(&e, |src, ts, ev| match ev {
                Event::Hello(h) => {
                    self.hellos.insert(h.source.clone(), h);
                }
                ev => {
                    (lo, hi) = (lo.min(ts), hi.max(ts));
                    self.event(src.clone(), ts, at, ev);
                }
            });
        }
        self.block_ts.push((lo, hi));
        (self.lo, self.hi) = (self.lo.min(lo), self.hi.max(hi));
    }

    fn event(&mut self, src: Arc<str>, ts: u64, at: (u32, u32), ev: Event) {
        match ev {
            Event::ConnOpen(o) => {
                let key = (src.clone(), o.conn);
                // The same id opened again: the old life ends there, as the live view has it.
                if let Some(Slot::Carried(old)) = self.open.remove(&key) {
                    self.lives.push(Life {
                        start: Counts::of(&old),
                        sum: *old,
                        postings: Postings::default(),
                    });
                }
                let i = self.lives.len();
                self.lives.push(Life {
                    sum: HistoryConn {
                        source: src.to_string(),
                        conn: o.conn,
                        ip: o.ip,
                        user_agent: o.user_agent.unwrap_or_default(),
                        path: o.path,
                        opened_ms: o.ts.unwrap_or(ts) / 1000,
                        ..HistoryConn::default()
                    },
                    start: Counts::default(),
                    postings: Postings::default(),
                });
                self.lives[i].postings.at(at.0, at.1);
                self.open.insert(key, Slot::Active(i));
            }
            Event::Message(m) => {
                let Some((sum, here)) = self.active(&(src, m.conn), at) else {
                    return;
                };
                if !m.opcode.is_control() {
                    let mut one = Counts::default();
                    one.count(m.dir, m.size);
                    let mut n = Counts::of(sum);
                    n.add(&one);
                    n.set(sum);
                    here.add(&one);
                }
                let last = &mut sum.last_messages;
                if last.len() == LAST_MESSAGES {
                    last.remove(0);
                }
                last.push(HistoryMessage {
                    ts_ms: ts / 1000,
                    dir: m.dir,
                    opcode: m.opcode,
                    size: m.size,
                    text: m.text.map(|t| t.chars().take(PREVIEW).collect()),
                });
            }
            Event::ConnClose(cl) => {
                let key = (src, cl.conn);
                let Some((c, _)) = self.active(&key, at) else {
                    return;
                };
                c.closed_ms = Some(ts / 1000);
                c.close_code = cl.code;
                c.close_reason = cl.reason;
                c.closed_by = Some(cl.by);
                self.open.remove(&key);
            }
            _ => {}
        }
    }

    fn to_bytes(&self) -> std::io::Result<Vec<u8>> {
        let stored = Stored {
            len: self.len,
            file_len: self.file_len,
            blocks: self.blocks.clone(),
            block_ts: self.block_ts.clone(),
            lo: self.lo,
            hi: self.hi,
            lives: self
                .lives
                .iter()
                .map(|l| {
                    let mut l = l.clone();
                    l.postings.seal();
                    l
                })
                .collect(),
            carried: self.carried().cloned().collect(),
            hellos: self.hellos.values().cloned().collect(),
            bus_seq: self.bus_seq,
            events: self.events,
        };
        let raw = rmp_serde::to_vec_named(&stored).map_err(std::io::Error::other)?;
        let z = zstd::bulk::compress(&raw, super::segment::ZSTD_LEVEL)?;
        let mut out = Vec::with_capacity(z.len() + HEAD);
        out.extend_from_slice(IDX_MAGIC);
        for n in [self.file_len, self.lo, self.hi] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&crc32fast::hash(&z).to_le_bytes());
        out.extend_from_slice(&z);
        Ok(out)
    }

    fn from_bytes(data: &[u8]) -> Option<Self> {
        let (head, z) = (data.get(..HEAD)?, data.get(HEAD..)?);
        if head_bounds(head).is_none() || crc32fast::hash(z).to_le_bytes() != head[32..HEAD] {
            return None;
        }
        let raw = zstd::stream::decode_all(z).ok()?;
        let s: Stored = rmp_serde::from_slice(&raw).ok()?;
        let mut open = HashMap::new();
        for c in s.carried {
            open.insert(
                (Arc::from(c.source.as_str()), c.conn),
                Slot::Carried(Box::new(c)),
            );
        }
        // In order of first event: a life reopened or closed later in the segment gives way
        // to what came after it.
        for (i, l) in s.lives.iter().enumerate() {
            let key = (Arc::from(l.sum.source.as_str()), l.sum.conn);
            if l.sum.closed_ms.is_none() {
                open.insert(key, Slot::Active(i));
            } else {
                open.remove(&key);
            }
        }
        Some(SegIndex {
            len: s.len,
            file_len: s.file_len,
            blocks: s.blocks,
            block_ts: s.block_ts,
            lo: s.lo,
            hi: s.hi,
            lives: s.lives,
            open,
            hellos: s
                .hellos
                .into_iter()
                .map(|h| (h.source.clone(), h))
                .collect(),
            bus_seq: s.bus_seq,
            events: s.events,
        })
    }
}

/// The events of one recorded frame, each with its source (the session's, or the one the
/// frame's hello names) and its time, hellos included; returns how many. A frame that does not
/// decode has none.
pub(crate) fn frame_events(e: &Entry, mut f: impl FnMut(&Arc<str>, u64, Event)) -> u64 {
    let Ok(batch) = decode_batch(e.encoding, &e.frame, &RECORDED) else {
        return 0;
    };
    let n = batch.events.len() as u64;
    let mut source = e.source.clone();
    for ev in batch.events {
        if let Event::Hello(h) = &ev {
            source.get_or_insert_with(|| Arc::from(h.source.as_str()));
        }
        if let Some(src) = &source {
            f(src, event_ts(&ev, e.arrival_us), ev);
        }
    }
    n
}

/// An event's time: its own, believed up to [`TS_SLACK_US`] past its arrival.
pub(crate) fn event_ts(ev: &Event, arrival_us: u64) -> u64 {
    let ts = match ev {
        Event::ConnOpen(o) => o.ts,
        Event::Message(m) => m.ts,
        Event::ConnClose(c) => c.ts,
        _ => None,
    };
    ts.unwrap_or(arrival_us).min(arrival_us + TS_SLACK_US)
}

/// `(file_len, lo, hi)` from an index file's header, if it is one.
pub(super) fn head_bounds(head: &[u8]) -> Option<(u64, u64, u64)> {
    if head.len() < HEAD || &head[..8] != IDX_MAGIC {
        return None;
    }
    let n = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().expect("8 bytes"));
    Some((n(8), n(16), n(24)))
}

mod postings;
mod store;
pub(crate) use postings::Postings;
pub(crate) use store::{index, read_some, span, spawn_indexer};

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
