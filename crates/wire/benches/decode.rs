//! What decoding a tap's frame costs the observer, per event (`cargo bench -p sockscope-wire`):
//! 1024 message events with 64-byte text payloads, as the ingest benchmark sends them.

use sockscope_wire::{decode_batch, encode_batch, Batch, Direction, Encoding, Event, Hello};
use sockscope_wire::{Limits, Message, Opcode, SourceKind};
use std::hint::black_box;
use std::time::Instant;

fn frame() -> Batch {
    let mut events = vec![Event::Hello(Hello {
        capture: None,
        source: "bench".into(),
        name: String::new(),
        kind: SourceKind::Proxy,
        version: "bench".into(),
        hostname: "localhost".into(),
        instance: None,
    })];
    events.extend((0..1024u64).map(|i| {
        let text = format!("{{\"type\":1,\"target\":\"send\",\"arguments\":[\"{i:021}\"]}}");
        Event::Message(Message {
            conn: 1 + i % 1000,
            ts: Some(1_700_000_000_000_000 + i),
            dir: Direction::ClientToServer,
            opcode: Opcode::Text,
            size: text.len() as u64,
            flight: false,
            text: Some(text),
            data: None,
            truncated: false,
            redacted: 0,
        })
    }));
    Batch::new(events)
}

fn main() {
    let batch = frame();
    for enc in [Encoding::MsgPack, Encoding::Json] {
        let bytes = encode_batch(enc, &batch);
        let limits = Limits::default();
        let mut best = f64::MAX;
        for _ in 0..5 {
            let n = 200;
            let t = Instant::now();
            for _ in 0..n {
                black_box(decode_batch(enc, black_box(&bytes), &limits).unwrap());
            }
            best = best.min(t.elapsed().as_nanos() as f64 / (n * batch.events.len()) as f64);
        }
        println!(
            "{:<12} {:>6} B/event  {best:>6.0} ns/event (best of 5)",
            enc.name(),
            bytes.len() / batch.events.len()
        );
    }
}
