//! The observer's link to the NATS JetStream bus as the overview shows it.

use serde::{Deserialize, Serialize};

/// `observer.bus` in the overview: absent unless the observer consumes a bus (`--bus`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusView {
    /// The cluster this observer belongs to (`--cluster`).
    pub cluster: String,
    /// Reading the stream now.
    pub connected: bool,
    /// The last stream sequence applied (and recorded).
    pub consumed_seq: u64,
    /// Batches in the stream after it, as of the last one read: how far behind this
    /// observer is.
    pub pending: u64,
    /// How long before it was read the last batch had been stored in the stream, ms.
    pub lag_ms: u64,
    /// Batches applied off the bus since start.
    pub batches: u64,
    /// Times the link to the bus was lost.
    pub outages: u64,
}
