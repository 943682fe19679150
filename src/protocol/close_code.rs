//! RFC 6455 close codes: what a code means to a person, and the bounded class it belongs to
//! (used as a metrics label).

use serde::{Deserialize, Serialize};

/// The meaning of an RFC 6455 close code.
pub fn meaning(code: u16) -> &'static str {
    match code {
        1000 => "normal",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "no status",
        1006 => "abnormal",
        1007 => "invalid payload",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "missing extension",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        1015 => "TLS handshake",
        3000..=3999 => "registered",
        4000..=4999 => "application",
        _ => "reserved",
    }
}

/// What kind of ending a close code means; bounded, so usable as a metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseClass {
    /// 1000
    Normal,
    /// 1001
    GoingAway,
    /// No close frame (1005/1006 or none reported).
    Abnormal,
    /// 1002, 1003, 1007, 1010, 1015
    Protocol,
    /// 1008
    Policy,
    /// 1009
    TooBig,
    /// 1011–1014: server error, restart, try later, bad gateway
    ServerError,
    /// 4000–4999
    Application,
    /// 3000–3999 and anything else
    Other,
}

impl CloseClass {
    pub const ALL: [CloseClass; 9] = [
        CloseClass::Normal,
        CloseClass::GoingAway,
        CloseClass::Abnormal,
        CloseClass::Protocol,
        CloseClass::Policy,
        CloseClass::TooBig,
        CloseClass::ServerError,
        CloseClass::Application,
        CloseClass::Other,
    ];

    pub fn of(code: Option<u16>) -> CloseClass {
        match code {
            None | Some(1005) | Some(1006) => CloseClass::Abnormal,
            Some(1000) => CloseClass::Normal,
            Some(1001) => CloseClass::GoingAway,
            Some(1002 | 1003 | 1007 | 1010 | 1015) => CloseClass::Protocol,
            Some(1008) => CloseClass::Policy,
            Some(1009) => CloseClass::TooBig,
            Some(1011..=1014) => CloseClass::ServerError,
            Some(4000..=4999) => CloseClass::Application,
            Some(_) => CloseClass::Other,
        }
    }

    /// The class a [`CloseClass::label`] names.
    pub fn from_label(label: &str) -> Option<CloseClass> {
        CloseClass::ALL.into_iter().find(|k| k.label() == label)
    }

    /// Every label, comma-separated (for error messages).
    pub fn labels() -> String {
        let names: Vec<&str> = CloseClass::ALL.iter().map(|k| k.label()).collect();
        names.join(", ")
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn label(self) -> &'static str {
        match self {
            CloseClass::Normal => "normal",
            CloseClass::GoingAway => "going_away",
            CloseClass::Abnormal => "abnormal",
            CloseClass::Protocol => "protocol",
            CloseClass::Policy => "policy",
            CloseClass::TooBig => "too_big",
            CloseClass::ServerError => "server_error",
            CloseClass::Application => "application",
            CloseClass::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{meaning, CloseClass};

    #[test]
    fn meanings() {
        assert_eq!(meaning(1006), "abnormal");
        assert_eq!(meaning(4000), "application");
        assert_eq!(meaning(1004), "reserved");
    }

    #[test]
    fn close_codes_are_classified() {
        let cases = [
            (None, "abnormal"),
            (Some(1006), "abnormal"),
            (Some(1000), "normal"),
            (Some(1001), "going_away"),
            (Some(1007), "protocol"),
            (Some(1008), "policy"),
            (Some(1009), "too_big"),
            (Some(1011), "server_error"),
            (Some(1014), "server_error"),
            (Some(4000), "application"),
            (Some(4999), "application"),
            (Some(3001), "other"),
        ];
        for (code, label) in cases {
            assert_eq!(CloseClass::of(code).label(), label, "{code:?}");
        }
        for (i, c) in CloseClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
