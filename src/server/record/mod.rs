//! The record: every tap frame the observer accepts is appended, as it arrived, to segment
//! files in `--data-dir` by one writer thread, so a restart (or a crash) does not lose the
//! picture. Ingest never waits for it: frames are handed over with `try_send` within a byte
//! budget, and what cannot be written (queue full, disk full or failing) is counted, like tap
//! drops. The oldest segments go first past `--record-max-bytes` / `--record-max-age`.

pub(crate) mod history;
pub(crate) mod index;
pub(crate) mod restore;
pub(crate) mod segment;

use anyhow::Context;
use segment::{seal_block, segment_name, segment_start, Entry, MAGIC};
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default `--data-dir`.
pub const DEFAULT_DATA_DIR: &str = "./sockscope-data";
/// Default `--record-max-bytes`: what fits a laptop.
pub const DEFAULT_RECORD_MAX_BYTES: u64 = 2 << 30;
/// Default `--record-max-age`.
pub const DEFAULT_RECORD_MAX_AGE: &str = "24h";
/// Default `--record-sync`: a crash loses at most this much of the record.
pub const DEFAULT_RECORD_SYNC: &str = "1s";
/// Frame bytes waiting for the writer; past it frames are dropped (counted).
const QUEUE_BYTES: usize = 64 << 20;
/// Frames waiting for the writer.
const QUEUE_FRAMES: usize = 16_384;
/// Entries are compressed and written in blocks of about this size (or at each sync).
const BLOCK_BYTES: usize = 256 << 10;
/// A segment file is closed past this size (or an eighth of `--record-max-bytes`, if less), so
/// retention can delete in steps.
const SEGMENT_BYTES: u64 = 16 << 20;
/// A segment file is closed past this age (or an eighth of `--record-max-age`, if less, but
/// at least a second).
const SEGMENT_AGE: Duration = Duration::from_secs(3600);
/// How often retention looks at the segments besides at each new segment.
const RETENTION_CHECK: Duration = Duration::from_secs(10);
/// How often the indexer looks for closed segments without an index.
const INDEX_EVERY: Duration = Duration::from_secs(5);
/// The lock file that keeps two observers out of one data directory.
const LOCK_FILE: &str = "LOCK";

/// Where and how much to record (`sockscope serve --data-dir …`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordConfig {
    pub dir: PathBuf,
    /// Segments are deleted, oldest first, past this many bytes.
    pub max_bytes: u64,
    /// Segments whose data is all older than this are deleted.
    pub max_age: Duration,
    /// Written data is flushed to disk at least this often.
    pub sync: Duration,
}

/// Counters of the record, shared by the writer thread, ingest and the aggregator.
#[derive(Debug, Default)]
pub(crate) struct RecordStats {
    /// Frames written.
    pub frames: AtomicU64,
    /// Frames not recorded: the writer's queue was full, or the disk refused them.
    pub dropped: AtomicU64,
    pub write_errors: AtomicU64,
    /// Bytes of segment files on disk.
    pub bytes: AtomicU64,
    pub segments: AtomicU64,
    /// Arrival time of the oldest recorded data (µs), 0 when none.
    pub oldest_us: AtomicU64,
    /// Found at start: blocks that failed their checksum and torn tails (cut-off writes).
    pub damaged: AtomicU64,
    /// Events restored at start.
    pub restored_events: AtomicU64,
    /// The last bus stream sequence the record holds (restored at start, then as recorded).
    pub bus_seq: AtomicU64,
    /// Set once the restore at start is done (or there was none).
    pub restored: Arc<std::sync::atomic::AtomicBool>,
    queued_bytes: AtomicUsize,
}

impl RecordStats {
    pub(crate) fn view(&self) -> crate::protocol::RecordingView {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        crate::protocol::RecordingView {
            frames: r(&self.frames),
            dropped: r(&self.dropped),
            write_errors: r(&self.write_errors),
            bytes: r(&self.bytes),
            segments: r(&self.segments),
            oldest_ms: r(&self.oldest_us) / 1000,
            damaged: r(&self.damaged),
            restored_events: r(&self.restored_events),
        }
    }
}

/// Hands accepted frames to the writer; `off` when the observer does not record.
#[derive(Clone, Default)]
pub(crate) struct Recorder(Option<Arc<Inner>>);

struct Inner {
    tx: SyncSender<Msg>,
    stats: Arc<RecordStats>,
}

enum Msg {
    Entry(Entry),
    /// Write and sync what is pending, then say so.
    Flush(std::sync::mpsc::Sender<()>),
}

impl Recorder {
    /// Records `entry` unless the writer is too far behind (then it is counted as dropped).
    /// Never blocks.
    pub(crate) fn record(&self, entry: Entry) {
        let Some(inner) = &self.0 else { return };
        let len = entry.frame.len();
        let queued = inner.stats.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if queued + len > QUEUE_BYTES {
            inner.stats.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            inner.tx.try_send(Msg::Entry(entry))
        {
            inner.stats.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes and syncs everything handed over so far (at shutdown); waits at most `limit`.
    pub(crate) fn flush(&self, limit: Duration) -> bool {
        let Some(inner) = &self.0 else { return true };
        let (tx, rx) = std::sync::mpsc::channel();
        let deadline = Instant::now() + limit;
        let mut msg = Msg::Flush(tx);
        loop {
            match inner.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// The last bus stream sequence the record restored (0: none, or no record).
    pub(crate) fn bus_seq(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |i| i.stats.bus_seq.load(Ordering::Relaxed))
    }

    pub(crate) fn is_on(&self) -> bool {
        self.0.is_some()
    }
}

/// A data directory opened for recording: what is already there (to restore) and the writer.
pub(crate) struct Opened {
    pub recorder: Recorder,
    pub restore: restore::Restore,
}

/// Takes the data directory (one observer at a time), repairs what a crash left, and starts
/// the writer thread. What was recorded before is handed back to be restored.
pub(crate) fn open(cfg: &RecordConfig) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(&cfg.dir).with_context(|| {
        format!(
            "--data-dir {}: cannot create it (give a writable directory, or --no-record)",
            cfg.dir.display()
        )
    })?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cfg.dir.join(LOCK_FILE))
        .with_context(|| format!("--data-dir {}: cannot write in it", cfg.dir.display()))?;
    if lock.try_lock().is_err() {
        anyhow::bail!(
            "--data-dir {} is in use by another sockscope observer: give this one its own \
             --data-dir, or --no-record",
            cfg.dir.display()
        );
    }
    let stats = Arc::new(RecordStats::default());
    let existing = segment::segments(&cfg.dir)
        .with_context(|| format!("--data-dir {}: cannot list it", cfg.dir.display()))?;
    let mut segs = VecDeque::new();
    for p in &existing {
        let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        if let Some(start) = segment_start(p) {
            segs.push_back(Segment {
                path: p.clone(),
                start,
                size,
            });
        }
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_FRAMES);
    let mut writer = Writer {
        cfg: cfg.clone(),
        stats: stats.clone(),
        segs,
        current: None,
        _lock: lock,
    };
    // This run writes into a segment of its own: the ones before are closed, so their indexes
    // are made and kept (a disk that refuses is retried at the first write).
    if let Err(e) = writer.new_segment(sockscope_wire::now_us()) {
        writer.current = None;
        writer.failed(&e, 0);
    }
    writer.account();
    std::thread::Builder::new()
        .name("sockscope-record".into())
        .spawn(move || writer.run(rx))
        .context("cannot start the record's writer thread")?;
    index::spawn_indexer(cfg.dir.clone(), INDEX_EVERY, stats.restored.clone())
        .context("cannot start the record's indexer thread")?;
    Ok(Opened {
        recorder: Recorder(Some(Arc::new(Inner {
            tx,
            stats: stats.clone(),
        }))),
        restore: restore::Restore {
            segments: existing,
            stats,
        },
    })
}

struct Segment {
    path: PathBuf,
    /// Arrival time of its first entry (µs).
    start: u64,
    size: u64,
}

struct Writer {
    cfg: RecordConfig,
    stats: Arc<RecordStats>,
    /// Every segment on disk, oldest first; the last may be `current`.
    segs: VecDeque<Segment>,
    current: Option<File>,
    /// Held for the life of the writer: the directory stays this observer's.
    _lock: File,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut block = Vec::with_capacity(BLOCK_BYTES + (64 << 10));
        let (mut block_start, mut block_frames) = (0u64, 0u64);
        let mut last_sync = Instant::now();
        let mut last_retention = Instant::now();
        loop {
            let wait = self.cfg.sync.saturating_sub(last_sync.elapsed());
            let mut flushed = None;
            let done = match rx.recv_timeout(wait) {
                Ok(Msg::Flush(ack)) => {
                    flushed = Some(ack);
                    false
                }
                Ok(Msg::Entry(e)) => {
                    self.stats
                        .queued_bytes
                        .fetch_sub(e.frame.len(), Ordering::Relaxed);
                    if block.is_empty() {
                        block_start = e.arrival_us;
                    }
                    e.write_to(&mut block);
                    block_frames += 1;
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            let sync_due = last_sync.elapsed() >= self.cfg.sync || done || flushed.is_some();
            if !block.is_empty() && (block.len() >= BLOCK_BYTES || sync_due) {
                self.write_block(&block, block_start, block_frames);
                block.clear();
                block_frames = 0;
            }
            if sync_due {
                if let Some(f) = &self.current {
                    if let Err(e) = f.sync_data() {
                        self.failed(&e, 0);
                    }
                }
                last_sync = Instant::now();
            }
            if let Some(ack) = flushed {
                let _ = ack.send(());
            }
            if last_retention.elapsed() >= RETENTION_CHECK {
                self.retention();
                last_retention = Instant::now();
            }
            if done {
                return;
            }
        }
    }

    fn write_block(&mut self, raw: &[u8], start_us: u64, frames: u64) {
        let sealed = match seal_block(raw) {
            Ok(s) => s,
            Err(e) => return self.failed(&e, frames),
        };
        let max_size = (self.cfg.max_bytes / 8).clamp(64 << 10, SEGMENT_BYTES);
        let max_age = (self.cfg.max_age / 8).clamp(Duration::from_secs(1), SEGMENT_AGE);
        let full = self.segs.back().is_some_and(|s| {
            s.size + sealed.len() as u64 > max_size
                || start_us.saturating_sub(s.start) > max_age.as_micros() as u64
        });
        if self.current.is_none() || full {
            if let Err(e) = self.new_segment(start_us) {
                return self.failed(&e, frames);
            }
        }
        let f = self.current.as_mut().expect("a segment is open");
        match f.write_all(&sealed) {
            Ok(()) => {
                let seg = self.segs.back_mut().expect("the open segment is listed");
                seg.size += sealed.len() as u64;
                self.stats.frames.fetch_add(frames, Ordering::Relaxed);
                self.account();
            }
            Err(e) => {
                // Start afresh next time: a half-written block is cut off at restore.
                self.current = None;
                self.failed(&e, frames);
            }
        }
    }

    fn new_segment(&mut self, start_us: u64) -> std::io::Result<()> {
        // Names sort by time; never before an existing one, even if the clock went back.
        let start = self
            .segs
            .back()
            .map_or(start_us, |s| start_us.max(s.start + 1));
        let path = self.cfg.dir.join(segment_name(start));
        let mut f = File::options().create_new(true).append(true).open(&path)?;
        f.write_all(MAGIC)?;
        // The new file's name must survive a crash too.
        File::open(&self.cfg.dir)?.sync_all()?;
        self.current = Some(f);
        self.segs.push_back(Segment {
            path,
            start,
            size: MAGIC.len() as u64,
        });
        self.retention();
        Ok(())
    }

    /// Deletes the oldest segments past the byte and age limits (never the open one).
    fn retention(&mut self) {
        let now = sockscope_wire::now_us();
        let horizon = now.saturating_sub(self.cfg.max_age.as_micros() as u64);
        loop {
            let total: u64 = self.segs.iter().map(|s| s.size).sum();
            let over_bytes = total > self.cfg.max_bytes;
            // A segment's data ends where the next one starts.
            let too_old = self.segs.get(1).is_some_and(|next| next.start < horizon);
            let deletable = self.segs.len() > 1 || self.current.is_none();
            if !(deletable && (over_bytes || too_old)) || self.segs.is_empty() {
                break;
            }
            let old = self.segs.pop_front().expect("not empty");
            if self.segs.is_empty() {
                self.current = None;
            }
            if let Err(e) = std::fs::remove_file(&old.path) {
                tracing::warn!(path = %old.path.display(), error = %e, "record: cannot delete an old segment");
            }
            // Its index goes with it (the indexer also sweeps up any left behind).
            let _ = std::fs::remove_file(old.path.with_extension("idx"));
        }
        self.account();
    }

    fn account(&self) {
        let s = &self.stats;
        s.bytes
            .store(self.segs.iter().map(|s| s.size).sum(), Ordering::Relaxed);
        s.segments.store(self.segs.len() as u64, Ordering::Relaxed);
        s.oldest_us
            .store(self.segs.front().map_or(0, |s| s.start), Ordering::Relaxed);
    }

    /// A write failed: the frames are counted as dropped, and the error is logged (at 1, 2,
    /// 4, … failures, so a full disk does not flood the log).
    fn failed(&self, e: &std::io::Error, frames: u64) {
        self.stats.dropped.fetch_add(frames, Ordering::Relaxed);
        let n = self.stats.write_errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                dir = %self.cfg.dir.display(),
                failures = n,
                "record: cannot write ({e}); live ingest goes on, recording drops are counted"
            );
        }
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Recorder(on)"
        } else {
            "Recorder(off)"
        })
    }
}
