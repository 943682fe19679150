//! Decoding an [`Event`] by its `"type"` without buffering it. serde's derive for an
//! internally tagged enum copies every event into an intermediate tree (strings allocated,
//! payloads copied) before it knows the type; our taps write `"type"` first, so the event is
//! decoded straight into its struct. An event whose `"type"` comes later (JSON written by
//! hand) is buffered as JSON and decoded from that.

use crate::event::{
    ConnClose, ConnOpen, Counters, Dropped, Event, EventKind, Hello, Host, Message,
};
use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

/// Decodes the rest of an event as the struct of its `kind`.
fn variant<'de, D: Deserializer<'de>>(kind: EventKind, d: D) -> Result<Event, D::Error> {
    Ok(match kind {
        EventKind::Hello => Event::Hello(Hello::deserialize(d)?),
        EventKind::ConnOpen => Event::ConnOpen(ConnOpen::deserialize(d)?),
        EventKind::Message => Event::Message(Message::deserialize(d)?),
        EventKind::ConnClose => Event::ConnClose(ConnClose::deserialize(d)?),
        EventKind::Host => Event::Host(Host::deserialize(d)?),
        EventKind::Dropped => Event::Dropped(Dropped::deserialize(d)?),
        EventKind::Counters => Event::Counters(Counters::deserialize(d)?),
    })
}

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event: a map with a \"type\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        // The first key, as our taps write it: the type, then the struct's own fields.
        let Some(first) = map.next_key_seed(KeySeed)? else {
            return Err(de::Error::missing_field("type"));
        };
        if let Key::Type = first {
            let kind: EventKind = map.next_value()?;
            return variant(kind, MapAccessDeserializer::new(map));
        }
        // `"type"` comes later: buffer the event as JSON (text payloads only: a binary value
        // cannot be held there, and is reported so).
        let mut obj = serde_json::Map::new();
        let mut key = Some(first);
        while let Some(k) = key {
            obj.insert(k.into_name(), map.next_value::<serde_json::Value>()?);
            key = map.next_key_seed(KeySeed)?;
        }
        let kind = obj
            .remove("type")
            .ok_or_else(|| de::Error::missing_field("type"))?;
        let kind = EventKind::deserialize(kind).map_err(de::Error::custom)?;
        variant(kind, serde_json::Value::Object(obj)).map_err(de::Error::custom)
    }
}

/// A key: `"type"`, or another name (kept only on the slow path).
enum Key {
    Type,
    Other(String),
}

impl Key {
    fn into_name(self) -> String {
        match self {
            Key::Type => "type".into(),
            Key::Other(s) => s,
        }
    }
}

struct KeySeed;

impl<'de> de::DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "type" => Key::Type,
                    _ => Key::Other(v.to_owned()),
                })
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Key, E> {
                std::str::from_utf8(v)
                    .map_err(|_| E::custom("a field name is not UTF-8"))
                    .and_then(|s| self.visit_str(s))
            }
        }
        d.deserialize_identifier(V)
    }
}
