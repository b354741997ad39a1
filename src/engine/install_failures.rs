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
        for (id, account) in self.accounts.iter_mut() {
            account.license_not_found(serial, user.as_deref(), adam_id, now, &mut self.effects.account(id));
        }
        Ok(())
    }
}
