//! The record's file format: segment files of checksummed, zstd-compressed blocks, each block
//! a run of entries (one accepted tap frame each, as it arrived). Reading stops cleanly at a
//! torn tail and skips what fails its checksum, counting both.
//!
//! ```text
//! segment  = MAGIC block*
//! block    = u32 compressed_len | u32 crc32(compressed) | zstd(entry*)      (little endian)
//! entry    = u64 arrival_us | u8 encoding [| u64 bus_seq] | u8 source_len | source
//!            | u32 frame_len | frame
//! encoding = 0 JSON | 1 MessagePack, + 0x80 when a bus stream sequence follows
//! ```

use bytes::Bytes;
use sockscope_wire::Encoding;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The encoding byte's flag: a bus stream sequence follows it.
const BUS_SEQ: u8 = 0x80;
/// First bytes of every segment file (format version 1).
pub(crate) const MAGIC: &[u8; 8] = b"SSREC01\n";
/// Largest block accepted when reading: a longer length is damage, not data.
const MAX_BLOCK: usize = 64 << 20;
/// zstd level: 1 is the fastest, and tap batches (repeated keys, similar events) still
/// compress about 5× at it.
pub(crate) const ZSTD_LEVEL: i32 = 1;

/// Limits a recorded frame is decoded with: it was validated when it arrived, under that run's
/// limits, so it is taken as it is now, whatever today's limits say.
pub(crate) const RECORDED: sockscope_wire::Limits = sockscope_wire::Limits {
    max_events: usize::MAX,
    max_payload: usize::MAX,
};

/// One accepted tap frame.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    /// When the observer received it.
    pub arrival_us: u64,
    pub encoding: Encoding,
    /// The tap session's source once its hello was seen (the first frame carries the hello).
    pub source: Option<Arc<str>>,
    /// The frame as it arrived (a validated batch).
    pub frame: Bytes,
    /// Its sequence in the bus's stream, when it came from NATS JetStream (`serve --bus`):
    /// where the observer's consumer position stands after a restart.
    pub bus_seq: Option<u64>,
}

impl Entry {
    /// Appends the entry's bytes to a block being built.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.arrival_us.to_le_bytes());
        let enc = match self.encoding {
            Encoding::Json => 0,
            Encoding::MsgPack => 1,
        };
        match self.bus_seq {
            Some(seq) => {
                out.push(enc | BUS_SEQ);
                out.extend_from_slice(&seq.to_le_bytes());
            }
            None => out.push(enc),
        }
        let src = self.source.as_deref().unwrap_or("").as_bytes();
        // Source ids are at most 64 bytes (the wire's rule).
        let src = &src[..src.len().min(255)];
        out.push(src.len() as u8);
        out.extend_from_slice(src);
        out.extend_from_slice(&(self.frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.frame);
    }

    /// Bytes [`Entry::write_to`] writes.
    #[cfg(test)]
    pub(crate) fn encoded_len(&self) -> usize {
        8 + 1
            + self.bus_seq.map_or(0, |_| 8)
            + 1
            + self.source.as_deref().map_or(0, |s| s.len().min(255))
            + 4
            + self.frame.len()
    }
}

/// A block's file bytes: header and compressed entries.
pub(crate) fn seal_block(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let compressed = zstd::bulk::compress(raw, ZSTD_LEVEL)?;
    let mut out = Vec::with_capacity(compressed.len() + 8);
    out.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// What reading one segment found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadReport {
    pub blocks: u64,
    pub entries: u64,
    /// Blocks that failed their checksum or did not decompress (skipped).
    pub damaged_blocks: u64,
    /// The file ended inside a block (a write cut off by a crash): `valid_len` is where the
    /// good data ends.
    pub torn_tail: bool,
    /// Bytes up to the end of the last whole block.
    pub valid_len: u64,
    /// The file does not start with [`MAGIC`]: not read at all.
    pub foreign: bool,
}

/// Where one whole, good block of a segment is: its header's file offset, its length with the
/// header, and the arrival times of its first and last entries (µs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct BlockRef {
    pub offset: u64,
    pub len: u32,
    pub first_us: u64,
    pub last_us: u64,
}

/// Reads every entry of a segment in order, handing each to `f`.
pub(crate) fn read_segment(path: &Path, mut f: impl FnMut(Entry)) -> std::io::Result<ReadReport> {
    read_blocks(path, 0, |_, entries| entries.into_iter().for_each(&mut f))
}

/// Reads the whole blocks of a segment from byte `from` on (0: the start), handing each good
/// block's place and entries to `f`, in order.
pub(crate) fn read_blocks(
    path: &Path,
    from: u64,
    mut f: impl FnMut(BlockRef, Vec<Entry>),
) -> std::io::Result<ReadReport> {
    use std::io::Seek;
    let mut file = std::fs::File::open(path)?;
    let mut report = ReadReport::default();
    let mut magic = [0u8; 8];
    if file.read_exact(&mut magic).is_err() || &magic != MAGIC {
        report.foreign = true;
        return Ok(report);
    }
    let at0 = from.max(MAGIC.len() as u64);
    file.seek(std::io::SeekFrom::Start(at0))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    let mut at = 0usize;
    report.valid_len = at0;
    while at < data.len() {
        let Some(head) = data.get(at..at + 8) else {
            report.torn_tail = true;
            break;
        };
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if len > MAX_BLOCK {
            // A length no writer makes: the rest of the file cannot be framed.
            report.damaged_blocks += 1;
            break;
        }
        let Some(body) = data.get(at + 8..at + 8 + len) else {
            report.torn_tail = true;
            break;
        };
        let offset = at0 + at as u64;
        at += 8 + len;
        report.valid_len = at0 + at as u64;
        let Some(entries) = open_block(body, crc) else {
            report.damaged_blocks += 1;
            continue;
        };
        report.blocks += 1;
        report.entries += entries.len() as u64;
        let place = BlockRef {
            offset,
            len: (8 + len) as u32,
            first_us: entries.first().map_or(0, |e| e.arrival_us),
            last_us: entries.last().map_or(0, |e| e.arrival_us),
        };
        f(place, entries);
    }
    Ok(report)
}

/// The entries of the block at `place` in `file` (found earlier by [`read_blocks`]).
pub(crate) fn read_block(file: &std::fs::File, place: &BlockRef) -> std::io::Result<Vec<Entry>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; place.len as usize];
    file.read_exact_at(&mut buf, place.offset)?;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    open_block(&buf[8..], crc).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("block at {} fails its checksum", place.offset),
        )
    })
}

/// A block's entries, if its checksum holds and it decompresses.
fn open_block(body: &[u8], crc: u32) -> Option<Vec<Entry>> {
    if crc32fast::hash(body) != crc {
        return None;
    }
    let raw = Bytes::from(zstd::stream::decode_all(body).ok()?);
    let mut entries = Vec::new();
    parse_entries(&raw, &mut |e| entries.push(e));
    Some(entries)
}

/// Entries of a decompressed block (their frames share its buffer: nothing is copied); stops
/// at the first one that does not parse.
fn parse_entries(all: &Bytes, f: &mut impl FnMut(Entry)) -> u64 {
    let mut n = 0;
    let mut at = 0usize;
    while all.len() - at >= 14 {
        let raw = &all[at..];
        let arrival_us = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
        let encoding = match raw[8] & !BUS_SEQ {
            0 => Encoding::Json,
            1 => Encoding::MsgPack,
            _ => break,
        };
        // The rest of the header starts after the bus sequence, when there is one.
        let (bus_seq, rest) = if raw[8] & BUS_SEQ != 0 {
            let Some(seq) = raw.get(9..17) else { break };
            let seq = u64::from_le_bytes(seq.try_into().expect("8 bytes"));
            (Some(seq), &raw[17..])
        } else {
            (None, &raw[9..])
        };
        let Some(&slen) = rest.first() else { break };
        let slen = slen as usize;
        let Some(src) = rest.get(1..1 + slen) else {
            break;
        };
        let Some(flen) = rest.get(1 + slen..5 + slen) else {
            break;
        };
        let flen = u32::from_le_bytes(flen.try_into().expect("4 bytes")) as usize;
        if rest.len() < 5 + slen + flen {
            break;
        }
        // Where the frame starts in the whole block.
        let start = all.len() - rest.len() + 5 + slen;
        let source = match std::str::from_utf8(src) {
            Ok("") => None,
            Ok(s) => Some(Arc::from(s)),
            Err(_) => break,
        };
        f(Entry {
            arrival_us,
            encoding,
            source,
            frame: all.slice(start..start + flen),
            bus_seq,
        });
        n += 1;
        at = start + flen;
    }
    n
}

/// Segment files of `dir`, oldest first (their names are the first arrival time).
pub(crate) fn segments(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    Ok(v)
}

/// The file name of a segment whose first entry arrived at `us`.
pub(crate) fn segment_name(us: u64) -> String {
    format!("{us:020}.seg")
}

/// The first arrival time a segment's name says.
pub(crate) fn segment_start(path: &Path) -> Option<u64> {
    path.file_stem()?.to_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> Entry {
        Entry {
            bus_seq: i.is_multiple_of(3).then_some(i * 7),
            arrival_us: 1_000_000 + i,
            encoding: if i.is_multiple_of(2) {
                Encoding::MsgPack
            } else {
                Encoding::Json
            },
            source: (i > 0).then(|| Arc::from("edge-1")),
            frame: Bytes::from(format!("frame {i} {}", "x".repeat(i as usize % 50))),
        }
    }

    fn write(path: &Path, blocks: &[Vec<Entry>]) -> Vec<u64> {
        let mut file = MAGIC.to_vec();
        let mut ends = Vec::new();
        for b in blocks {
            let mut raw = Vec::new();
            for e in b {
                raw.reserve(e.encoded_len());
                let before = raw.len();
                e.write_to(&mut raw);
                assert_eq!(raw.len() - before, e.encoded_len());
            }
            file.extend_from_slice(&seal_block(&raw).unwrap());
            ends.push(file.len() as u64);
        }
        std::fs::write(path, file).unwrap();
        ends
    }

    #[test]
    fn entries_come_back_as_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(segment_name(1));
        let blocks = vec![(0..10).map(entry).collect(), (10..25).map(entry).collect()];
        write(&p, &blocks);
        let mut got = Vec::new();
        let r = read_segment(&p, |e| got.push(e)).unwrap();
        assert_eq!(got, blocks.concat());
        assert_eq!(
            (r.blocks, r.entries, r.damaged_blocks, r.torn_tail),
            (2, 25, 0, false)
        );
    }

    #[test]
    fn a_torn_tail_ends_reading_where_the_good_data_ends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(segment_name(1));
        let ends = write(
            &p,
            &[(0..5).map(entry).collect(), (5..9).map(entry).collect()],
        );
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 3]).unwrap();
        let mut n = 0;
        let r = read_segment(&p, |_| n += 1).unwrap();
        assert_eq!((n, r.torn_tail, r.valid_len), (5, true, ends[0]));
    }

    #[test]
    fn a_corrupt_block_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(segment_name(1));
        let blocks: Vec<Vec<Entry>> = (0..3)
            .map(|b| (b * 4..b * 4 + 4).map(entry).collect())
            .collect();
        let ends = write(&p, &blocks);
        let mut bytes = std::fs::read(&p).unwrap();
        // Flip a byte inside the second block's body.
        bytes[ends[0] as usize + 12] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
        let mut got = Vec::new();
        let r = read_segment(&p, |e| got.push(e)).unwrap();
        assert_eq!(r.damaged_blocks, 1);
        assert_eq!(got, [blocks[0].clone(), blocks[2].clone()].concat());
        // Not a segment at all.
        std::fs::write(&p, b"hello").unwrap();
        assert!(read_segment(&p, |_| {}).unwrap().foreign);
    }

    #[test]
    fn segment_names_sort_by_time() {
        let (a, b) = (segment_name(999), segment_name(1_000));
        assert!(a < b);
        assert_eq!(segment_start(Path::new(&b)), Some(1_000));
    }
}
