//! Foundations with no knowledge of the domain: the clamped clock and date parsing, secrets that
//! never print, capped exponential backoff and the sliding-window rate limiter, reading JSON
//! objects field by field, and walking two ordered sequences together.

pub mod backoff;
pub mod json_object;
pub mod secret;
pub mod sorted;
pub mod time;
