//! The payload decoders of the inspector, from `sockscope-payload` (shared with the fuzz
//! targets, which must not build Leptos).

pub use sockscope_payload::decode::*;
pub use sockscope_payload::REDACTED;
