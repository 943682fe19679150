//! One tap (proxy, gateway, app): its identity, health, host metrics and counters.

use super::series::{HostPoint, Ring};
use crate::protocol::{Drops, HostView, SourceView};
use sockscope_wire::{Dropped, SourceKind};
use std::sync::Arc;

/// Per-source counters for `/metrics` (bounded labels: source, direction, close class).
#[derive(Debug, Default, Clone)]
pub struct SourceCounts {
    pub opened: u64,
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Closes by [`crate::protocol::close_code::CloseClass`] index.
    pub closes: [u64; crate::protocol::close_code::CloseClass::ALL.len()],
}

#[derive(Debug)]
pub struct Source {
    pub id: Arc<str>,
    pub name: String,
    pub kind: SourceKind,
    pub version: String,
    pub hostname: String,
    pub instance: Option<u64>,
    /// The tap credential it spoke with last ([`crate::server::auth::TapCredential`]).
    pub credential: Option<u64>,
    pub sessions: u32,
    pub last_seen_us: u64,
    pub open: u64,
    pub host: Option<HostView>,
    pub host_series: Ring<HostPoint>,
    pub drops: Drops,
    /// How the tap sends messages, from its hello.
    pub capture: Option<sockscope_wire::CaptureMode>,
    /// An on-demand tap is asked for every message right now.
    pub streaming: bool,
    /// Message events refused by the observer's per-tap rate limit.
    pub rate_limited: u64,
    /// Last cumulative counters the tap reported, to detect a restarted tap.
    pub(super) drops_reported: Drops,
    pub counts: SourceCounts,
    /// Data messages and bytes per second.
    pub rate: super::conn::Rate,
    /// Tracked connections and trace records that point at this source; it can be forgotten
    /// only at zero.
    pub(super) refs: u64,
}

impl Source {
    /// The dashboard / API view; rates are the last complete second before `now_s`.
    pub fn view(&self, now_s: u64) -> SourceView {
        let (rate_msgs, rate_bytes) = self.rate.last_second(now_s);
        SourceView {
            id: self.id.to_string(),
            name: self.name.clone(),
            kind: self.kind,
            version: self.version.clone(),
            hostname: self.hostname.clone(),
            online: self.sessions > 0,
            last_seen_ms: self.last_seen_us / 1000,
            open: self.open,
            host: self.host.clone(),
            drops: self.drops.clone(),
            rate_limited: self.rate_limited,
            rate_msgs,
            rate_bytes,
            capture: self.capture,
            streaming: self.streaming,
        }
    }

    /// Adds a tap's cumulative drop report; a counter that went down means the tap restarted.
    pub fn dropped(&mut self, d: Dropped) {
        let s = self;
        let fields = [
            (
                &mut s.drops.conn_open,
                &mut s.drops_reported.conn_open,
                d.conn_open,
            ),
            (
                &mut s.drops.message,
                &mut s.drops_reported.message,
                d.message,
            ),
            (
                &mut s.drops.conn_close,
                &mut s.drops_reported.conn_close,
                d.conn_close,
            ),
            (&mut s.drops.host, &mut s.drops_reported.host, d.host),
        ];
        for (total, last, now) in fields {
            // A counter that went down means the tap restarted and counts from zero again.
            *total += if now >= *last { now - *last } else { now };
            *last = now;
        }
    }
}

/// How long a source stays bound to the credential it last spoke with after its tap went
/// quiet: another tap token may take the source over (a tap restarted with a rotated token)
/// only after this.
pub(crate) const CREDENTIAL_HOLD: std::time::Duration = std::time::Duration::from_secs(60);

/// Every known source by a stable index (connections and trace records hold it); a forgotten
/// source's index is reused by a later one.
#[derive(Debug, Default)]
pub struct Sources(slab::Slab<Source>);

impl Sources {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, s: Source) -> usize {
        self.0.insert(s)
    }

    pub fn remove(&mut self, idx: usize) -> Source {
        self.0.remove(idx)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Source> {
        self.0.iter().map(|(_, s)| s)
    }

    /// Every source with its index.
    pub fn iter_indexed(&self) -> impl Iterator<Item = (usize, &Source)> {
        self.0.iter()
    }

    /// `Err` (what to do) when source `idx` is held under another credential than `credential`:
    /// it has a session, or was heard from within [`CREDENTIAL_HOLD`]. A source of an open
    /// observer (no credential) is held by nobody.
    pub fn held_by_another(
        &self,
        idx: usize,
        credential: Option<u64>,
        now_us: u64,
    ) -> Result<(), String> {
        let s = &self.0[idx];
        let held = s.sessions > 0
            || now_us.saturating_sub(s.last_seen_us) < CREDENTIAL_HOLD.as_micros() as u64;
        match s.credential {
            Some(c) if held && credential != Some(c) => Err(format!(
                "source {:?} is online under another tap token or certificate; each tap needs \
                 its own source id (--name), or wait until that tap has been gone for {} s",
                s.id,
                CREDENTIAL_HOLD.as_secs()
            )),
            _ => Ok(()),
        }
    }

    /// The source that has been offline longest among those nothing points at any more.
    pub fn forgettable(&self) -> Option<usize> {
        self.0
            .iter()
            .filter(|(_, s)| s.sessions == 0 && s.refs == 0)
            .min_by_key(|(_, s)| s.last_seen_us)
            .map(|(i, _)| i)
    }
}

impl std::ops::Index<usize> for Sources {
    type Output = Source;
    fn index(&self, i: usize) -> &Source {
        &self.0[i]
    }
}

impl std::ops::IndexMut<usize> for Sources {
    fn index_mut(&mut self, i: usize) -> &mut Source {
        &mut self.0[i]
    }
}

impl<'a> IntoIterator for &'a Sources {
    type Item = &'a Source;
    type IntoIter = std::iter::Map<slab::Iter<'a, Source>, fn((usize, &'a Source)) -> &'a Source>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(_, s)| s)
    }
}

impl<'a> IntoIterator for &'a mut Sources {
    type Item = &'a mut Source;
    type IntoIter =
        std::iter::Map<slab::IterMut<'a, Source>, fn((usize, &'a mut Source)) -> &'a mut Source>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter_mut().map(|(_, s)| s)
    }
}
