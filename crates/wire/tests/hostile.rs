//! Hostile batches decode without deep recursion: nesting is refused early, so even a thread
//! with a small stack survives them.

use sockscope_wire::{decode_batch, Encoding, Limits, WireError};

/// MessagePack `{"v":1,"events":[{"type":"hello","source":[[[…nil…]]]}]}`, `levels` deep;
/// with `type_last`, `"type"` comes after `"source"` (the decoder then buffers the event).
fn msgpack_nested(levels: usize, type_last: bool) -> Vec<u8> {
    let mut b = vec![0x82, 0xa1, b'v', 0x01, 0xa6];
    b.extend_from_slice(b"events");
    b.extend_from_slice(&[0x91, 0x82]);
    let ty = |b: &mut Vec<u8>| {
        b.push(0xa4);
        b.extend_from_slice(b"type");
        b.push(0xa5);
        b.extend_from_slice(b"hello");
    };
    if !type_last {
        ty(&mut b);
    }
    b.push(0xa6);
    b.extend_from_slice(b"source");
    b.extend(std::iter::repeat_n(0x91, levels));
    b.push(0xc0);
    if type_last {
        ty(&mut b);
    }
    b
}

fn json_nested(levels: usize) -> Vec<u8> {
    format!(
        r#"{{"v":1,"events":[{{"type":"hello","source":{}1{}}}]}}"#,
        "[".repeat(levels),
        "]".repeat(levels)
    )
    .into_bytes()
}

/// Decodes on a thread with a 512 KiB stack, a quarter of a tokio worker's. (In a debug build
/// serde_json's 128 levels take about 350 KiB; rmp-serde's default 1024 took over 2 MiB.)
fn decode_small_stack(enc: Encoding, bytes: Vec<u8>) -> Result<(), WireError> {
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || decode_batch(enc, &bytes, &Limits::default()).map(|_| ()))
        .unwrap()
        .join()
        .expect("decoding did not overflow the stack")
}

#[test]
fn deep_msgpack_is_malformed_without_deep_recursion() {
    for type_last in [false, true] {
        for levels in [8, 16, 100, 1_000, 1_000_000] {
            let bytes = msgpack_nested(levels, type_last);
            let err = decode_small_stack(Encoding::MsgPack, bytes).unwrap_err();
            assert_eq!(err.code(), "malformed", "{levels}: {err}");
        }
    }
    // The refusal names what is wrong: the field's type when the event is decoded as it
    // comes, the depth when it is buffered first.
    let err = decode_small_stack(Encoding::MsgPack, msgpack_nested(100, false)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("events[0].source") && text.contains("expected a string"),
        "{err}"
    );
    let err = decode_small_stack(Encoding::MsgPack, msgpack_nested(100, true)).unwrap_err();
    assert!(err.to_string().contains("depth limit exceeded"), "{err}");
}

#[test]
fn deep_json_is_malformed_without_deep_recursion() {
    for levels in [100, 1_000, 1_000_000] {
        let err = decode_small_stack(Encoding::Json, json_nested(levels)).unwrap_err();
        assert_eq!(err.code(), "malformed", "{levels}: {err}");
    }
}
