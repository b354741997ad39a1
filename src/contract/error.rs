//! Errors for bad input. The engine never panics on input; it refuses it with one of these
//! and changes nothing.

use crate::apple::token::TokenError;

/// Why the engine refused an input; nothing was changed. [`EngineError::code`] is stable for hosts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("an account with id {0:?} already exists")]
    AccountExists(String),
    #[error("no account with id {0:?}")]
    UnknownAccount(String),
    #[error("this sToken is already used by account {0:?}")]
    DuplicateToken(String),
    #[error("account {account_id:?} is used by app policies {}: remove them or move them to another account first", .policies.join(", "))]
    AccountInUse { account_id: String, policies: Vec<String> },
    #[error("no app policy with id {0:?}")]
    UnknownPolicy(String),
    #[error("account {account_id:?}: {reason}")]
    NotAllowed { account_id: String, reason: String },
    #[error("cannot restore from the store: record {key:?}: {reason}")]
    Restore { key: String, reason: String },
}

impl EngineError {
    /// A stable machine-readable code (`error.code` in JavaScript).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Token(e) => e.code(),
            EngineError::Config(_) => "INVALID_CONFIG",
            EngineError::InvalidInput(_) => "INVALID_INPUT",
            EngineError::AccountExists(_) => "ACCOUNT_EXISTS",
            EngineError::UnknownAccount(_) => "UNKNOWN_ACCOUNT",
            EngineError::DuplicateToken(_) => "DUPLICATE_TOKEN",
            EngineError::AccountInUse { .. } => "ACCOUNT_IN_USE",
            EngineError::UnknownPolicy(_) => "UNKNOWN_POLICY",
            EngineError::NotAllowed { .. } => "NOT_ALLOWED",
            EngineError::Restore { .. } => "RESTORE_FAILED",
        }
    }
}
