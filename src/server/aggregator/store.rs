//! The global bound on stored messages: a FIFO over every stored message in arrival order,
//! capped by count and by payload bytes. The oldest payloads go first.

use super::conn::{Conn, StoredMessage, StoredPayload};
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug)]
struct Entry {
    conn: u64,
    seq: u64,
}

/// Tracks stored messages across connections so memory stays within configuration.
#[derive(Debug)]
pub struct MessageStore {
    per_conn: usize,
    max_messages: usize,
    max_bytes: usize,
    fifo: VecDeque<Entry>,
    /// Absolute position of `fifo[0]`.
    base: u64,
    /// Absolute position of the first entry whose payload may still be held.
    cursor: u64,
    bytes: usize,
    pub payloads_evicted: u64,
}

impl MessageStore {
    pub fn new(per_conn: usize, max_messages: usize, max_bytes: usize) -> Self {
        MessageStore {
            per_conn,
            max_messages,
            max_bytes,
            fifo: VecDeque::new(),
            base: 0,
            cursor: 0,
            bytes: 0,
            payloads_evicted: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends a message to its connection's ring and enforces every bound.
    pub fn store(&mut self, conns: &mut BTreeMap<u64, Conn>, conn_id: u64, msg: StoredMessage) {
        if self.per_conn == 0 || self.max_messages == 0 {
            return;
        }
        let Some(conn) = conns.get_mut(&conn_id) else {
            return;
        };
        self.bytes += msg.payload.bytes();
        self.fifo.push_back(Entry {
            conn: conn_id,
            seq: msg.seq,
        });
        conn.recent.push_back(msg);
        if conn.recent.len() > self.per_conn {
            if let Some(old) = conn.recent.pop_front() {
                self.bytes -= old.payload.bytes();
            }
        }
        while self.fifo.len() > self.max_messages {
            let e = self.fifo.pop_front().expect("non-empty");
            self.base += 1;
            if let Some(c) = conns.get_mut(&e.conn) {
                if c.recent.front().is_some_and(|m| m.seq == e.seq) {
                    let m = c.recent.pop_front().expect("front");
                    self.bytes -= m.payload.bytes();
                    if c.recent.is_empty() {
                        // Most of a million connections hold nothing: free the ring itself.
                        c.recent = VecDeque::new();
                    }
                }
            }
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

    /// Releases the payload bytes of a connection that is being evicted.
    pub fn forget(&mut self, conn: &Conn) {
        self.bytes -= conn.recent.iter().map(|m| m.payload.bytes()).sum::<usize>();
    }
}
