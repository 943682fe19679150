//! Ingest decoding of MessagePack batches: never panics, and an accepted batch survives a
//! round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockscope_wire::{decode_batch, encode_batch, Encoding, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = decode_batch(Encoding::MsgPack, data, &Limits::default()) {
        let again = encode_batch(Encoding::MsgPack, &batch);
        let back = decode_batch(Encoding::MsgPack, &again, &Limits::default())
            .expect("an accepted batch re-encodes to an accepted batch");
        assert_eq!(back, batch);
    }
});
