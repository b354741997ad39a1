//! Time as the core sees it: Unix milliseconds handed in by the host, never read from a clock.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Unix time in milliseconds.
pub type Millis = u64;

/// One second in [`Millis`]; likewise [`MINUTE`], [`HOUR`] and [`DAY`].
pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// The engine's notion of "now": the latest time the host has passed in.
///
/// Hosts call with `Date.now()`, which can step backwards (NTP, suspended laptops); the clock
/// clamps so that time inside the core never runs backwards.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    now: Millis,
}

impl Clock {
    /// A clock that starts at `now`.
    pub fn new(now: Millis) -> Self {
        Self { now }
    }

    /// Moves the clock to `now` unless that is earlier than the time already seen.
    pub fn advance(&mut self, now: Millis) -> Millis {
        self.now = self.now.max(now);
        self.now
    }

    /// The latest time seen.
    pub fn now(&self) -> Millis {
        self.now
    }
}

/// Parses Apple's ISO-8601 timestamps: `2030-11-08T22:33:22+0000` (sToken `expDate`,
/// `tokenExpirationDate`), also accepting RFC 3339 (`+00:00`, `Z`).
pub fn parse_apple_date(text: &str) -> Option<Millis> {
    let compact = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
    );
    let parsed = OffsetDateTime::parse(text, compact)
        .or_else(|_| OffsetDateTime::parse(text, &Rfc3339))
        .ok()?;
    let millis = parsed.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(millis).ok()
}

/// Parses an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT` and the obsolete forms).
pub fn parse_http_date(text: &str) -> Option<Millis> {
    let at = httpdate::parse_http_date(text).ok()?;
    let since_epoch = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since_epoch.as_millis()).ok()
}

/// Formats Unix milliseconds as RFC 3339 UTC, for human-readable reasons.
pub fn format_utc(at: Millis) -> String {
    let nanos = i128::from(at) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{at} ms"))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn clock_never_runs_backwards() {
        let mut clock = Clock::new(1_000);
        assert_eq!(clock.advance(500), 1_000);
        assert_eq!(clock.advance(2_000), 2_000);
        assert_eq!(clock.now(), 2_000);
    }

    #[test]
    fn apple_compact_offset_dates_parse() {
        assert_eq!(parse_apple_date("1970-01-01T00:00:01+0000"), Some(1_000));
        assert_eq!(parse_apple_date("1970-01-01T01:00:00+0100"), Some(0));
        assert_eq!(parse_apple_date("1970-01-01T00:00:02Z"), Some(2_000));
        assert_eq!(parse_apple_date("tomorrow"), None);
    }

    #[test]
    fn http_dates_parse_to_millis() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:02:00 GMT"), Some(120_000));
        assert_eq!(parse_http_date("soon"), None);
    }

    #[test]
    fn utc_formatting_is_rfc3339() {
        assert_eq!(format_utc(120_000), "1970-01-01T00:02:00Z");
    }
}
