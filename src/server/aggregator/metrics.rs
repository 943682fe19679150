//! `/metrics`: Prometheus text exposition of the aggregate state. Labels are bounded: source
//! id, direction, close class and drop kind — never a connection.

use super::state::State;
use crate::protocol::close_code::CloseClass;
use std::fmt::Write as _;

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                // Source ids are [A-Za-z0-9._:-]; escaping keeps any other value safe too.
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// Families of one sample each, all with `labels`: (name, kind, help, value).
    fn singles<V: std::fmt::Display>(
        &mut self,
        items: impl IntoIterator<Item = (&'static str, &'static str, &'static str, V)>,
        labels: &[(&str, &str)],
    ) {
        for (name, kind, help, v) in items {
            self.family(name, kind, help);
            self.sample(name, labels, v);
        }
    }
}

impl State {
    pub(crate) fn prometheus(&self, browsers: usize) -> String {
        let mut o = Out(String::with_capacity(4096));
        let per_source = |o: &mut Out,
                          name: &str,
                          kind: &str,
                          help: &str,
                          f: &dyn Fn(&super::source::Source) -> u64| {
            o.family(name, kind, help);
            for s in &self.sources {
                o.sample(name, &[("source", &s.id)], f(s));
            }
        };
        per_source(
            &mut o,
            "sockscope_connections_open",
            "gauge",
            "Connections open now.",
            &|s| s.open,
        );
        per_source(
            &mut o,
            "sockscope_connections_opened_total",
            "counter",
            "Connections opened.",
            &|s| s.counts.opened,
        );
        o.family(
            "sockscope_connections_closed_total",
            "counter",
            "Connections closed, by close-code class.",
        );
        for s in &self.sources {
            for c in CloseClass::ALL {
                o.sample(
                    "sockscope_connections_closed_total",
                    &[("source", &s.id), ("class", c.label())],
                    s.counts.closes[c.index()],
                );
            }
        }
        o.family(
            "sockscope_messages_total",
            "counter",
            "Data messages (text and binary), by direction.",
        );
        for s in &self.sources {
            o.sample(
                "sockscope_messages_total",
                &[("source", &s.id), ("direction", "in")],
                s.counts.msgs_in,
            );
            o.sample(
                "sockscope_messages_total",
                &[("source", &s.id), ("direction", "out")],
                s.counts.msgs_out,
            );
        }
        o.family(
            "sockscope_message_bytes_total",
            "counter",
            "Payload bytes of data messages, by direction.",
        );
        for s in &self.sources {
            o.sample(
                "sockscope_message_bytes_total",
                &[("source", &s.id), ("direction", "in")],
                s.counts.bytes_in,
            );
            o.sample(
                "sockscope_message_bytes_total",
                &[("source", &s.id), ("direction", "out")],
                s.counts.bytes_out,
            );
        }
        o.family(
            "sockscope_tap_dropped_events_total",
            "counter",
            "Events a tap could not deliver, by kind.",
        );
        for s in &self.sources {
            let d = &s.drops;
            for (kind, v) in [
                ("conn_open", d.conn_open),
                ("message", d.message),
                ("conn_close", d.conn_close),
                ("host", d.host),
            ] {
                o.sample(
                    "sockscope_tap_dropped_events_total",
                    &[("source", &s.id), ("kind", kind)],
                    v,
                );
            }
        }
        per_source(
            &mut o,
            "sockscope_tap_rate_limited_events_total",
            "counter",
            "Message events refused because the tap exceeded --max-tap-events-per-sec.",
            &|s| s.rate_limited,
        );
        o.family(
            "sockscope_refused_total",
            "counter",
            "Requests refused at the door (auth, Host, Origin, limits), by reason.",
        );
        for (reason, v) in self.stats.refused.entries() {
            o.sample("sockscope_refused_total", &[("reason", reason)], v);
        }
        per_source(
            &mut o,
            "sockscope_source_up",
            "gauge",
            "1 while a tap session is connected.",
            &|s| u64::from(s.sessions > 0),
        );
        o.family(
            "sockscope_source_host_cpu_percent",
            "gauge",
            "Host CPU use where the tap runs.",
        );
        for s in &self.sources {
            if let Some(h) = &s.host {
                o.sample(
                    "sockscope_source_host_cpu_percent",
                    &[("source", &s.id)],
                    h.cpu_pct,
                );
            }
        }
        o.family(
            "sockscope_source_host_memory_used_bytes",
            "gauge",
            "Host memory in use where the tap runs.",
        );
        for s in &self.sources {
            if let Some(h) = &s.host {
                o.sample(
                    "sockscope_source_host_memory_used_bytes",
                    &[("source", &s.id)],
                    h.mem_used,
                );
            }
        }
        o.family(
            "sockscope_source_process_resident_bytes",
            "gauge",
            "Resident memory of the tapped process.",
        );
        for s in &self.sources {
            if let Some(h) = &s.host {
                o.sample(
                    "sockscope_source_process_resident_bytes",
                    &[("source", &s.id)],
                    h.rss,
                );
            }
        }
        let st = &self.stats;
        let globals: [(&str, &str, &str, String); 14] = [
            (
                "sockscope_tracked_connections",
                "gauge",
                "Connections held in memory (open and retained closed).",
                self.totals.tracked.to_string(),
            ),
            (
                "sockscope_ingest_events_total",
                "counter",
                "Events accepted from taps.",
                st.events_ingested.to_string(),
            ),
            (
                "sockscope_ingest_errors_total",
                "counter",
                "Batches or events rejected at ingest.",
                st.ingest_errors.to_string(),
            ),
            (
                "sockscope_evicted_connections_total",
                "counter",
                "Closed connections evicted by retention or the limit.",
                st.evicted.to_string(),
            ),
            (
                "sockscope_untracked_connections_total",
                "counter",
                "Connections not tracked because the limit was reached.",
                st.untracked.to_string(),
            ),
            (
                "sockscope_sources_forgotten_total",
                "counter",
                "Offline sources forgotten to make room under --max-sources.",
                st.sources_forgotten.to_string(),
            ),
            (
                "sockscope_metadata_cut_total",
                "counter",
                "Connections whose headers or path were cut to the metadata budgets.",
                st.metadata_cut.to_string(),
            ),
            (
                "sockscope_metadata_bytes",
                "gauge",
                "Metadata bytes (paths, headers, subprotocols) held for tracked connections.",
                st.metadata_bytes.to_string(),
            ),
            (
                "sockscope_payloads_evicted_total",
                "counter",
                "Stored payloads dropped to keep the payload budget.",
                st.payloads_evicted.to_string(),
            ),
            (
                "sockscope_stored_payload_bytes",
                "gauge",
                "Payload bytes held for the inspector.",
                self.store.bytes().to_string(),
            ),
            (
                "sockscope_browser_resnapshots_total",
                "counter",
                "Times a browser fell behind and was re-snapshotted.",
                st.browser_resnapshots.to_string(),
            ),
            (
                "sockscope_browsers",
                "gauge",
                "Browsers connected to /live.",
                browsers.to_string(),
            ),
            (
                "sockscope_observer_cpu_percent",
                "gauge",
                "Host CPU use where the observer runs.",
                st.cpu_pct.to_string(),
            ),
            (
                "sockscope_observer_resident_bytes",
                "gauge",
                "Resident memory of the observer.",
                st.rss.to_string(),
            ),
        ];
        o.singles(globals, &[]);
        if let Some(r) = self.record.as_ref().map(|r| r.view()) {
            let record = [
                (
                    "sockscope_record_frames_total",
                    "counter",
                    "Tap frames written to the record.",
                    r.frames,
                ),
                (
                    "sockscope_record_dropped_total",
                    "counter",
                    "Tap frames not recorded (writer behind, or the disk refused them).",
                    r.dropped,
                ),
                (
                    "sockscope_record_write_errors_total",
                    "counter",
                    "Failed writes to the record.",
                    r.write_errors,
                ),
                (
                    "sockscope_record_bytes",
                    "gauge",
                    "Bytes of record segments on disk.",
                    r.bytes,
                ),
                (
                    "sockscope_record_segments",
                    "gauge",
                    "Record segment files on disk.",
                    r.segments,
                ),
                (
                    "sockscope_record_oldest_seconds",
                    "gauge",
                    "Unix time of the oldest recorded data.",
                    r.oldest_ms / 1000,
                ),
                (
                    "sockscope_record_damaged_total",
                    "counter",
                    "Damage found in the record at start (torn tails, bad blocks).",
                    r.damaged,
                ),
            ];
            o.singles(record, &[]);
        }
        if let Some(b) = self.bus.as_ref().map(|b| b.view()) {
            let bus = [
                (
                    "sockscope_bus_connected",
                    "gauge",
                    "1 while the observer reads the bus stream.",
                    u64::from(b.connected).to_string(),
                ),
                (
                    "sockscope_bus_consumed_sequence",
                    "gauge",
                    "The last bus stream sequence applied.",
                    b.consumed_seq.to_string(),
                ),
                (
                    "sockscope_bus_pending_batches",
                    "gauge",
                    "Batches in the stream this observer has not read yet (its lag).",
                    b.pending.to_string(),
                ),
                (
                    "sockscope_bus_lag_seconds",
                    "gauge",
                    "Time between the stream storing the last batch read and reading it.",
                    format!("{:.3}", b.lag_ms as f64 / 1000.0),
                ),
                (
                    "sockscope_bus_batches_total",
                    "counter",
                    "Batches applied off the bus.",
                    b.batches.to_string(),
                ),
                (
                    "sockscope_bus_outages_total",
                    "counter",
                    "Times the link to the bus was lost.",
                    b.outages.to_string(),
                ),
            ];
            o.singles(bus, &[("cluster", b.cluster.as_str())]);
        }
        o.0
    }
}
