//! What the observer refuses and how it says so: one code enum ([`ErrorCode`]), one HTTP error
//! type ([`ApiError`]) whose body is always `{"type":"error","code":…,"message":…}` (plus
//! `index` when one event is to blame; docs/api.md), and the close code of each kind that ends
//! a WebSocket. Control flow looks at the code, never at a message's text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sockscope_wire::WireError;

/// Declares [`ErrorCode`] once: each variant with the name clients see.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $v:ident = $name:literal,)*) => {
        /// Why something was refused. The names are the `code` of every error body, ingest
        /// reply and `/live` error.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
        pub(crate) enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $name)] $v,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            #[cfg(test)]
            pub(crate) const ALL: &'static [ErrorCode] = &[$(ErrorCode::$v,)*];

            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$v => $name,)*
                }
            }
        }
    };
}

error_codes! {
    // A frame or body that is not a valid batch (sockscope-wire's checks).
    Malformed = "malformed",
    UnsupportedVersion = "unsupported_version",
    TooManyEvents = "too_many_events",
    InvalidEvent = "invalid_event",
    /// The request body could not be read (too large, cut off).
    Body = "body",
    ContentType = "content_type",
    UnsupportedSubprotocol = "unsupported_subprotocol",
    // The rules of a tap session.
    NoHello = "no_hello",
    SourceMismatch = "source_mismatch",
    // What the aggregator refused for one event.
    SourceLimit = "source_limit",
    /// The source is online under another tap credential.
    SourceTaken = "source_taken",
    DuplicateConnection = "duplicate_connection",
    ConnectionLimit = "connection_limit",
    UnknownConnection = "unknown_connection",
    // Limits and the door.
    RateLimited = "rate_limited",
    TooManyTaps = "too_many_taps",
    /// `--max-clients` sockets are connected (written by the accept loop, outside the router).
    TooManyClients = "too_many_clients",
    TooManyBrowsers = "too_many_browsers",
    /// An address presented too many wrong tokens: shut out for a minute.
    TooManyAttempts = "too_many_attempts",
    Unauthorized = "unauthorized",
    Forbidden = "forbidden",
    WrongHost = "wrong_host",
    Origin = "origin",
    // The JSON API.
    BadRequest = "bad_request",
    NotFound = "not_found",
    ShuttingDown = "shutting_down",
}

impl ErrorCode {
    /// The HTTP status an error of this kind answers with.
    pub(crate) fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            TooManyEvents => StatusCode::PAYLOAD_TOO_LARGE,
            ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            SourceLimit | DuplicateConnection | ConnectionLimit | UnknownConnection => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RateLimited | TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            TooManyTaps | TooManyClients | TooManyBrowsers | ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            SourceTaken => StatusCode::CONFLICT,
            Unauthorized => StatusCode::UNAUTHORIZED,
            Forbidden | Origin => StatusCode::FORBIDDEN,
            WrongHost => StatusCode::MISDIRECTED_REQUEST,
            NotFound => StatusCode::NOT_FOUND,
            Malformed
            | UnsupportedVersion
            | InvalidEvent
            | Body
            | UnsupportedSubprotocol
            | NoHello
            | SourceMismatch
            | BadRequest => StatusCode::BAD_REQUEST,
        }
    }

    /// The close code a tap session ends with after an event error of this kind, if it ends:
    /// a refused source cannot speak on this session (the tap reconnects with backoff).
    pub(crate) fn ends_tap_session(self) -> Option<u16> {
        match self {
            ErrorCode::SourceLimit | ErrorCode::SourceTaken => Some(1008),
            _ => None,
        }
    }

    pub(crate) fn of_wire(e: &WireError) -> ErrorCode {
        match e {
            WireError::Malformed { .. } => ErrorCode::Malformed,
            WireError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            WireError::TooManyEvents { .. } => ErrorCode::TooManyEvents,
            WireError::Invalid { .. } => ErrorCode::InvalidEvent,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests read codes as the strings clients see.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Every HTTP error the observer answers with.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// The event to blame, for batch errors.
    pub index: Option<usize>,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: code.status(),
            code,
            message: message.into(),
            index: None,
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// The aggregator has stopped: only at shutdown.
    pub(crate) fn stopped() -> Self {
        Self::new(ErrorCode::ShuttingDown, "the observer is shutting down")
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub(crate) fn wire(e: &WireError) -> Self {
        ApiError {
            index: e.index(),
            ..Self::new(ErrorCode::of_wire(e), e.to_string())
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            kind: "error",
            code: self.code,
            message: &self.message,
            index: self.index,
        };
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_statuses_are_errors() {
        for &c in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            assert!(c.status().is_client_error() || c.status().is_server_error());
        }
        assert_eq!(ErrorCode::ALL.len(), 26);
        assert_eq!(ErrorCode::SourceLimit.ends_tap_session(), Some(1008));
        assert_eq!(ErrorCode::SourceTaken.ends_tap_session(), Some(1008));
        assert_eq!(ErrorCode::UnknownConnection.ends_tap_session(), None);
    }
}
