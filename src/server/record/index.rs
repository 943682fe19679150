//! The record's index: for each segment, where its blocks lie in time, every connection life it
//! touched (a running summary and the blocks holding its events) and the lives open at its end.
//! Derived from the segments alone: kept beside a closed segment as `.idx` (written in the
//! background at the lowest CPU priority), extended on demand for the segment being written,
//! and rebuilt whenever missing or damaged. History queries read indexes and only the blocks
//! they need, not the whole record.

use super::segment::{read_block, read_blocks, segments, BlockRef, Entry, RECORDED};
use crate::protocol::{HistoryConn, HistoryMessage};
use serde::{Deserialize, Serialize};
use sockscope_wire::{decode_batch, Direction, Event, Hello};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

/// First bytes of an index file (format version 1). The header goes on with the segment's
/// length when indexed, its time bounds (`lo`, `hi`) and the CRC-32 of the compressed body.
const IDX_MAGIC: &[u8; 8] = b"SSIDX01\n";
/// Bytes of an index file's header.
const HEAD: usize = 36;
/// Last messages kept per connection in a history row.
pub(crate) const LAST_MESSAGES: usize = 3;
/// Characters of a payload shown in a history row's last messages.
const PREVIEW: usize = 256;
/// Indexes of closed segments kept in memory (the one being written is always kept).
const CACHED: usize = 6;
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
    /// The blocks of this segment with its events, and the data counted in each.
    pub postings: Vec<(u32, Counts)>,
}

impl Life {
    /// The life as it stood at `at_us` (`block_ts`: the time bounds of its segment's blocks):
    /// counts through the blocks whose events begin by then. `None` if it had not opened yet.
    pub(crate) fn as_of(&self, block_ts: &[(u64, u64)], at_us: u64) -> Option<HistoryConn> {
        if self.sum.opened_ms * 1000 > at_us {
            return None;
        }
        let mut c = self.sum.clone();
        if block_ts.iter().all(|(_, hi)| *hi <= at_us) {
            return Some(c);
        }
        let mut n = self.start;
        for (b, k) in &self.postings {
            if block_ts
                .get(*b as usize)
                .is_some_and(|(lo, _)| *lo <= at_us)
            {
                n.add(k);
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

    /// Brings the life `key` into `lives` (it has an event in this block) and returns it.
    fn active(&mut self, key: &Key, block: u32) -> Option<&mut Life> {
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
                    postings: Vec::new(),
                });
                i
            }
        };
        let life = &mut self.lives[i];
        if life.postings.last().is_none_or(|(b, _)| *b != block) {
            life.postings.push((block, Counts::default()));
        }
        Some(life)
    }

    /// Applies one block's entries.
    fn block(&mut self, place: BlockRef, entries: Vec<Entry>) {
        let block = self.blocks.len() as u32;
        self.blocks.push(place);
        let (mut lo, mut hi) = (place.first_us, place.last_us);
        for e in entries {
            let Ok(batch) = decode_batch(e.encoding, &e.frame, &RECORDED) else {
                continue;
            };
            // The session's source, or the one its first frame's hello names.
            let mut source = e.source.clone();
            for ev in batch.events {
                self.events += 1;
                if let Event::Hello(h) = ev {
                    source.get_or_insert_with(|| Arc::from(h.source.as_str()));
                    self.hellos.insert(h.source.clone(), h);
                    continue;
                }
                let Some(src) = source.clone() else { continue };
                let ts = event_ts(&ev, e.arrival_us);
                (lo, hi) = (lo.min(ts), hi.max(ts));
                self.event(src, ts, block, ev);
            }
        }
        self.block_ts.push((lo, hi));
        (self.lo, self.hi) = (self.lo.min(lo), self.hi.max(hi));
    }

    fn event(&mut self, src: Arc<str>, ts: u64, block: u32, ev: Event) {
        match ev {
            Event::ConnOpen(o) => {
                let key = (src.clone(), o.conn);
                // The same id opened again: the old life ends there, as the live view has it.
                if let Some(Slot::Carried(old)) = self.open.remove(&key) {
                    self.lives.push(Life {
                        start: Counts::of(&old),
                        sum: *old,
                        postings: Vec::new(),
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
                    postings: vec![(block, Counts::default())],
                });
                self.open.insert(key, Slot::Active(i));
            }
            Event::Message(m) => {
                let Some(life) = self.active(&(src, m.conn), block) else {
                    return;
                };
                if !m.opcode.is_control() {
                    let mut one = Counts::default();
                    one.count(m.dir, m.size);
                    let mut n = Counts::of(&life.sum);
                    n.add(&one);
                    n.set(&mut life.sum);
                    life.postings.last_mut().expect("just pushed").1.add(&one);
                }
                let last = &mut life.sum.last_messages;
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
                let Some(life) = self.active(&key, block) else {
                    return;
                };
                let c = &mut life.sum;
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
            lives: self.lives.clone(),
            carried: self.carried().cloned().collect(),
            hellos: self.hellos.values().cloned().collect(),
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
            events: s.events,
        })
    }
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

/// The index file beside a segment.
fn idx_path(seg: &Path) -> PathBuf {
    seg.with_extension("idx")
}

/// Indexes in memory, by segment path, with when each was last used.
#[derive(Default)]
struct Cache {
    map: HashMap<PathBuf, (Arc<SegIndex>, u64)>,
    tick: u64,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

fn cached(path: &Path) -> Option<Arc<SegIndex>> {
    let mut c = CACHE.lock().expect("index cache");
    c.tick += 1;
    let tick = c.tick;
    c.map.get_mut(path).map(|(ix, used)| {
        *used = tick;
        ix.clone()
    })
}

fn keep(path: &Path, ix: Arc<SegIndex>, sealed: bool) {
    let mut c = CACHE.lock().expect("index cache");
    c.tick += 1;
    let tick = c.tick;
    c.map.insert(path.to_path_buf(), (ix, tick));
    // Forget the least recently used closed segments past the limit, and deleted ones.
    c.map.retain(|p, _| p.exists());
    while c.map.len() > CACHED + usize::from(!sealed) {
        let Some(old) = c
            .map
            .iter()
            .filter(|(p, _)| *p != path)
            .min_by_key(|(_, (_, used))| *used)
            .map(|(p, _)| p.clone())
        else {
            break;
        };
        c.map.remove(&old);
    }
}

/// The index of `segs[k]` (segments oldest first), current with its file: from memory, from
/// its `.idx` file, or built (from the index of the segment before) and, once the segment is
/// closed, saved.
pub(crate) fn index(segs: &[PathBuf], k: usize) -> std::io::Result<Arc<SegIndex>> {
    let path = &segs[k];
    let file_len = std::fs::metadata(path)?.len();
    // The last segment may still be written to; the others are closed.
    let sealed = k + 1 < segs.len();
    let have = cached(path);
    if let Some(ix) = &have {
        if ix.file_len == file_len {
            return Ok(ix.clone());
        }
    }
    if have.is_none() && sealed {
        if let Some(ix) = std::fs::read(idx_path(path))
            .ok()
            .and_then(|d| SegIndex::from_bytes(&d))
            .filter(|ix| ix.file_len == file_len)
        {
            let ix = Arc::new(ix);
            keep(path, ix.clone(), true);
            return Ok(ix);
        }
    }
    let mut ix = match have {
        // Extend what was indexed of it (the segment being written grew).
        Some(ix) if ix.file_len < file_len => Arc::unwrap_or_clone(ix),
        _ => {
            let prev = match k {
                0 => None,
                _ => index(segs, k - 1).ok(),
            };
            SegIndex::after(prev.as_deref())
        }
    };
    let report = read_blocks(path, ix.len, |place, entries| ix.block(place, entries))?;
    ix.len = report.valid_len.max(ix.len);
    ix.file_len = file_len;
    if sealed {
        save(path, &ix);
    }
    let ix = Arc::new(ix);
    keep(path, ix.clone(), sealed);
    Ok(ix)
}

/// Writes a closed segment's index beside it (atomically: a crash leaves the old or the new).
fn save(seg: &Path, ix: &SegIndex) {
    let to = idx_path(seg);
    let tmp = to.with_extension("idx.tmp");
    let done = ix
        .to_bytes()
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, &to));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(path = %to.display(), error = %e, "record: cannot save a segment's index; it is rebuilt when needed");
    }
}

/// `(file_len, lo, hi)` from an index file's header, if it is one.
fn head_bounds(head: &[u8]) -> Option<(u64, u64, u64)> {
    if head.len() < HEAD || &head[..8] != IDX_MAGIC {
        return None;
    }
    let n = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().expect("8 bytes"));
    Some((n(8), n(16), n(24)))
}

/// The time bounds (µs) of the events of `segs[k]`: from memory, from its index file's header,
/// or by indexing it.
fn bounds(segs: &[PathBuf], k: usize) -> std::io::Result<(u64, u64)> {
    let path = &segs[k];
    if k + 1 < segs.len() {
        if let Some(ix) = cached(path) {
            return Ok((ix.lo, ix.hi));
        }
        let mut head = [0u8; HEAD];
        let file_len = std::fs::metadata(path)?.len();
        if let Some((len, lo, hi)) = std::fs::File::open(idx_path(path))
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .ok()
            .and_then(|()| head_bounds(&head))
        {
            if len == file_len {
                return Ok((lo, hi));
            }
        }
    }
    index(segs, k).map(|ix| (ix.lo, ix.hi))
}

/// The segments (indexes into `segs`, oldest first) that can hold events timed in
/// `[from_us, to_us]`: from the first whose events reach `from_us` to the last whose events
/// begin by `to_us`. Taps' clocks differ from the observer's, so this goes by the events'
/// own times, not the segment's name.
pub(crate) fn span(
    segs: &[PathBuf],
    from_us: u64,
    to_us: u64,
) -> std::io::Result<std::ops::Range<usize>> {
    let mut first = None;
    let mut last = 0;
    for k in 0..segs.len() {
        let (lo, hi) = bounds(segs, k)?;
        if lo <= to_us {
            last = k + 1;
            if hi >= from_us && first.is_none() {
                first = Some(k);
            }
        }
    }
    Ok(first.unwrap_or(last).min(last)..last)
}

/// Indexes the closed segments of `dir` that have no index file yet, oldest first, and
/// removes index files whose segment is gone (retention).
pub(crate) fn catch_up(dir: &Path) -> std::io::Result<usize> {
    let segs = segments(dir)?;
    let mut made = 0;
    for k in 0..segs.len().saturating_sub(1) {
        if !idx_path(&segs[k]).exists() {
            index(&segs, k)?;
            made += 1;
        }
    }
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "idx") && !p.with_extension("seg").exists() {
            let _ = std::fs::remove_file(&p);
        }
    }
    Ok(made)
}

/// Starts the thread that keeps the index files of `dir` made, at the lowest CPU priority so
/// it only takes time ingest leaves idle.
pub(crate) fn spawn_indexer(dir: PathBuf, every: std::time::Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sockscope-index".into())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            let _ = rustix::process::setpriority_process(None, 19);
            loop {
                if let Err(e) = catch_up(&dir) {
                    tracing::debug!(error = %e, "record: indexing deferred");
                }
                std::thread::sleep(every);
            }
        })
        .map(|_| ())
}

/// Reads the blocks `which` (indexes into `ix.blocks`) of segment `path`, handing each block's
/// entries to `f`; a block that no longer reads is skipped.
pub(crate) fn read_some(
    path: &Path,
    ix: &SegIndex,
    which: impl IntoIterator<Item = u32>,
    mut f: impl FnMut(&BlockRef, Vec<Entry>),
) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    for b in which {
        if let Some(place) = ix.blocks.get(b as usize) {
            if let Ok(entries) = read_block(&file, place) {
                f(place, entries);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
