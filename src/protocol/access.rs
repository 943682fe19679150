//! Who may see what (roles) and what the observer refused at the door (counters by reason).

use serde::{Deserialize, Serialize};

/// What a signed-in person may see. Viewers see metadata only; inspectors also see payloads
/// and mirrored headers.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    #[default]
    Inspector,
}

impl Role {
    pub fn sees_payloads(self) -> bool {
        self == Role::Inspector
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Inspector => "inspector",
        }
    }
}

/// Why the observer refused something; each is counted and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No valid session or token (dashboard, API, export, `/live`).
    Unauthenticated,
    /// A tap without a valid ingest token.
    TapToken,
    /// A wrong token or password at the login form.
    BadLogin,
    /// Too many login attempts from one address.
    LoginRateLimited,
    /// A token check from an address shut out after too many wrong tokens.
    TokenLockout,
    /// A `Host` header that is not one of the observer's names.
    Host,
    /// A cross-origin `/live`, login or logout request.
    Origin,
    /// A viewer asked for payloads.
    Role,
    /// `--max-browsers` reached.
    Browsers,
    /// `--max-taps` reached.
    Taps,
    /// `--max-sources` reached with no source that could be forgotten.
    Sources,
    /// An export stopped at `--max-export-bytes`.
    ExportTruncated,
}

/// Counters of [`Refusal`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusals {
    pub unauthenticated: u64,
    pub tap_token: u64,
    pub bad_login: u64,
    pub login_rate_limited: u64,
    #[serde(default)]
    pub token_lockout: u64,
    pub host: u64,
    pub origin: u64,
    pub role: u64,
    pub browsers: u64,
    pub taps: u64,
    #[serde(default)]
    pub sources: u64,
    pub export_truncated: u64,
}

impl Refusals {
    pub fn count(&mut self, r: Refusal) {
        *self.slot(r) += 1;
    }

    fn slot(&mut self, r: Refusal) -> &mut u64 {
        match r {
            Refusal::Unauthenticated => &mut self.unauthenticated,
            Refusal::TapToken => &mut self.tap_token,
            Refusal::BadLogin => &mut self.bad_login,
            Refusal::LoginRateLimited => &mut self.login_rate_limited,
            Refusal::TokenLockout => &mut self.token_lockout,
            Refusal::Host => &mut self.host,
            Refusal::Origin => &mut self.origin,
            Refusal::Role => &mut self.role,
            Refusal::Browsers => &mut self.browsers,
            Refusal::Taps => &mut self.taps,
            Refusal::Sources => &mut self.sources,
            Refusal::ExportTruncated => &mut self.export_truncated,
        }
    }

    /// Every counter with its reason name (the `/metrics` label).
    pub fn entries(&self) -> [(&'static str, u64); 12] {
        [
            ("unauthenticated", self.unauthenticated),
            ("tap_token", self.tap_token),
            ("bad_login", self.bad_login),
            ("login_rate_limited", self.login_rate_limited),
            ("token_lockout", self.token_lockout),
            ("host", self.host),
            ("origin", self.origin),
            ("role", self.role),
            ("browsers", self.browsers),
            ("taps", self.taps),
            ("sources", self.sources),
            ("export_truncated", self.export_truncated),
        ]
    }
}
