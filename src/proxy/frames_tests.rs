//! The frame reader against frames cut at every byte, masked and not, fragmented, compressed.

use super::*;
use crate::proxy::deflate::Inflater;

const MASK: Option<[u8; 4]> = Some([0x11, 0x22, 0x33, 0x44]);

/// Feeds `bytes` in chunks of `step` and collects what was seen.
fn read(r: &mut FrameReader, bytes: &[u8], step: usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    for chunk in bytes.chunks(step) {
        r.feed(chunk, &mut |s| seen.push(s));
    }
    seen
}

fn text(size: u64, captured: &str) -> Seen {
    Seen::Message {
        opcode: Opcode::Text,
        size,
        captured: captured.as_bytes().to_vec(),
        compressed: false,
    }
}

#[test]
fn a_frame_cut_anywhere_reads_the_same() {
    for mask in [None, MASK] {
        let f = encode_frame(true, false, 1, b"hello, world", mask);
        for step in 1..=f.len() {
            let mut r = FrameReader::new(64, None, u64::MAX);
            assert_eq!(
                read(&mut r, &f, step),
                [text(12, "hello, world")],
                "step {step}"
            );
            assert!(r.at_boundary());
        }
    }
}

#[test]
fn only_the_capture_is_copied_and_sizes_stay_whole() {
    let big = vec![b'x'; 70_000]; // a 64-bit length
    let mid = vec![b'y'; 300]; // a 16-bit length
    let mut bytes = encode_frame(true, false, 2, &big, MASK);
    bytes.extend(encode_frame(true, false, 1, &mid, None));
    let mut r = FrameReader::new(4, None, u64::MAX);
    let seen = read(&mut r, &bytes, 4096);
    assert_eq!(
        seen,
        [
            Seen::Message {
                opcode: Opcode::Binary,
                size: 70_000,
                captured: b"xxxx".to_vec(),
                compressed: false
            },
            text(300, "yyyy"),
        ]
    );
    let mut r = FrameReader::new(0, None, u64::MAX);
    assert_eq!(read(&mut r, &bytes, 7)[1], text(300, ""));
}

#[test]
fn a_new_capture_limit_applies_from_the_next_message() {
    // On demand the limit changes as the observer asks: a message keeps the limit it began with.
    let first = encode_frame(false, false, 1, b"abcdef", MASK);
    let rest = encode_frame(true, false, 0, b"gh", MASK);
    let second = encode_frame(true, false, 1, b"ijklmn", None);
    let mut r = FrameReader::new(4, None, u64::MAX);
    let mut seen = read(&mut r, &first, 64);
    r.set_cap(1);
    seen.extend(read(&mut r, &rest, 64));
    seen.extend(read(&mut r, &second, 64));
    assert_eq!(seen, [text(8, "abcd"), text(6, "i")]);
}

#[test]
fn fragments_join_and_control_frames_may_come_between() {
    let mut bytes = encode_frame(false, false, 1, b"hel", MASK);
    bytes.extend(encode_frame(true, false, 9, b"are you there", MASK));
    bytes.extend(encode_frame(false, false, 0, b"lo ", MASK));
    assert!({
        let mut r = FrameReader::new(64, None, u64::MAX);
        read(&mut r, &bytes, 1);
        r.in_message() && r.at_boundary()
    });
    bytes.extend(encode_frame(true, false, 0, b"there", MASK));
    bytes.extend(close_frame(4001, "bye ✓", MASK));
    let mut r = FrameReader::new(64, None, u64::MAX);
    assert_eq!(
        read(&mut r, &bytes, 5),
        [
            Seen::Control {
                opcode: Opcode::Ping,
                payload: b"are you there".to_vec()
            },
            text(11, "hello there"),
            Seen::Close {
                code: Some(4001),
                reason: "bye ✓".into()
            },
        ]
    );
    let mut r = FrameReader::new(64, None, u64::MAX);
    assert_eq!(
        read(&mut r, &encode_frame(true, false, 8, &[], None), 1),
        [Seen::Close {
            code: None,
            reason: String::new()
        }]
    );
}

#[test]
fn broken_streams_are_reported_once_and_then_only_passed() {
    for (bytes, why) in [
        (vec![0xC1 | 0x20, 0x00], "reserved bits set"),
        (vec![0x83, 0x00], "unknown opcode"),
        (vec![0x80, 0x00], "continuation without a message"),
        (vec![0x09, 0x00], "fragmented or oversized control frame"),
    ] {
        let mut r = FrameReader::new(64, None, u64::MAX);
        let mut all = bytes.clone();
        all.extend(encode_frame(true, false, 1, b"after", None));
        assert_eq!(read(&mut r, &all, 1), [Seen::Broken(why)]);
        assert!(!r.at_boundary());
    }
}

/// Compresses like a permessage-deflate sender: raw DEFLATE, sync flush, tail removed.
fn deflate(c: &mut flate2::Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    assert_eq!(&out[out.len() - 4..], [0, 0, 0xff, 0xff]);
    out.truncate(out.len() - 4);
    out
}

#[test]
fn compressed_messages_are_read_inflated_with_and_without_context_takeover() {
    for takeover in [true, false] {
        let mut c = flate2::Compress::new(flate2::Compression::default(), false);
        let first = "{\"op\":\"hello\",\"user\":\"ada\",\"padding\":\"aaaaaaaaaaaaaaaaaaaa\"}";
        let second = "{\"op\":\"hello\",\"user\":\"bob\",\"padding\":\"aaaaaaaaaaaaaaaaaaaa\"}";
        let mut bytes = encode_frame(true, true, 1, &deflate(&mut c, first.as_bytes()), MASK);
        if !takeover {
            c.reset();
        }
        let z2 = deflate(&mut c, second.as_bytes());
        // Fragmented: RSV1 on the first frame only.
        let (a, b) = z2.split_at(z2.len() / 2);
        bytes.extend(encode_frame(false, true, 1, a, MASK));
        bytes.extend(encode_frame(true, false, 0, b, MASK));
        let mut r = FrameReader::new(1024, Some(Inflater::new(takeover)), u64::MAX);
        let seen = read(&mut r, &bytes, 3);
        let want = |s: &str| Seen::Message {
            opcode: Opcode::Text,
            size: s.len() as u64,
            captured: s.as_bytes().to_vec(),
            compressed: true,
        };
        assert_eq!(seen, [want(first), want(second)], "takeover {takeover}");
    }
    // Without a capture, a message is inflated only to keep a context-takeover history (a
    // later message may be captured): the size is then the inflated one, else the compressed.
    for (takeover, size) in [(false, None), (true, Some(30))] {
        let mut c = flate2::Compress::new(flate2::Compression::default(), false);
        let z = deflate(&mut c, b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        let mut r = FrameReader::new(0, Some(Inflater::new(takeover)), u64::MAX);
        assert_eq!(
            read(&mut r, &encode_frame(true, true, 2, &z, None), 64),
            [Seen::Message {
                opcode: Opcode::Binary,
                size: size.unwrap_or(z.len() as u64),
                captured: Vec::new(),
                compressed: true
            }],
            "takeover {takeover}"
        );
    }
}

#[test]
fn a_compression_bomb_is_not_inflated_past_the_limit() {
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    let zeros = vec![0u8; (MAX_INFLATE_TEST as usize) * 2];
    let z = deflate(&mut c, &zeros);
    let mut r = FrameReader::new(16, Some(Inflater::new(true)), u64::MAX);
    let seen = read(&mut r, &encode_frame(true, true, 2, &z, None), 1 << 16);
    let Seen::Message { size, captured, .. } = &seen[0] else {
        panic!("{seen:?}")
    };
    assert_eq!(
        (*size, captured.len()),
        (z.len() as u64, 16),
        "wire size, prefix kept"
    );
}

const MAX_INFLATE_TEST: u64 = crate::proxy::deflate::MAX_INFLATE;

#[test]
fn a_message_over_the_limit_is_reported_at_its_frame() {
    let mut bytes = encode_frame(true, false, 1, b"fits", None);
    bytes.extend(encode_frame(false, false, 2, &[7; 6], MASK));
    bytes.extend(encode_frame(true, false, 0, &[7; 6], MASK));
    let mut r = FrameReader::new(8, None, 10);
    assert_eq!(read(&mut r, &bytes, 3), [text(4, "fits"), Seen::TooBig]);
}

#[test]
fn negotiated_parameters_are_read_from_the_accepted_extension() {
    use crate::proxy::deflate::{negotiated, Deflate};
    assert_eq!(negotiated(None), None);
    assert_eq!(negotiated(Some("x-webkit-deflate-frame")), None);
    assert_eq!(
        negotiated(Some(
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=15"
        )),
        Some(Deflate {
            client_no_context_takeover: false,
            server_no_context_takeover: true
        })
    );
    assert_eq!(
        negotiated(Some("foo, permessage-deflate;client_no_context_takeover")),
        Some(Deflate {
            client_no_context_takeover: true,
            server_no_context_takeover: false
        })
    );
}
