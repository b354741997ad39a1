//! The drive contract: what the host hands the engine and what it gets back, as serde types whose
//! JSON is the JavaScript API (`src/binding_types.d.ts`): inputs, outputs, events, the read models'
//! views and queries, the configuration, and the errors that refuse bad input.

pub mod config;
pub mod error;
pub mod event;
pub mod input;
pub mod output;
pub mod views;
