//! `installFailed`: an install that failed or was cancelled reclaims the license and holds the
//! pair; one that failed because the device found no license (`reason: "licenseNotFound"`) is
//! checked with Apple first (see `licenses/checks.rs`).

use super::Engine;
use crate::contract::error::EngineError;
use crate::licenses::checks::LICENSE_NOT_FOUND;

impl Engine {
    /// `installFailed` for `adam_id` on the device `serial`; an unknown `reason` counts as none.
    pub(super) fn install_failed(&mut self, serial: &str, adam_id: &str, cancelled: bool, reason: Option<&str>) -> Result<(), EngineError> {
        if cancelled {
            return self.hold_device_app(serial, adam_id, "the installation was cancelled");
        }
        if reason != Some(LICENSE_NOT_FOUND) {
            return self.hold_device_app(serial, adam_id, "the installation failed");
        }
        self.record_installed(serial, adam_id, false)?;
        let user = self.facts.devices.get(serial).and_then(|d| d.client_user_id.clone());
        let now = self.clock.now();
        // Only where the device or its user is known: elsewhere no license of theirs can be missing.
        let names: Vec<&str> = std::iter::once(serial).chain(user.as_deref()).collect();
        for id in self.accounts.knowing(&names) {
            let Some(account) = self.accounts.get_mut(&id) else { continue };
            account.license_not_found(serial, user.as_deref(), adam_id, now, &mut self.effects.account(&id));
        }
        Ok(())
    }
}
