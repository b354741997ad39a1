//! Apple's Apps and Books API (v2) as data: where to send requests, what comes back, and
//! what each answer means. No I/O here: requests are described, responses are parsed.

pub mod outcome;
pub mod service_config;
pub mod wire;

pub use outcome::{classify, Outcome};
pub use service_config::{Limits, ServiceConfig, ServiceUrls};
