//! The tracked connections by observer id: a hash map for the lookups every event makes, and
//! the ids in connect order for the table (its default order walks only the rows it shows).

use super::conn::Conn;
use std::collections::{BTreeSet, HashMap};

/// Connections by id. Ids are given in connect order, so id order is connect order.
#[derive(Default)]
pub(crate) struct Conns {
    map: HashMap<u64, Conn, foldhash::fast::RandomState>,
    order: BTreeSet<u64>,
}

impl Conns {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get(&self, id: &u64) -> Option<&Conn> {
        self.map.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &u64) -> Option<&mut Conn> {
        self.map.get_mut(id)
    }

    pub(crate) fn insert(&mut self, id: u64, conn: Conn) -> Option<Conn> {
        self.order.insert(id);
        self.map.insert(id, conn)
    }

    pub(crate) fn remove(&mut self, id: &u64) -> Option<Conn> {
        self.order.remove(id);
        self.map.remove(id)
    }

    /// In connect order (oldest first; `.rev()` for newest first).
    pub(crate) fn values(&self) -> impl DoubleEndedIterator<Item = &Conn> {
        self.order.iter().map(|id| &self.map[id])
    }

    /// In no particular order: for counting and for sorting by something else.
    pub(crate) fn unordered(&self) -> impl Iterator<Item = &Conn> {
        self.map.values()
    }
}
