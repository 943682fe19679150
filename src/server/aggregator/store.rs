//! The global bound on stored messages: a FIFO over every stored message in arrival order,
//! capped by count and by payload bytes. The oldest payloads go first. Entries of messages that
//! left by other ways (a connection's own ring rotating, the connection evicted) go stale and
//! are compacted away, so the FIFO stays proportional to what is actually held.

use super::conn::{Conn, StoredMessage, StoredPayload};
use super::conns::Conns;
use std::collections::VecDeque;

/// The FIFO is compacted when it holds this many entries per held message. Each compaction
/// looks up every entry's connection (a million-entry map), so a larger slack compacts less
/// often: at 4 an entry is looked up 4/3 times over its life instead of twice at 2, for at
/// most 16 B × 4 × `--max-stored-messages` of FIFO (16 MiB at the default).
const FIFO_SLACK: usize = 4;

#[derive(Debug)]
struct Entry {
    conn: u64,
    seq: u64,
}

/// Tracks stored messages across connections so memory stays within configuration.
#[derive(Debug)]
pub(crate) struct MessageStore {
    per_conn: usize,
    max_messages: usize,
    max_bytes: usize,
    fifo: VecDeque<Entry>,
    /// Messages held by connections (the FIFO's entries that are not stale).
    held: usize,
    /// Absolute position of `fifo[0]`.
    base: u64,
    /// Absolute position of the first entry whose payload may still be held.
    cursor: u64,
    bytes: usize,
    pub payloads_evicted: u64,
}

impl MessageStore {
    pub(crate) fn new(per_conn: usize, max_messages: usize, max_bytes: usize) -> Self {
        MessageStore {
            per_conn,
            max_messages,
            max_bytes,
            fifo: VecDeque::new(),
            held: 0,
            base: 0,
            cursor: 0,
            bytes: 0,
            payloads_evicted: 0,
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages held across all connections.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// FIFO entries, stale ones included (at most about [`FIFO_SLACK`] × [`MessageStore::held`]).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        self.fifo.len()
    }

    /// Appends a message to its connection's ring and enforces every bound.
    pub(crate) fn store(&mut self, conns: &mut Conns, conn_id: u64, msg: StoredMessage) {
        if self.per_conn == 0 || self.max_messages == 0 {
            return;
        }
        let Some(conn) = conns.get_mut(&conn_id) else {
            return;
        };
        self.bytes += msg.payload.bytes();
        self.held += 1;
        self.fifo.push_back(Entry {
            conn: conn_id,
            seq: msg.seq,
        });
        conn.recent.push_back(msg);
        if conn.recent.len() > self.per_conn {
            if let Some(old) = conn.recent.pop_front() {
                self.bytes -= old.payload.bytes();
                self.held -= 1;
            }
        }
        while self.held > self.max_messages {
            let Some(e) = self.fifo.pop_front() else {
                break;
            };
            self.base += 1;
            if let Some(c) = conns.get_mut(&e.conn) {
                if c.recent.front().is_some_and(|m| m.seq == e.seq) {
                    let m = c.recent.pop_front().expect("front");
                    self.bytes -= m.payload.bytes();
                    self.held -= 1;
                    if c.recent.is_empty() {
                        // Most of a million connections hold nothing: free the ring itself.
                        c.recent = VecDeque::new();
                    }
                }
            }
        }
        if self.fifo.len() > FIFO_SLACK * self.held.max(1024) {
            self.compact(conns);
        }
        self.cursor = self.cursor.max(self.base);
        while self.bytes > self.max_bytes {
            let idx = (self.cursor - self.base) as usize;
            let Some(e) = self.fifo.get(idx) else { break };
            self.cursor += 1;
            let Some(c) = conns.get_mut(&e.conn) else {
                continue;
            };
            if let Ok(i) = c.recent.binary_search_by_key(&e.seq, |m| m.seq) {
                let p = &mut c.recent[i].payload;
                if matches!(p, StoredPayload::Text(_) | StoredPayload::Binary(_)) {
                    self.bytes -= p.bytes();
                    *p = StoredPayload::Evicted;
                    self.payloads_evicted += 1;
                }
            }
        }
    }

    /// Releases the payload bytes of a connection that is being evicted; its FIFO entries go
    /// stale.
    pub(crate) fn forget(&mut self, conn: &Conn) {
        self.bytes -= conn.recent.iter().map(|m| m.payload.bytes()).sum::<usize>();
        self.held -= conn.recent.len();
    }

    /// Drops stale entries, keeping order and the payload cursor's place. Runs when at least
    /// half the FIFO is stale, so its cost per stored message stays constant.
    fn compact(&mut self, conns: &Conns) {
        let before_cursor = (self.cursor - self.base) as usize;
        let (mut i, mut kept_before_cursor) = (0usize, 0u64);
        self.fifo.retain(|e| {
            let held = conns
                .get(&e.conn)
                .is_some_and(|c| c.recent.binary_search_by_key(&e.seq, |m| m.seq).is_ok());
            if held && i < before_cursor {
                kept_before_cursor += 1;
            }
            i += 1;
            held
        });
        self.cursor = self.base + kept_before_cursor;
        if self.fifo.capacity() > 4 * self.fifo.len().max(1024) {
            self.fifo.shrink_to(2 * self.fifo.len().max(1024));
        }
    }
}
