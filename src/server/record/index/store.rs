//! Where segment indexes live: in memory (the most recently used, and the segment being
//! written), in `.idx` files beside closed segments, and the low-priority thread that makes
//! those files.

use super::{head_bounds, SegIndex, HEAD};
use crate::server::record::segment::{read_block, read_blocks, segments, Entry};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

/// Indexes of closed segments kept in memory (the one being written is always kept).
const CACHED: usize = 6;

/// The index file beside a segment.
pub(super) fn idx_path(seg: &Path) -> PathBuf {
    seg.with_extension("idx")
}

/// Indexes in memory, by segment path, with when each was last used.
#[derive(Default)]
pub(super) struct Cache {
    pub(super) map: HashMap<PathBuf, (Arc<SegIndex>, u64)>,
    tick: u64,
}

pub(super) static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

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
///
/// It starts once `restored` is set: the restore at start indexes what it needs itself, and
/// two builders of one index would only double the work.
pub(crate) fn spawn_indexer(
    dir: PathBuf,
    every: std::time::Duration,
    restored: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sockscope-index".into())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            let _ = rustix::process::setpriority_process(None, 19);
            while !restored.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
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
/// number and entries to `f`; a block that no longer reads is skipped.
pub(crate) fn read_some(
    path: &Path,
    ix: &SegIndex,
    which: impl IntoIterator<Item = u32>,
    mut f: impl FnMut(u32, Vec<Entry>),
) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    for b in which {
        if let Some(place) = ix.blocks.get(b as usize) {
            if let Ok(entries) = read_block(&file, place) {
                f(b, entries);
            }
        }
    }
    Ok(())
}
