//! Apple's error numbers (`errorNumber` in any answer, `failures[]` of `/status`, the `error` of a
//! notification), each with what it means to the engine. The only place the engine names them.

/// An internal error at Apple: retried with backoff; for one task, the next plan retries it.
pub const INTERNAL_ERROR: i64 = 9603;
/// The sToken is not valid.
pub const TOKEN_NOT_VALID: i64 = 9601;
/// Apple does not know the user (any more): an association for it registers it again.
pub const USER_NOT_FOUND: i64 = 9609;
/// The sToken has expired.
pub const TOKEN_EXPIRED: i64 = 9621;
/// The sToken is not (any more) an authentication token Apple accepts.
pub const TOKEN_INVALID: i64 = 9622;
/// The sToken was revoked (a new one was downloaded).
pub const TOKEN_REVOKED: i64 = 9625;
/// Apple is down for maintenance: retried with backoff; for one task, the next plan retries it.
pub const MAINTENANCE: i64 = 9644;
/// "Too many recent requests": back off exponentially.
pub const RATE_LIMITED: i64 = 9646;
/// The page index is out of range: the data shrank while it was paged through.
pub const PAGE_INDEX_OUT_OF_RANGE: i64 = 9650;
/// Apple does not know the event (any more).
pub const EVENT_NOT_FOUND: i64 = 9708;
/// Not enough licenses for an association (also while Apple's counts still show some).
pub const INSUFFICIENT_LICENSES: i64 = 9709;
/// The user exists already: the creation counts as done.
pub const USER_ALREADY_EXISTS: i64 = 9716;
/// The `sinceVersionId` of a delta sync is no longer valid: a full refresh starts over.
pub const INVALID_VERSION_ID: i64 = 9721;
/// The sToken's organization cannot use the service any more.
pub const TOKEN_REJECTED: i64 = 9722;
/// Apple is temporarily unavailable: retried with backoff.
pub const TEMPORARILY_UNAVAILABLE: i64 = 9729;

/// Error numbers that mean the sToken cannot be used any more: the account stops until it is replaced.
pub const TOKEN_INVALID_ERRORS: [i64; 5] = [TOKEN_NOT_VALID, TOKEN_EXPIRED, TOKEN_INVALID, TOKEN_REVOKED, TOKEN_REJECTED];
/// Error numbers of Apple's own trouble: retried with backoff, like a 5xx.
pub const TRANSIENT_ERRORS: [i64; 3] = [INTERNAL_ERROR, MAINTENANCE, TEMPORARILY_UNAVAILABLE];

/// What the administrator reads when Apple's answer stops the account: each way a token ends has
/// its own reason, saying what to do.
pub fn token_reason(number: i64) -> String {
    match number {
        TOKEN_EXPIRED => {
            "The token has expired (Apple error 9621). Download a new token in Apple Business Manager or Apple School Manager and upload it."
                .to_owned()
        }
        TOKEN_REVOKED => "Apple has revoked the token because a newer token was downloaded for this location (error 9625). \
                          Upload the newest token."
            .to_owned(),
        TOKEN_INVALID => "Apple no longer accepts the token (error 9622): the account that downloaded it may have changed its \
                          password or been removed. Download a new token and upload it."
            .to_owned(),
        n => format!("Apple rejected the token (error {n}). Upload a new token."),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn each_way_a_token_ends_has_its_own_reason() {
        let reasons: std::collections::BTreeSet<String> = TOKEN_INVALID_ERRORS.iter().map(|&n| token_reason(n)).collect();
        assert_eq!(reasons.len(), TOKEN_INVALID_ERRORS.len());
        assert!(token_reason(TOKEN_REVOKED).contains("newer token"));
        assert!(token_reason(TOKEN_EXPIRED).contains("expired"));
        assert!(token_reason(TOKEN_INVALID).contains("no longer accepts"));
    }
}
