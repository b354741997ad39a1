//! Foundations with no knowledge of the domain: the clamped clock and date parsing, secrets that
//! never print, capped exponential backoff and the sliding-window rate limiter, and reading JSON
//! objects field by field.

pub mod backoff;
pub mod json_object;
pub mod secret;
pub mod time;
