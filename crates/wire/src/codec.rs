//! Encoding and decoding of batches, and the replies the observer sends back to a tap.

use crate::event::{Batch, ConnClose, ConnOpen, Dropped, Hello, Host, Message};
use crate::validate::{validate, Limits, WireError};
use serde::{Deserialize, Serialize};

/// How a batch is encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 JSON (WebSocket text frames, `application/json`).
    Json,
    /// MessagePack with named fields (WebSocket binary frames).
    MsgPack,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Json => "JSON",
            Encoding::MsgPack => "MessagePack",
        }
    }

    /// The WebSocket subprotocol that selects this encoding.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Json => crate::SUBPROTOCOL_JSON,
            Encoding::MsgPack => crate::SUBPROTOCOL_MSGPACK,
        }
    }

    pub fn from_subprotocol(p: &str) -> Option<Encoding> {
        match p {
            crate::SUBPROTOCOL_JSON => Some(Encoding::Json),
            crate::SUBPROTOCOL_MSGPACK => Some(Encoding::MsgPack),
            _ => None,
        }
    }
}

/// Deepest MessagePack nesting decoded. A batch needs five levels (batch, events, event,
/// headers, header); rmp-serde's default of 1024 lets a 1 KB frame recurse the decoder until
/// the stack overflows and the observer aborts. (serde_json stops at 128 on its own.)
const MAX_MSGPACK_DEPTH: usize = 16;

fn msgpack<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, rmp_serde::decode::Error> {
    T::deserialize(&mut msgpack_de(bytes))
}

fn msgpack_de(bytes: &[u8]) -> rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'_, [u8]>> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_MSGPACK_DEPTH);
    de
}

/// Decodes and validates one batch. On failure nothing of the batch may be applied.
pub fn decode_batch(enc: Encoding, bytes: &[u8], limits: &Limits) -> Result<Batch, WireError> {
    let batch: Batch = match enc {
        Encoding::Json => serde_json::from_slice(bytes).map_err(|_| {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            malformed(
                enc,
                bytes,
                serde_path_to_error::deserialize::<_, Batch>(&mut de),
            )
        })?,
        Encoding::MsgPack => msgpack(bytes).map_err(|_| {
            let mut de = msgpack_de(bytes);
            malformed(
                enc,
                bytes,
                serde_path_to_error::deserialize::<_, Batch>(&mut de),
            )
        })?,
    };
    validate(&batch, limits)?;
    Ok(batch)
}

/// Turns the slow, path-tracking second decode into a precise error.
fn malformed<E: std::fmt::Display>(
    enc: Encoding,
    bytes: &[u8],
    res: Result<Batch, serde_path_to_error::Error<E>>,
) -> WireError {
    if let Some((path, message)) = locate(enc, bytes) {
        return WireError::Malformed {
            encoding: enc.name(),
            path,
            message,
        };
    }
    match res {
        Err(e) => WireError::Malformed {
            encoding: enc.name(),
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        },
        // The fast decoder failed but the tracking one did not: report generically.
        Ok(_) => WireError::Malformed {
            encoding: enc.name(),
            path: ".".into(),
            message: "could not be decoded".into(),
        },
    }
}

/// Largest rejected frame [`locate`] looks into. Building a `serde_json::Value` of a frame
/// costs several times its size in memory; past this, the path-tracking decoder's error (a
/// streaming decode, no tree) is reported instead.
pub const LOCATE_MAX_BYTES: usize = 256 << 10;

/// Finds the field of the first bad event. Tagged enums hide the path inside an event, so
/// each event is decoded again as its own struct. Only runs for batches already rejected, and
/// only up to [`LOCATE_MAX_BYTES`].
fn locate(enc: Encoding, bytes: &[u8]) -> Option<(String, String)> {
    if bytes.len() > LOCATE_MAX_BYTES {
        return None;
    }
    let v: serde_json::Value = match enc {
        Encoding::Json => serde_json::from_slice(bytes).ok()?,
        Encoding::MsgPack => msgpack(bytes).ok()?,
    };
    for (i, ev) in v.get("events")?.as_array()?.iter().enumerate() {
        let mut obj = ev.as_object()?.clone();
        let ty = obj.remove("type")?;
        let obj = serde_json::Value::Object(obj);
        let err = match ty.as_str()? {
            "hello" => field_error::<Hello>(obj),
            "conn_open" => field_error::<ConnOpen>(obj),
            "message" => field_error::<Message>(obj),
            "conn_close" => field_error::<ConnClose>(obj),
            "host" => field_error::<Host>(obj),
            "dropped" => field_error::<Dropped>(obj),
            _ => None,
        };
        if let Some((path, message)) = err {
            return Some((format!("events[{i}].{path}"), message));
        }
    }
    None
}

fn field_error<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Option<(String, String)> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(_) => None,
        Err(e) => Some((e.path().to_string(), e.into_inner().to_string())),
    }
}

/// Encodes a batch. Encoding our own types cannot fail.
pub fn encode_batch(enc: Encoding, batch: &Batch) -> Vec<u8> {
    encode_events(enc, &batch.events)
}

/// Encodes events as a v1 batch without taking ownership of them.
pub fn encode_events(enc: Encoding, events: &[crate::Event]) -> Vec<u8> {
    #[derive(Serialize)]
    struct BatchRef<'a> {
        v: u32,
        events: &'a [crate::Event],
    }
    let b = BatchRef {
        v: crate::PROTOCOL_VERSION,
        events,
    };
    match enc {
        Encoding::Json => serde_json::to_vec(&b).expect("batch serializes to JSON"),
        Encoding::MsgPack => rmp_serde::to_vec_named(&b).expect("batch serializes to msgpack"),
    }
}

/// What the observer sends back to a tap: always JSON text, whatever the batch encoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// The batch (numbered from 1 per connection) was rejected, or some of its events were.
    Error {
        /// Stable code, e.g. `malformed`, `invalid_event`, `unknown_connection`.
        code: String,
        message: String,
        batch: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<usize>,
    },
    /// To an on-demand tap: what somebody needs one message at a time now. Replaces the
    /// previous demand; a tap that has not been told any needs none.
    Demand(Demand),
}

/// What an on-demand tap sends message by message; everything else is counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demand {
    /// Every connection's messages (a live trace or a recording covers this source).
    #[serde(default)]
    pub all: bool,
    /// Tap connection ids somebody inspects.
    #[serde(default)]
    pub conns: Vec<u64>,
}
