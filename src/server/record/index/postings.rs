//! A connection life's postings in one segment: which entries (tap frames) of which blocks
//! hold its events, and the data counted in each — packed as LEB128 varints, so an index
//! loads as a few byte strings rather than millions of small records, and is unpacked only
//! for the lives a query needs.

use super::Counts;
use serde::{Deserialize, Serialize};

/// Where a life's events are: `(block, entry within the block, data counted there)`.
pub(crate) type Posting = (u32, u32, Counts);

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Postings {
    /// Finished postings: block delta, entry, msgs in, msgs out, bytes in, bytes out.
    #[serde(with = "serde_bytes")]
    packed: Vec<u8>,
    /// The posting still being counted (the entry being indexed).
    last: Option<Posting>,
    /// The block of the last packed posting (blocks are delta-coded).
    prev_block: u32,
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

impl Postings {
    /// The counts of `(block, entry)`, started if this is a new place.
    pub(crate) fn at(&mut self, block: u32, entry: u32) -> &mut Counts {
        if self.last.is_none_or(|(b, e, _)| (b, e) != (block, entry)) {
            self.seal();
            self.last = Some((block, entry, Counts::default()));
        }
        &mut self.last.as_mut().expect("just set").2
    }

    /// Packs the posting being counted.
    pub(crate) fn seal(&mut self) {
        if let Some((b, e, c)) = self.last.take() {
            put(&mut self.packed, u64::from(b - self.prev_block));
            for v in [u64::from(e), c.msgs_in, c.msgs_out, c.bytes_in, c.bytes_out] {
                put(&mut self.packed, v);
            }
            self.prev_block = b;
        }
    }

    /// Every posting, in order (a damaged packing ends early).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Posting> + '_ {
        let mut at = 0usize;
        let mut block = 0u32;
        let packed = std::iter::from_fn(move || {
            if at >= self.packed.len() {
                return None;
            }
            let mut n = [0u64; 6];
            for v in &mut n {
                *v = get(&self.packed, &mut at)?;
            }
            block += n[0] as u32;
            let c = Counts {
                msgs_in: n[2],
                msgs_out: n[3],
                bytes_in: n[4],
                bytes_out: n[5],
            };
            Some((block, n[1] as u32, c))
        });
        packed.chain(self.last)
    }

    /// The distinct blocks, in order.
    pub(crate) fn blocks(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.iter().map(|(b, _, _)| b).collect();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_come_back_as_counted_packed_or_not() {
        let mut p = Postings::default();
        p.at(0, 0).msgs_in += 1;
        p.at(0, 0).bytes_in += 300;
        p.at(0, 3).msgs_out += 1;
        p.at(7, 1).bytes_out += 1 << 40;
        let want = vec![
            (
                0,
                0,
                Counts {
                    msgs_in: 1,
                    bytes_in: 300,
                    ..Counts::default()
                },
            ),
            (
                0,
                3,
                Counts {
                    msgs_out: 1,
                    ..Counts::default()
                },
            ),
            (
                7,
                1,
                Counts {
                    bytes_out: 1 << 40,
                    ..Counts::default()
                },
            ),
        ];
        assert_eq!(p.iter().collect::<Vec<_>>(), want);
        p.seal();
        assert_eq!(p.iter().collect::<Vec<_>>(), want);
        assert_eq!(p.blocks(), [0, 7]);
        let back: Postings = rmp_serde::from_slice(&rmp_serde::to_vec_named(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
