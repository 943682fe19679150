//! The inspector's decoders (hex dump, JSON, SignalR, Socket.IO): never panic on any payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockscope_payload::decode;

fuzz_target!(|data: &[u8]| {
    let lines = decode::hexdump(data);
    assert_eq!(lines.len(), data.len().div_ceil(16));
    let text = String::from_utf8_lossy(data);
    let _ = decode::json(&text);
    let _ = decode::signalr(&text);
    let _ = decode::socketio(&text);
});
