//! The sToken: the file an administrator downloads from Apple Business or School Manager.
//!
//! Its text is base64 of JSON `{"token": "...", "expDate": "2030-11-08T22:33:22+0000",
//! "orgName": "..."}`. The whole (trimmed) base64 text is the bearer credential Apple expects.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::base::secret::Secret;
use crate::base::time::{parse_apple_date, Millis};

/// A decoded, well-formed sToken. `Debug` never shows the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SToken {
    bearer: Secret,
    /// Organization name from the token (`orgName`).
    pub org_name: String,
    /// Expiry (`expDate`) in Unix milliseconds.
    pub expires_at: Millis,
}

/// Every way an uploaded sToken can be malformed. Messages never quote the token's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the sToken is empty")]
    Empty,
    #[error("the sToken is not valid base64 (is this the file downloaded from Apple Business or School Manager?)")]
    NotBase64,
    #[error("the sToken does not decode to UTF-8 text")]
    NotUtf8,
    #[error("the sToken does not decode to JSON")]
    NotJson,
    #[error("the sToken's JSON is not an object")]
    NotAnObject,
    #[error("the sToken has no \"{0}\" field")]
    MissingField(&'static str),
    #[error("the sToken's \"{0}\" field is not a string")]
    NotAString(&'static str),
    #[error("the sToken's \"{0}\" field is empty")]
    EmptyField(&'static str),
    #[error("the sToken's expDate {0:?} is not an ISO-8601 date")]
    BadExpiryDate(String),
    #[error("the sToken expired on {0}; download a new one from Apple Business or School Manager")]
    Expired(String),
}

impl TokenError {
    /// A stable machine-readable code for hosts (`error.code` in JavaScript).
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Empty => "TOKEN_EMPTY",
            TokenError::NotBase64 => "TOKEN_NOT_BASE64",
            TokenError::NotUtf8 => "TOKEN_NOT_UTF8",
            TokenError::NotJson => "TOKEN_NOT_JSON",
            TokenError::NotAnObject => "TOKEN_NOT_OBJECT",
            TokenError::MissingField(_) => "TOKEN_MISSING_FIELD",
            TokenError::NotAString(_) => "TOKEN_FIELD_NOT_STRING",
            TokenError::EmptyField(_) => "TOKEN_FIELD_EMPTY",
            TokenError::BadExpiryDate(_) => "TOKEN_BAD_EXPIRY_DATE",
            TokenError::Expired(_) => "TOKEN_EXPIRED",
        }
    }
}

impl SToken {
    /// Decodes the text of an sToken file. Surrounding and embedded whitespace (line breaks
    /// from copy and paste) is removed first. Expiry is not checked here: see [`SToken::check_not_expired`].
    pub fn decode(text: &str) -> Result<Self, TokenError> {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        if compact.is_empty() {
            return Err(TokenError::Empty);
        }
        let bytes = STANDARD
            .decode(&compact)
            .or_else(|_| STANDARD_NO_PAD.decode(&compact))
            .map_err(|_| TokenError::NotBase64)?;
        let json = String::from_utf8(bytes).map_err(|_| TokenError::NotUtf8)?;
        let value: Value = serde_json::from_str(&json).map_err(|_| TokenError::NotJson)?;
        let Value::Object(fields) = value else {
            return Err(TokenError::NotAnObject);
        };
        // The inner credential must be present, though only the whole file is ever sent.
        required_string(&fields, "token")?;
        let org_name = required_string(&fields, "orgName")?.to_owned();
        let exp_date = required_string(&fields, "expDate")?;
        let expires_at = parse_apple_date(exp_date)
            .ok_or_else(|| TokenError::BadExpiryDate(exp_date.to_owned()))?;
        Ok(Self { bearer: Secret::new(compact), org_name, expires_at })
    }

    /// Fails with [`TokenError::Expired`] when the token's expiry is at or before `now`.
    pub fn check_not_expired(&self, now: Millis) -> Result<(), TokenError> {
        if self.expires_at <= now {
            return Err(TokenError::Expired(crate::base::time::format_utc(self.expires_at)));
        }
        Ok(())
    }

    /// The bearer credential. Call only to build an `Authorization` header or a store record.
    pub fn bearer(&self) -> &Secret {
        &self.bearer
    }

    /// Whether two tokens carry the same credential (one location must not be added twice).
    pub fn same_credential(&self, other: &SToken) -> bool {
        self.bearer == other.bearer
    }
}

fn required_string<'a>(
    fields: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, TokenError> {
    match fields.get(name) {
        None | Some(Value::Null) => Err(TokenError::MissingField(name)),
        Some(Value::String(s)) if s.trim().is_empty() => Err(TokenError::EmptyField(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(TokenError::NotAString(name)),
    }
}
