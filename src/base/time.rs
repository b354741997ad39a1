//! Time as the core sees it: Unix milliseconds handed in by the host, never read from a clock.
//!
//! Dates are read and written here by hand (proleptic Gregorian calendar, UTC): the three formats the
//! engine meets are fixed-width, and a date library would be a large part of the wasm binary.

/// Unix time in milliseconds.
pub type Millis = u64;

/// One second in [`Millis`]; likewise [`MINUTE`], [`HOUR`] and [`DAY`].
pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// A host time this much behind the engine's clock is not jitter: the engine's clock ran ahead
/// (one call with a `now` far in the future) and is set back.
pub const CLOCK_GLITCH: Millis = MINUTE;

/// The engine's notion of "now": the latest time the host has passed in.
///
/// Hosts call with `Date.now()`, which can step backwards (NTP, suspended laptops); the clock
/// clamps small steps back so that time inside the core never runs backwards. A step back of
/// more than [`CLOCK_GLITCH`] means the clock ran ahead on a glitched reading: it is set back,
/// and [`Clock::take_rewind`] tells the engine to re-derive the deadlines it computed meanwhile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    now: Millis,
    rewound: bool,
}

impl Clock {
    /// A clock that starts at `now`.
    pub fn new(now: Millis) -> Self {
        Self { now, rewound: false }
    }

    /// Moves the clock to `now`: forward, or back after a glitch (not for a small step back).
    pub fn advance(&mut self, now: Millis) -> Millis {
        if now.saturating_add(CLOCK_GLITCH) < self.now {
            self.rewound = true;
            self.now = now;
        } else {
            self.now = self.now.max(now);
        }
        self.now
    }

    /// Whether the clock was set back since the last call.
    pub fn take_rewind(&mut self) -> bool {
        std::mem::take(&mut self.rewound)
    }

    /// The latest time seen.
    pub fn now(&self) -> Millis {
        self.now
    }
}

/// Parses Apple's ISO-8601 timestamps: `2030-11-08T22:33:22+0000` (sToken `expDate`,
/// `tokenExpirationDate`), also accepting RFC 3339 (`+00:00`, `Z`, fractional seconds).
pub fn parse_apple_date(text: &str) -> Option<Millis> {
    let (date, rest) = text.split_once(['T', 't'])?;
    let mut date = date.split('-');
    let (year, month, day) = (number(date.next()?, 4)?, number(date.next()?, 2)?, number(date.next()?, 2)?);
    if date.next().is_some() || rest.len() < 8 || !rest.is_char_boundary(8) {
        return None;
    }
    let (clock, mut zone) = rest.split_at(8);
    let (hour, minute, second) = clock_of(clock)?;
    let mut millis = 0;
    if let Some(fraction) = zone.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let first_three = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = number(&first_three, 3)?;
        zone = &fraction[digits..];
    }
    let offset_minutes = match zone {
        "Z" | "z" => 0,
        _ => {
            if !zone.is_ascii() {
                return None; // the slices below count bytes
            }
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, minutes) = match zone.len() {
                5 => (&zone[1..3], &zone[3..]),
                6 if zone.as_bytes()[3] == b':' => (&zone[1..3], &zone[4..]),
                _ => return None,
            };
            let (hours, minutes) = (number(hours, 2)?, number(minutes, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * i64::from(hours * 60 + minutes)
        }
    };
    let local = unix_seconds(i64::from(year), month, day, hour, minute, second)?;
    let utc = local - offset_minutes * 60;
    u64::try_from(utc).ok()?.checked_mul(SECOND)?.checked_add(u64::from(millis))
}

/// Parses an HTTP-date: `Sun, 06 Nov 1994 08:49:37 GMT`, and the obsolete RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`, two-digit years standing for 1970–2069) and asctime
/// (`Sun Nov  6 08:49:37 1994`) forms. The weekday must be the date's.
pub fn parse_http_date(text: &str) -> Option<Millis> {
    let (weekday, rest) = text.split_once(' ')?;
    let (weekday, year, month, day, clock) = match weekday.strip_suffix(',') {
        // IMF-fixdate and RFC 850
        Some(weekday) => {
            let rest = rest.strip_suffix(" GMT")?;
            let (date, clock) = rest.rsplit_once(' ')?;
            let (day, month, year) = if weekday.len() == 3 {
                let mut fields = date.split(' ');
                let parts = (fields.next()?, fields.next()?, number(fields.next()?, 4)?);
                if fields.next().is_some() {
                    return None;
                }
                parts
            } else {
                let mut fields = date.split('-');
                let parts = (fields.next()?, fields.next()?, number(fields.next()?, 2)?);
                if fields.next().is_some() {
                    return None;
                }
                (parts.0, parts.1, if parts.2 < 70 { 2000 + parts.2 } else { 1900 + parts.2 })
            };
            (weekday, year, month, number(day, 2)?, clock)
        }
        // asctime: the day is padded with a space to two characters
        None => {
            let (month, rest) = rest.split_once(' ')?;
            let padded = rest.strip_prefix(' ');
            let mut fields = padded.unwrap_or(rest).split(' ');
            let day = fields.next()?;
            let clock = fields.next()?;
            let year = number(fields.next()?, 4)?;
            if fields.next().is_some() || day.is_empty() || day.len() > 2 || (day.len() == 1) != padded.is_some() {
                return None;
            }
            (weekday, year, month, number(day, day.len())?, clock)
        }
    };
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let (hour, minute, second) = clock_of(clock)?;
    let seconds = unix_seconds(i64::from(year), month, day, hour, minute, second)?;
    let weekday_index = WEEKDAYS.iter().position(|w| *w == weekday || (weekday.len() == 3 && w.starts_with(weekday)))?;
    // 1970-01-01 was a Thursday (index 3).
    if (seconds.div_euclid(86_400) + 3).rem_euclid(7) != weekday_index as i64 {
        return None;
    }
    u64::try_from(seconds).ok()?.checked_mul(SECOND)
}

/// Formats Unix milliseconds as RFC 3339 UTC, for human-readable reasons.
pub fn format_utc(at: Millis) -> String {
    let seconds = at / SECOND;
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    if year > 9999 {
        return format!("{at} ms");
    }
    let of_day = seconds % 86_400;
    let (hour, minute, second) = (of_day / 3_600, of_day / 60 % 60, of_day % 60);
    let fraction = match at % SECOND {
        0 => String::new(),
        ms => format!(".{ms:03}").trim_end_matches('0').to_owned(),
    };
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z")
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Exactly `width` ASCII digits.
fn number(text: &str, width: usize) -> Option<u32> {
    (text.len() == width && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

/// `HH:MM:SS`.
fn clock_of(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split(':');
    let clock = (number(parts.next()?, 2)?, number(parts.next()?, 2)?, number(parts.next()?, 2)?);
    parts.next().is_none().then_some(clock)
}

/// Seconds since the Unix epoch of a valid calendar date and time of day (UTC), else `None`.
fn unix_seconds(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= month_days[month as usize - 1]
        && hour < 24
        && minute < 60
        && second < 60;
    valid.then(|| days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3_600 + minute * 60 + second))
}

/// Days from 1970-01-01 to a date. Years are counted from March, so that the leap day ends a year
/// and each 400-year era has the same 146,097 days.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
        assert_eq!(format_utc(1_795_392_000_500), "2026-11-23T00:00:00.5Z");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(u64::MAX), format!("{} ms", u64::MAX));
    }

    #[test]
    fn impossible_dates_and_malformed_zones_are_refused() {
        assert_eq!(parse_apple_date("2023-02-29T00:00:00+0000"), None);
        assert_eq!(parse_apple_date("2024-02-29T00:00:00+0000"), Some(1_709_164_800_000));
        assert_eq!(parse_apple_date("2030-11-08T24:00:00+0000"), None);
        assert_eq!(parse_apple_date("2030-11-08T22:33:22+2400"), None);
        assert_eq!(parse_apple_date("2030-11-08T22:33:22"), None);
        assert_eq!(parse_apple_date("2030-11-08T22:33:22.25Z"), Some(1_920_407_602_250));
        assert_eq!(parse_apple_date("1969-12-31T23:59:59Z"), None);
        // Found by fuzzing the sToken: a zone of the right length in bytes, but not ASCII.
        assert_eq!(parse_apple_date("2030-11-08T22:33:22+\u{8030}0"), None);
        assert_eq!(parse_apple_date("2030-11-08T22:33:22+0\u{e9}0"), None);
    }

    #[test]
    fn http_dates_in_every_form_must_name_the_right_weekday() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777_000));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777_000));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(784_111_777_000));
        assert_eq!(parse_http_date("Mon, 06 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 6 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
    }
}
