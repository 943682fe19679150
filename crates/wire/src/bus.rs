//! Names on the NATS JetStream bus, shared by taps that publish and observers that consume:
//! one stream, one subject per source under a partition, so one source's batches stay in order
//! on one partition and observers can share the partitions out.

/// The JetStream stream every tap publishes to.
pub const STREAM: &str = "SOCKSCOPE";
/// Subjects are `sockscope.ev.<partition>.<source>`.
pub const SUBJECT_PREFIX: &str = "sockscope.ev";
/// Partitions the sources are spread over (fixed: a source's partition never moves).
pub const PARTITIONS: u32 = 16;
/// The header carrying a batch's id (`<source>.<instance>.<seq>`): the server drops a
/// repeated id within its duplicate window, so a retried publish is applied once.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// The partition of a source: a stable hash (FNV-1a) of its id.
pub fn partition(source: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in source.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % PARTITIONS
}

/// The subject a source's batches are published on. Source ids are `[A-Za-z0-9._-]`
/// (validated), so they are safe in a subject; dots become extra tokens, which the
/// `<prefix>.<partition>.>` filters still match.
pub fn subject(source: &str) -> String {
    format!("{SUBJECT_PREFIX}.{}.{source}", partition(source))
}

/// The filter of one partition's subjects.
pub fn partition_filter(p: u32) -> String {
    format!("{SUBJECT_PREFIX}.{p}.>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_always_lands_on_the_same_partition_and_sources_spread() {
        assert_eq!(partition("edge-1"), partition("edge-1"));
        assert!(subject("edge-1").starts_with("sockscope.ev."));
        assert!(subject("edge-1").ends_with(".edge-1"));
        let used: std::collections::HashSet<u32> =
            (0..200).map(|i| partition(&format!("gw-{i}"))).collect();
        assert!(used.len() > PARTITIONS as usize / 2, "{used:?}");
        assert!(used.iter().all(|p| *p < PARTITIONS));
    }
}
