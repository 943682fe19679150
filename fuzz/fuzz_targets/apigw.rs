//! API Gateway WebSocket events → wire events: never panics, and what it produces from
//! events it accepts is either a valid batch or refused by validation with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockscope_wire::{apigw, validate, Batch, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(evs) = apigw::parse(data) {
        for source in [None, Some("fuzz-src")] {
            if let Ok(events) = apigw::to_events(&evs, source, Limits::DEFAULT_MAX_PAYLOAD) {
                let _ = validate(&Batch::new(events), &Limits::default());
            }
        }
    }
});
