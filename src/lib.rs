//! # vpp-license-engine
//!
//! The decision core of Apple **Apps and Books** (formerly VPP) license management for an
//! MDM server: which accounts to sync and when, who owns each location, and when Apple must
//! not be called. It is *sans-IO*: it never performs HTTP, never reads a clock and never
//! touches storage. The host does those and feeds the results back in, so the same core runs
//! natively, in Node and in browsers (as WebAssembly), and in tests at simulated speed.
//!
//! ## The run loop
//!
//! An [`Engine`] has one way in and one way out:
//!
//! * [`Engine::handle_input`] takes an [`Input`]: an administrator command (add an account,
//!   refresh, reclaim ownership, …), an HTTP answer ([`Input::Response`]) or its failure
//!   ([`Input::NetworkError`]), or [`Input::Timeout`] when the host's timer fires.
//! * [`Engine::poll_output`] returns the next [`Output`]: a [`Request`] to perform, an
//!   [`Event`] to show, records to [`Output::Persist`], or [`Output::Timeout`] — the time at
//!   which to call the engine again. Every mutation must be followed by draining
//!   `poll_output` until it returns a timeout. [`Engine::drain_outputs`] does that in
//!   batches (the wasm package's `pollOutputs`: one boundary crossing per batch).
//!
//! Both take `now`, the host's Unix time in milliseconds. The engine clamps it so that its
//! time never runs backwards. Randomness (backoff jitter) comes from [`EngineConfig::seed`].
//!
//! ```
//! use vpp_license_engine::{Engine, EngineConfig, Input, MdmInfo, Output};
//!
//! let mdm = MdmInfo { id: "4f0c…".into(), name: "Acme MDM".into(), metadata: "1.0".into() };
//! let mut engine = Engine::new(EngineConfig::new(mdm), 1_700_000_000_000).unwrap();
//! let now = 1_700_000_000_000;
//! let mut timer_at = None;
//! while timer_at.is_none() {
//!     match engine.poll_output(now) {
//!         Output::Request(request) => {
//!             // Perform request.method on request.url with request.headers and request.body,
//!             // then: engine.handle_input(Input::Response { id: request.id, status, headers, body }, now)
//!             assert_eq!(request.purpose, "serviceConfig");
//!         }
//!         Output::Event { event } => println!("{event:?}"),
//!         Output::Persist { ops } => { /* write ops to the store, in order */ let _ = ops; }
//!         Output::Timeout { at } => timer_at = Some(at),
//!     }
//! }
//! // Arm one timer for `timer_at`; when it fires:
//! engine.handle_input(Input::Timeout, now + 1_000).unwrap();
//! // … and drain poll_output again.
//! ```
//!
//! ## What it decides
//!
//! * **Accounts** (one per sToken / location): the token is decoded and checked on add
//!   ([`token::SToken`], typed [`token::TokenError`]s); expiry warnings at 30, 15, 7 and 1
//!   days; *Test* reads the client config.
//! * **Ownership**: an unclaimed location is claimed with the configured `mdmInfo`; another
//!   MDM's `mdmInfo` in *any* answer stops every request for that account until
//!   [`Input::ReclaimOwnership`].
//! * **Sync**: service config at start and every 5 minutes (its URLs and limits replace the
//!   defaults); full refresh on add, every 24 hours and on demand; delta sync every 30
//!   minutes from the `versionId` of the first page of the previous traversal; at most 5
//!   page requests in flight per account; progress events.
//! * **Backoff**: `Retry-After` (seconds or HTTP-date) blocks every request of the account
//!   until then; rate limiting, 5xx and network errors back off exponentially with seeded
//!   jitter, reset on success; never more than `maxRequestPerSecond` requests per account in
//!   any second; an `errorNumber` body is an error whatever the HTTP status; expired, revoked
//!   or rejected tokens stop the account until the token is replaced.
//!
//! * **Licenses**: the host states app policies (account, app, device or user licenses, targets
//!   in scope) and device and user facts; the engine associates licenses for targets that lack
//!   one, batched to the service-config limits (targets needing the same apps share requests),
//!   never asking for more than the pool holds (`insufficientLicenses`, `lowLicenses`); tracks
//!   every `eventId` by notification ([`Engine::handle_notification`]) and `/status` polling
//!   (≥ 30 s apart, re-submitted after 10 minutes); emits `licenseReady` only after Apple
//!   confirms; registers users (`/users/create`) and hands out invitations; reclaims at once when
//!   a target leaves scope, a device retires, the user removes the app or an install fails, or an
//!   administrator asks; **Reconcile** (every 24 h and on demand) releases what this instance
//!   assigned that is no longer used; **Clean Up** adopts or releases other MDMs' assignments.
//!   Only assignments this instance made (its durable provenance) are ever released, except by
//!   Clean Up; books and non-revocable assets never are. [`Engine::explain`] says why a target
//!   has or lacks a license; [`Engine::pending_operations`] lists what Apple has not finished.
//!
//! ## Secrets
//!
//! The sToken leaves the engine only in the `Authorization` header of a [`Request`] and in
//! the account record written to the store; the notification secret only in the claim request.
//! Neither appears in events, error messages or `Debug` output ([`secret::Secret`]).
//!
//! ## Errors and panics
//!
//! Bad input is refused with an [`EngineError`] (with a stable [`EngineError::code`]) and
//! changes nothing. Malformed answers from Apple are handled as failures of that request.
//! Neither ever panics.
//!
//! ## Inside
//!
//! The [`Engine`] drives one state machine per account (`src/account/`), which owns its parts —
//! credential, location and ownership, sync schedule, send gate — its copy of Apple's data
//! (`src/mirror.rs`) and its license machine (`src/licenses/`: provenance, desired state,
//! planning, pools, operations, outcomes, notifications, explain), each part owning its state.
//! What they read of the engine comes in an `Env`; what they do — events for the host, store
//! changes — they report into the engine's one `Effects` value (`src/effects.rs`), which
//! `src/engine/records.rs` maps to [`Output::Persist`] records. Apple's API is data in
//! [`apple`] (bodies, error numbers, limits); the names events, records and views share are
//! defined once (`src/vocab.rs`, e.g. [`LicensePair`], which records embed and from which events
//! and views are built). The modules form layers without an import circle; `ARCHITECTURE.md`
//! draws them and follows one input through the code.

mod account;
pub mod apple;
mod base;
mod contract;
mod effects;
mod engine;
mod facts;
mod licenses;
mod mirror;
pub mod persist;
mod policy;
mod vocab;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use account::EXPIRY_WARNING_DAYS;
pub use apple::limits::MAX_PAGES_IN_FLIGHT;
pub use apple::token;
pub use apple::wire::MdmInfo;
pub use base::backoff::BackoffPolicy;
pub use base::{secret, time};
pub use contract::config::{EngineConfig, NotificationConfig};
pub use contract::error::EngineError;
pub use contract::event::Event;
pub use contract::input::Input;
pub use contract::output::{Method, Output, PersistOp, Request};
pub use contract::preview::{AccountPreview, AppPreview, PreviewFigures, PreviewReport, ReleaseReason};
pub use contract::views::{
    AccountView, AppCountInAccount, AppCountView, AppReportRow, AppTotalView, AssignmentPage, AssignmentQuery, AssignmentReportPage,
    AssignmentReportRow, AssignmentView, EngineStats, ExplainQuery, LicenseExplanation, PendingOperationView, ReportPageQuery, TokenInfo,
    Wakeup,
};
pub use engine::{Engine, DRAIN_BATCH_RECORDS};
pub use persist::{LoadedRecord, StoredRecord, StoredRecordJson};
pub use policy::AppPolicy;
pub use vocab::{AccountStatus, LicensePair, LicenseType, PricingParam, ProductType, SyncKind};
