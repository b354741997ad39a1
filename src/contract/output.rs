//! What the engine asks of the host: HTTP calls, events, durable writes, and when to wake it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::base::time::Millis;
use crate::contract::event::Event;
use crate::persist::Record;

/// One output of [`crate::Engine::poll_output`]. Drain until [`Output::Timeout`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
#[must_use]
pub enum Output {
    /// Perform this HTTP call and answer with `Input::Response` (or `Input::NetworkError`).
    Request(Request),
    /// Show or act on an event.
    Event { event: Event },
    /// Write these records to the store, in order, before acting on later outputs' effects.
    Persist { ops: Vec<PersistOp> },
    /// Nothing more to do now: call `handle_input(Input::Timeout)` (or any input) at `at`.
    Timeout { at: Millis },
}

/// A fully formed HTTP request. `Debug` hides the `Authorization` header.
#[derive(Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub id: u64,
    pub account_id: Option<String>,
    /// What the call is for, for logs and metrics.
    pub purpose: &'static str,
    pub method: Method,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: BTreeMap<&str, &str> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), if k.eq_ignore_ascii_case("authorization") { "Bearer ***" } else { v.as_str() }))
            .collect();
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("purpose", &self.purpose)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &self.body)
            .finish()
    }
}

/// The HTTP method of a [`Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))] // the contract test reads its names
pub enum Method {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

/// A change to the durable store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum PersistOp {
    Put { key: String, value: Box<Record> },
    Delete { key: String },
}
