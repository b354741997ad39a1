//! What an HTTP answer from Apple means for the engine, whatever endpoint it came from.

use std::collections::BTreeMap;

use super::errors::{token_reason, RATE_LIMITED, TOKEN_INVALID_ERRORS, TRANSIENT_ERRORS};
use super::wire::{Envelope, MdmInfo};
use crate::base::time::{parse_http_date, Millis, SECOND};

/// The latest deadline a JavaScript host can hold (`Number.MAX_SAFE_INTEGER` ms, in the year 287396): a longer
/// `Retry-After` is capped there, so that every output and record stays representable.
const LATEST_DEADLINE: Millis = (1 << 53) - 1;

/// The meaning of one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Success; the body is for the caller to parse.
    Success,
    /// Apple said when to come back (`Retry-After`): no request for the account before `until`.
    RetryAfter { until: Millis, reason: String },
    /// Rate limited, a server error without `Retry-After`, a network error or an unreadable
    /// body: retry with exponential backoff.
    Transient { reason: String },
    /// The token is expired, revoked or rejected.
    TokenInvalid { error_number: Option<i64>, reason: String },
    /// Apple refused this request (validation error and the like); retrying unchanged won't help.
    Rejected { error_number: Option<i64>, reason: String },
}

/// A classified answer plus the `mdmInfo` it carried (checked on every response).
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub outcome: Outcome,
    pub mdm_info: Option<MdmInfo>,
}

/// An HTTP answer from Apple as the host reported it (`headers` keys lower-case).
#[derive(Debug, Clone, Copy)]
pub struct HttpAnswer<'a> {
    pub status: u16,
    pub headers: &'a BTreeMap<String, String>,
    pub body: &'a str,
}

/// Classifies an HTTP answer. `headers` keys must be lower-case.
pub fn classify(status: u16, headers: &BTreeMap<String, String>, body: &str, now: Millis) -> Classified {
    let parsed = if body.trim().is_empty() {
        Some(Envelope::default())
    } else {
        serde_json::from_str::<Envelope>(body).ok()
    };
    classify_envelope(status, headers, parsed, now)
}

/// Classifies an HTTP answer whose body was read already: its envelope, or `None` when the body
/// is not JSON. Lets a caller read a large body once (a page with its envelope) instead of twice.
pub fn classify_envelope(status: u16, headers: &BTreeMap<String, String>, envelope: Option<Envelope>, now: Millis) -> Classified {
    let Some(envelope) = envelope else {
        let outcome = if (200..300).contains(&status) {
            Outcome::Transient { reason: "Apple's answer is not valid JSON".to_owned() }
        } else {
            by_status(status, None, None, headers, now)
        };
        return Classified { outcome, mdm_info: None };
    };
    let outcome = by_status(status, envelope.error_number, envelope.error_message, headers, now);
    Classified { outcome, mdm_info: envelope.mdm_info }
}

fn by_status(
    status: u16,
    error_number: Option<i64>,
    error_message: Option<String>,
    headers: &BTreeMap<String, String>,
    now: Millis,
) -> Outcome {
    let describe = |fallback: &str| match (error_number, &error_message) {
        (Some(n), Some(m)) => format!("Apple error {n}: {m}"),
        (Some(n), None) => format!("Apple error {n} (HTTP {status})"),
        (None, _) => format!("{fallback} (HTTP {status})"),
    };
    if let Some(number) = error_number.filter(|n| TOKEN_INVALID_ERRORS.contains(n)) {
        return Outcome::TokenInvalid { error_number: Some(number), reason: token_reason(number) };
    }
    let retryable = status >= 500
        || status == 429
        || error_number.is_some_and(|n| n == RATE_LIMITED || TRANSIENT_ERRORS.contains(&n));
    if retryable {
        let reason = describe("Apple is unavailable");
        return match retry_after(headers, now) {
            Some(until) => Outcome::RetryAfter { until, reason },
            None => Outcome::Transient { reason },
        };
    }
    if status == 401 {
        return Outcome::TokenInvalid { error_number, reason: describe("Apple rejected the token") };
    }
    if error_number.is_some() || !(200..300).contains(&status) {
        return Outcome::Rejected { error_number, reason: describe("Apple refused the request") };
    }
    Outcome::Success
}

/// `Retry-After` as delta-seconds or an HTTP-date. A date in the past, or an unreadable value,
/// counts as absent (exponential backoff applies instead).
pub fn retry_after(headers: &BTreeMap<String, String>, now: Millis) -> Option<Millis> {
    let value = headers.get("retry-after")?.trim();
    let until = match value.parse::<u64>() {
        Ok(seconds) => now.saturating_add(seconds.saturating_mul(SECOND)),
        Err(_) => parse_http_date(value)?,
    };
    (until > now).then_some(until.min(LATEST_DEADLINE))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn error_number_in_a_200_body_is_an_error() {
        let c = classify(200, &headers(&[]), r#"{"errorNumber": 9622, "errorMessage": "Invalid authentication token"}"#, 0);
        assert!(matches!(c.outcome, Outcome::TokenInvalid { error_number: Some(9622), .. }));
    }

    #[test]
    fn retry_after_seconds_and_http_date_give_deadlines() {
        let c = classify(503, &headers(&[("retry-after", "120")]), "", 1_000);
        assert!(matches!(c.outcome, Outcome::RetryAfter { until: 121_000, .. }));
        let c = classify(503, &headers(&[("retry-after", "Thu, 01 Jan 1970 00:05:00 GMT")]), "", 1_000);
        assert!(matches!(c.outcome, Outcome::RetryAfter { until: 300_000, .. }));
    }

    #[test]
    fn retry_after_beyond_what_javascript_can_represent_is_capped() {
        let c = classify(503, &headers(&[("retry-after", "99999999999999")]), "", 1_000);
        assert!(matches!(c.outcome, Outcome::RetryAfter { until: 9_007_199_254_740_991, .. }), "{:?}", c.outcome);
    }

    #[test]
    fn rate_limit_without_retry_after_is_transient() {
        let c = classify(429, &headers(&[]), r#"{"errorNumber": 9646}"#, 0);
        assert!(matches!(c.outcome, Outcome::Transient { .. }));
    }

    #[test]
    fn garbage_2xx_body_is_transient_and_garbage_4xx_is_rejected() {
        assert!(matches!(classify(200, &headers(&[]), "<html>", 0).outcome, Outcome::Transient { .. }));
        assert!(matches!(classify(400, &headers(&[]), "<html>", 0).outcome, Outcome::Rejected { .. }));
    }

    #[test]
    fn mdm_info_is_extracted_from_any_answer() {
        let c = classify(200, &headers(&[]), r#"{"mdmInfo": {"id": "x", "name": "Other", "metadata": ""}, "eventId": "1"}"#, 0);
        assert_eq!(c.mdm_info.unwrap().name, "Other");
        assert_eq!(c.outcome, Outcome::Success);
    }
}
