//! The fuzz seeds in `fuzz/corpus/` are real, accepted examples: they must keep decoding as
//! the protocol changes (a seed the decoder refuses would only fuzz the error path).

use sockscope_wire::{apigw, decode_batch, validate, Batch, Encoding, Limits};
use std::path::Path;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
        })
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

#[test]
fn ingest_seeds_decode() {
    for (target, enc) in [
        ("ingest_json", Encoding::Json),
        ("ingest_msgpack", Encoding::MsgPack),
    ] {
        for (name, bytes) in seeds(target) {
            let b = decode_batch(enc, &bytes, &Limits::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(b.events.len() >= 4, "{name}");
        }
    }
}

#[test]
fn apigw_seeds_convert() {
    for (name, bytes) in seeds("apigw") {
        let evs = apigw::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let events = apigw::to_events(&evs, None, 100).unwrap_or_else(|e| panic!("{name}: {e}"));
        validate(&Batch::new(events), &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
