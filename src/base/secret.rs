//! A string that must never be shown: the sToken (and, later, notification auth tokens).

use serde::{Deserialize, Serialize};

/// A secret string. `Debug` prints `Secret(***)`; there is no `Display`.
///
/// It serializes as the plain string because the host needs the value for exactly two
/// purposes: the `Authorization` header of a request and the durable store (which passes
/// it through the host's protect hook).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The raw value. Call only to build a request header or a store record.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}
