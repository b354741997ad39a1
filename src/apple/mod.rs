//! Apple's Apps and Books API (v2) as data: where to send requests, what comes back, and
//! what each answer means. No I/O here: requests are described, responses are parsed.
//!
//! | module | what of Apple's |
//! |---|---|
//! | [`wire`] | the JSON bodies: envelope, client config, pages, event requests and `/status` answers, asset counts |
//! | [`outcome`] | what any HTTP answer means (`classify`): success, `Retry-After`, transient, token invalid, rejected |
//! | [`errors`] | the error numbers the engine acts on, each with its meaning |
//! | [`limits`] | the per-request limits (from service config) and the fixed numbers Apple documents |
//! | [`service_config`] | the URLs and limits of `GET /service/config` |
//! | [`notification`] | the notifications Apple POSTs: bearer check and parsing |
//! | [`token`] | the sToken file: decoding with typed errors |

pub mod errors;
pub mod limits;
pub mod notification;
pub mod outcome;
pub mod service_config;
pub mod token;
pub mod wire;

pub use limits::Limits;
pub use outcome::{classify, Outcome};
pub use service_config::{ServiceConfig, ServiceUrls};
