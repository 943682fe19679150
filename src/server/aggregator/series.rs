//! One-second time series for charts: a fixed-length ring of points per metric family.

pub(crate) use crate::protocol::{HostPoint, Point};
use std::collections::VecDeque;

/// A ring holding at most `cap` points, oldest first.
#[derive(Clone, Debug)]
pub struct Ring<T> {
    cap: usize,
    items: VecDeque<T>,
}

impl<T> Ring<T> {
    pub fn new(cap: usize) -> Self {
        Ring {
            cap,
            items: VecDeque::with_capacity(cap.min(4096)),
        }
    }

    pub fn push(&mut self, item: T) {
        if self.cap == 0 {
            return;
        }
        if self.items.len() == self.cap {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    pub fn last(&self) -> Option<&T> {
        self.items.back()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Accumulates the current second and closes it into the ring.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub current: Point,
    pub points: Ring<Point>,
}

impl Series {
    pub(crate) fn new(cap: usize) -> Self {
        Series {
            current: Point::default(),
            points: Ring::new(cap),
        }
    }

    /// Closes the current second and leaves a gap after it: the next [`Series::roll`] starts
    /// afresh instead of filling the seconds between with empty points. At a restart, the
    /// charts then break their lines where the observer was not running, rather than showing
    /// zero traffic for that time.
    pub(crate) fn close_for_gap(&mut self, open: u64) {
        if self.current.t != 0 {
            let mut done = std::mem::take(&mut self.current);
            done.open = open;
            self.points.push(done);
        }
        self.current = Point::default();
    }

    /// Closes every second before `now_s`: the current one with its counts, any skipped ones
    /// (no activity, not even a tick) as empty points carrying the open count.
    pub(crate) fn roll(&mut self, now_s: u64, open: u64) {
        if self.current.t == 0 {
            self.current.t = now_s;
            return;
        }
        while self.current.t < now_s {
            let t = self.current.t;
            let mut done = std::mem::take(&mut self.current);
            done.open = open;
            self.points.push(done);
            self.current.t = t + 1;
            if now_s - self.current.t > self.points.cap as u64 {
                self.current.t = now_s - self.points.cap as u64;
            }
        }
    }

    /// The last complete second.
    pub(crate) fn last(&self) -> Point {
        self.points.last().cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded() {
        let mut r = Ring::new(3);
        for i in 0..10 {
            r.push(i);
        }
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), vec![7, 8, 9]);
    }

    #[test]
    fn a_restart_leaves_a_gap_not_zeros() {
        let mut s = Series::new(900);
        s.roll(100, 0);
        s.current.msgs_in = 5;
        s.close_for_gap(3);
        s.roll(500, 3);
        s.current.msgs_in = 1;
        s.roll(501, 3);
        let pts: Vec<_> = s.points.iter().map(|p| (p.t, p.msgs_in)).collect();
        assert_eq!(
            pts,
            [(100, 5), (500, 1)],
            "nothing filled between 100 and 500"
        );
    }

    #[test]
    fn roll_closes_seconds_and_fills_gaps() {
        let mut s = Series::new(900);
        s.roll(100, 0);
        s.current.msgs_in = 5;
        s.roll(100, 1);
        assert_eq!(s.points.len(), 0);
        s.roll(103, 2);
        let pts: Vec<_> = s.points.iter().cloned().collect();
        assert_eq!(pts.len(), 3);
        assert_eq!((pts[0].t, pts[0].msgs_in), (100, 5));
        assert_eq!((pts[1].t, pts[1].msgs_in), (101, 0));
        assert_eq!(pts[2].t, 102);
        assert_eq!(s.current.t, 103);
    }

    #[test]
    fn long_gap_is_capped_to_ring_length() {
        let mut s = Series::new(5);
        s.roll(100, 0);
        s.roll(1_000_000, 0);
        assert_eq!(s.points.len(), 5);
        assert_eq!(s.points.last().unwrap().t, 999_999);
    }
}
