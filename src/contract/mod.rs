//! The drive contract: what the host hands the engine and what it gets back, as serde types whose
//! JSON is the JavaScript API (`src/binding_types.d.ts`): inputs, outputs, events, the read models'
//! views and queries, the configuration, and the errors that refuse bad input. Under `cfg(test)`,
//! `description/` describes every one of them from the Rust code, for the contract test that
//! compares them with `binding_types.d.ts`.

pub mod config;
#[cfg(test)]
mod description;
pub mod error;
pub mod event;
pub mod input;
pub mod output;
pub mod preview;
pub mod tagged_enum;
pub mod views;

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Writes the contract's description where `VPP_CONTRACT_OUT` says (`tests/node/contract.test.mjs`
    /// runs this test by its path).
    #[test]
    fn description() {
        super::description::write_description();
    }
}
