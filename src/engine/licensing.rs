//! License commands: policies (and the scope records of their targets), device and user facts,
//! administrator reclaims, Reconcile, the license removal notification toggle.

use std::collections::{BTreeMap, BTreeSet};

use super::{check_id, check_name, Engine};
use crate::account::Account;
use crate::base::time::Millis;
use crate::contract::error::EngineError;
use crate::contract::event::Event;
use crate::effects::{Effects, EngineChange};
use crate::facts::{DeviceFacts, UserFacts};
use crate::mirror::Mirror;
use crate::policy::{AppPolicy, Policy, Scope};
use crate::vocab::{AssetKey, AssignmentKey, LicenseType, PricingParam, Target};

/// What a `deviceEnrolled` input says about the device.
pub(super) struct Enrollment {
    pub client_user_id: Option<String>,
    pub shared_ipad: bool,
    pub enrollment_id: Option<String>,
    pub user_enrollment: bool,
    pub platform: Option<String>,
}

/// The assignment key a policy means for target `name`, in the account's mirror.
pub(super) fn key_for(mirror: &mut Mirror, policy: &Policy, name: &str) -> AssignmentKey {
    let id = mirror.intern_name(name);
    AssignmentKey { asset: mirror.intern_asset(&policy.adam_id, policy.pricing_param), target: target_of(policy, id) }
}

/// One of a policy's targets (interned in its account's mirror): a device or a user, by its license type.
fn target_of(policy: &Policy, id: u32) -> Target {
    match policy.license_type {
        LicenseType::Device => Target::Device(id),
        LicenseType::User => Target::User(id),
    }
}

/// `licenseReady` for the licenses of one account this MDM gave `device` and Apple shows it
/// holding (all apps, or one).
fn license_ready(account: &Account, device: Target, adam_id: Option<&str>, effects: &mut Effects) {
    let held = account.licenses.ours().of_target(device).filter(|k| account.mirror.has_assignment(k));
    for key in held {
        let pair = account.mirror.pair(&key);
        if adam_id.is_none_or(|a| a == pair.adam_id) {
            effects.event(Event::license_ready(&account.id, pair));
        }
    }
}

impl Engine {
    // ===================================================================== policies

    pub(super) fn set_policy(&mut self, input: AppPolicy) -> Result<(), EngineError> {
        check_id("policyId", &input.policy_id)?;
        check_name(&input.name)?;
        if input.adam_id.trim().is_empty() {
            return Err(EngineError::InvalidInput("adamId must not be empty".to_owned()));
        }
        if input.targets.iter().any(|t| t.trim().is_empty()) {
            return Err(EngineError::InvalidInput("targets must not contain empty ids".to_owned()));
        }
        let Some(account) = self.accounts.get_mut(&input.account_id) else {
            return Err(EngineError::UnknownAccount(input.account_id));
        };
        let old = self.policies.remove(&input.policy_id);
        let same_account = old.as_ref().is_some_and(|old| old.account_id == input.account_id);
        let mut policy = Policy::terms_of(&input);
        if let Some(old) = old.as_ref().filter(|_| same_account) {
            policy.scope = Scope::stored_in(old.scope.buckets());
        }
        for name in &input.targets {
            let id = account.mirror.intern_name(name);
            policy.scope.insert(id, name);
        }
        let regrown = policy.scope.rebalance();
        let all: Vec<u32> = policy.scope.ids().collect();
        match &old {
            None => {
                self.index_scope(&policy, all.iter().copied(), true);
                self.store_scope(&policy, 0..policy.scope.buckets());
            }
            Some(old) => {
                // The targets already indexed for this policy: none if the license it means changed.
                let same_license = old.same_license(&policy);
                let dropped: Vec<u32> = if same_license { old.scope.minus(&policy.scope).collect() } else { old.scope.ids().collect() };
                self.nominate_targets(old, &dropped, &format!("left the scope of policy {}", old.name));
                self.index_scope(old, dropped.iter().copied(), false);
                let added: Vec<u32> = if same_license { policy.scope.minus(&old.scope).collect() } else { all.clone() };
                self.index_scope(&policy, added, true);
                if same_account && regrown.is_none() {
                    let moved = old.scope.records_differing(&policy.scope);
                    self.store_scope(&policy, moved);
                } else {
                    self.store_scope(old, 0..old.scope.buckets());
                    self.store_scope(&policy, 0..policy.scope.buckets());
                }
            }
        }
        self.lift_holds(&policy, &all);
        self.store_policy_header(&policy);
        self.policies.insert(policy.policy_id.clone(), policy);
        Ok(())
    }

    pub(super) fn remove_policy(&mut self, policy_id: &str) -> Result<(), EngineError> {
        let policy = self.policies.remove(policy_id).ok_or_else(|| EngineError::UnknownPolicy(policy_id.to_owned()))?;
        let targets: Vec<u32> = policy.scope.ids().collect();
        self.nominate_targets(&policy, &targets, &format!("policy {} was removed", policy.name));
        self.index_scope(&policy, targets.iter().copied(), false);
        self.store_scope(&policy, 0..policy.scope.buckets());
        self.store_policy_header(&policy);
        Ok(())
    }

    pub(super) fn update_policy_targets(&mut self, policy_id: &str, add: Vec<String>, remove: Vec<String>) -> Result<(), EngineError> {
        if !self.policies.contains_key(policy_id) {
            return Err(EngineError::UnknownPolicy(policy_id.to_owned()));
        }
        if add.iter().chain(&remove).any(|t| t.trim().is_empty()) {
            return Err(EngineError::InvalidInput("targets must not contain empty ids".to_owned()));
        }
        let mut policy = self.policies.remove(policy_id).expect("checked above");
        let account = self.accounts.get_mut(&policy.account_id).expect("a policy's account is in the engine");
        let mut touched = BTreeSet::new();
        let mut removed = Vec::new();
        for name in &remove {
            if let Some(id) = account.mirror.lookup(name).filter(|&id| policy.scope.remove(id, name)) {
                removed.push(id);
                touched.insert(policy.scope.bucket_of(name));
            }
        }
        let (mut added, mut lifted) = (Vec::new(), Vec::new());
        for name in &add {
            let id = account.mirror.intern_name(name);
            lifted.push(id);
            if policy.scope.insert(id, name) {
                added.push(id);
                touched.insert(policy.scope.bucket_of(name));
            }
        }
        self.nominate_targets(&policy, &removed, &format!("left the scope of policy {}", policy.name));
        self.index_scope(&policy, removed.iter().copied(), false);
        self.index_scope(&policy, added, true);
        self.lift_holds(&policy, &lifted);
        match policy.scope.rebalance() {
            None => self.store_scope(&policy, touched),
            Some(before) => {
                self.store_scope(&policy, 0..before.max(policy.scope.buckets()));
                self.store_policy_header(&policy);
            }
        }
        self.policies.insert(policy.policy_id.clone(), policy);
        Ok(())
    }

    /// Writes a policy's record (all but its targets) as it is when written: deleted once the policy is.
    pub(super) fn store_policy_header(&mut self, policy: &Policy) {
        self.effects.engine_change(EngineChange::Policy { policy_id: policy.policy_id.clone() });
    }

    /// Writes records `indexes` of a policy's targets, as they are when written (a scope change
    /// writes only the records of the targets it moved, not the policy; a record left empty, or
    /// of a policy gone or moved to another account, is deleted).
    pub(super) fn store_scope(&mut self, policy: &Policy, indexes: impl IntoIterator<Item = u32>) {
        for index in indexes {
            let (account_id, policy_id) = (policy.account_id.clone(), policy.policy_id.clone());
            self.effects.engine_change(EngineChange::Scope { account_id, policy_id, index });
        }
    }

    /// Targets entered (or left) a policy's scope: its account's target → policy index follows,
    /// and they are planned again.
    pub(super) fn index_scope(&mut self, policy: &Policy, targets: impl IntoIterator<Item = u32>, in_scope: bool) {
        let Some(account) = self.accounts.get_mut(&policy.account_id) else { return };
        let policy_id = account.mirror.intern_name(&policy.policy_id);
        if in_scope {
            let asset = account.mirror.intern_asset(&policy.adam_id, policy.pricing_param);
            account.licenses.policy_means(policy_id, asset);
        }
        for id in targets {
            account.licenses.scope_changed(target_of(policy, id), policy_id, in_scope);
        }
    }

    /// Every policy's targets into its account's target → policy index, after a restore (every
    /// account was restored: each pair set is built in one go).
    pub(super) fn index_restored_scopes(&mut self) {
        let mut scoped: BTreeMap<&str, Vec<(Target, u32)>> = BTreeMap::new();
        for policy in self.policies.values() {
            let Some(account) = self.accounts.get_mut(&policy.account_id) else { continue };
            let policy_id = account.mirror.intern_name(&policy.policy_id);
            let asset = account.mirror.intern_asset(&policy.adam_id, policy.pricing_param);
            account.licenses.policy_means(policy_id, asset);
            scoped.entry(&policy.account_id).or_default().extend(policy.scope.ids().map(|id| (target_of(policy, id), policy_id)));
        }
        for (account_id, pairs) in scoped {
            if let Some(account) = self.accounts.get_mut(account_id) {
                account.licenses.restore_scoped(pairs);
            }
        }
    }

    /// Targets left a policy's scope: reclaim what we assigned for it, unless still wanted.
    fn nominate_targets(&mut self, policy: &Policy, targets: &[u32], reason: &str) {
        let Some(account) = self.accounts.get_mut(&policy.account_id) else { return };
        let asset = account.mirror.intern_asset(&policy.adam_id, policy.pricing_param);
        for &id in targets {
            account.licenses.nominate(AssignmentKey { target: target_of(policy, id), asset }, reason);
        }
    }

    /// Targets (re-)entered a policy's scope: earlier holds no longer apply.
    fn lift_holds(&mut self, policy: &Policy, targets: &[u32]) {
        let Some(account) = self.accounts.get_mut(&policy.account_id) else { return };
        let asset = account.mirror.intern_asset(&policy.adam_id, policy.pricing_param);
        let mut fx = self.effects.account(&policy.account_id);
        for &id in targets {
            account.licenses.release_hold(&AssignmentKey { target: target_of(policy, id), asset }, &mut fx);
        }
    }

    // ===================================================================== facts

    pub(super) fn device_enrolled(&mut self, serial: String, enrollment: Enrollment) -> Result<(), EngineError> {
        let Enrollment { client_user_id, shared_ipad, enrollment_id, user_enrollment, platform } = enrollment;
        check_id("serialNumber", &serial)?;
        if let Some(user) = &client_user_id {
            check_id("clientUserId", user)?;
        }
        if let Some(id) = &enrollment_id {
            check_id("enrollmentId", id)?;
        }
        if let Some(platform) = &platform {
            check_id("platform", platform)?;
        }
        let known = self.facts.devices.get(&serial);
        // A replayed fact (same user, same kind of device, not retired, the same enrollment) changes nothing.
        let replayed = known.is_some_and(|old| {
            !old.retired
                && old.client_user_id == client_user_id
                && old.shared_ipad == shared_ipad
                && old.user_enrollment == user_enrollment
                && old.platform == platform
                && (enrollment_id.is_none() || old.enrollment_id == enrollment_id)
        });
        if replayed {
            return Ok(());
        }
        let reenrolled =
            known.is_none_or(|old| old.retired || enrollment_id.as_ref().is_some_and(|id| old.enrollment_id.as_ref() != Some(id)));
        // Device licenses it can't use any more (it became user-enrolled, or reports a platform the app
        // does not support) are released: they would hold licenses others can use.
        let eligibility_changed =
            known.map_or(user_enrollment || platform.is_some(), |old| old.user_enrollment != user_enrollment || old.platform != platform);
        // The apps it reported installed stay; they are moved, not copied, into the new facts.
        let (installed, previous_user, previous_enrollment) = match self.facts.devices.get_mut(&serial) {
            Some(old) => (std::mem::take(&mut old.installed), old.client_user_id.clone(), old.enrollment_id.clone()),
            None => Default::default(),
        };
        let enrollment_id = enrollment_id.or(previous_enrollment);
        let facts = DeviceFacts {
            client_user_id: client_user_id.clone(),
            shared_ipad,
            retired: false,
            installed,
            enrollment_id,
            user_enrollment,
            platform,
        };
        self.facts.set_device(&serial, facts);
        // The shared-iPad and one-license-per-user rules look at the device's users.
        let users: Vec<&str> = previous_user.iter().chain(&client_user_id).map(String::as_str).collect();
        let names: Vec<&str> = [serial.as_str()].into_iter().chain(users.iter().copied()).collect();
        for id in self.accounts.knowing(&names) {
            let Some(account) = self.accounts.get_mut(&id) else { continue };
            let device = account.mirror.lookup(&serial).map(Target::Device);
            if let Some(target) = device {
                account.licenses.release_holds_of(target, &mut self.effects.account(&id));
                account.licenses.replan(target);
                if let Some(device) = self.facts.devices.get(&serial).filter(|_| eligibility_changed) {
                    account.licenses.nominate_ineligible(target, device, &account.mirror);
                }
            }
            for user in users.iter().filter_map(|u| account.mirror.lookup(u)) {
                account.licenses.replan(Target::User(user));
            }
            // A re-enrolled device lost its apps (device-licensed apps are not restored from a backup).
            if let Some(target) = device.filter(|_| reenrolled) {
                license_ready(account, target, None, &mut self.effects);
            }
        }
        self.effects.device_changed(&serial);
        Ok(())
    }

    pub(super) fn device_retired(&mut self, serial: String) -> Result<(), EngineError> {
        check_id("serialNumber", &serial)?;
        let mut facts = self.facts.devices.get(&serial).cloned().unwrap_or_default();
        facts.retired = true;
        self.facts.set_device(&serial, facts);
        self.effects.device_changed(&serial);
        for id in self.accounts.knowing(&[&serial]) {
            let Some(account) = self.accounts.get_mut(&id) else { continue };
            if let Some(id) = account.mirror.lookup(&serial) {
                account.licenses.nominate_target(Target::Device(id), "the device was retired");
            }
        }
        Ok(())
    }

    pub(super) fn app_installed(&mut self, serial: &str, adam_id: &str) -> Result<(), EngineError> {
        self.record_installed(serial, adam_id, true)?;
        for id in self.accounts.knowing(&[serial]) {
            let Some(account) = self.accounts.get_mut(&id) else { continue };
            let Some(device) = account.mirror.lookup(serial) else { continue };
            let mut fx = self.effects.account(&id);
            for asset in account.mirror.assets_of_app(adam_id) {
                account.licenses.release_hold(&AssignmentKey { asset, target: Target::Device(device) }, &mut fx);
            }
        }
        Ok(())
    }

    /// The app left the device unwanted (removed by the user, install failed or cancelled):
    /// reclaim its license and don't assign it again until the situation changes.
    pub(super) fn hold_device_app(&mut self, serial: &str, adam_id: &str, reason: &str) -> Result<(), EngineError> {
        self.record_installed(serial, adam_id, false)?;
        // Only where the device is known: elsewhere no policy scopes it (a scope lifts holds anyway).
        for id in self.accounts.knowing(&[serial]) {
            let Some(account) = self.accounts.get_mut(&id) else { continue };
            let Some(device) = account.mirror.lookup(serial) else { continue };
            let mut fx = self.effects.account(&id);
            for asset in account.mirror.assets_of_app(adam_id) {
                account.licenses.hold(AssignmentKey { asset, target: Target::Device(device) }, reason, &mut fx);
            }
        }
        Ok(())
    }

    pub(super) fn record_installed(&mut self, serial: &str, adam_id: &str, installed: bool) -> Result<(), EngineError> {
        check_id("serialNumber", serial)?;
        check_id("adamId", adam_id)?;
        let mut facts = self.facts.devices.get(serial).cloned().unwrap_or_default();
        if installed {
            facts.installed.insert(adam_id.to_owned());
        } else {
            facts.installed.remove(adam_id);
        }
        self.facts.set_device(serial, facts);
        self.effects.device_changed(serial);
        Ok(())
    }

    /// `licenseReady` again for the device licenses this MDM gave the device (all apps, or one).
    pub(super) fn license_ready_again(&mut self, serial: &str, adam_id: Option<&str>) -> Result<(), EngineError> {
        check_id("serialNumber", serial)?;
        for id in self.accounts.knowing(&[serial]) {
            let Some(account) = self.accounts.get(&id) else { continue };
            let Some(id) = account.mirror.lookup(serial) else { continue };
            license_ready(account, Target::Device(id), adam_id, &mut self.effects);
        }
        Ok(())
    }

    pub(super) fn user_added(
        &mut self,
        client_user_id: String,
        email: Option<String>,
        managed_apple_id: Option<String>,
    ) -> Result<(), EngineError> {
        check_id("clientUserId", &client_user_id)?;
        self.facts.users.insert(client_user_id.clone(), UserFacts { email, managed_apple_id, removed: false });
        self.effects.user_changed(&client_user_id);
        for id in self.accounts.knowing(&[&client_user_id]) {
            let Some(account) = self.accounts.get_mut(&id) else { continue };
            let Some(user) = account.mirror.lookup(&client_user_id) else { continue };
            account.licenses.release_holds_of(Target::User(user), &mut self.effects.account(&id));
            account.licenses.replan(Target::User(user));
        }
        Ok(())
    }

    pub(super) fn user_removed(&mut self, client_user_id: String) -> Result<(), EngineError> {
        check_id("clientUserId", &client_user_id)?;
        let mut facts = self.facts.users.get(&client_user_id).cloned().unwrap_or_default();
        facts.removed = true;
        self.facts.users.insert(client_user_id.clone(), facts);
        self.effects.user_changed(&client_user_id);
        for id in self.accounts.knowing(&[&client_user_id]) {
            let Some(account) = self.accounts.get_mut(&id) else { continue };
            if let Some(id) = account.mirror.lookup(&client_user_id) {
                account.licenses.nominate_target(Target::User(id), "the user was removed");
            }
        }
        Ok(())
    }

    // ===================================================================== administrator commands

    pub(super) fn reclaim_license(
        &mut self,
        account_id: &str,
        adam_id: &str,
        pricing: PricingParam,
        serial_number: Option<String>,
        client_user_id: Option<String>,
    ) -> Result<(), EngineError> {
        let (account, mut fx) = self.account_effects(account_id)?;
        let target_name = match (&serial_number, &client_user_id) {
            (Some(serial), None) => serial,
            (None, Some(user)) => user,
            _ => return Err(EngineError::InvalidInput("give exactly one of serialNumber and clientUserId".to_owned())),
        };
        let not_ours = || EngineError::NotAllowed {
            account_id: account_id.to_owned(),
            reason: format!(
                "no license of app {adam_id} for {target_name} was assigned by this MDM (Clean Up handles other MDMs' licenses)"
            ),
        };
        let (Some(adam), Some(target)) = (account.mirror.lookup(adam_id), account.mirror.lookup(target_name)) else {
            return Err(not_ours());
        };
        let target = if serial_number.is_some() { Target::Device(target) } else { Target::User(target) };
        let key = AssignmentKey { asset: AssetKey { adam_id: adam, pricing }, target };
        if !account.licenses.ours().contains(&key) {
            return Err(not_ours());
        }
        account.licenses.hold(key, "reclaimed by an administrator", &mut fx);
        Ok(())
    }

    /// Reclaims (and holds) every license of ours in the account that `matches`.
    pub(super) fn reclaim_where(&mut self, account_id: &str, matches: impl Fn(&Mirror, &AssignmentKey) -> bool) -> Result<(), EngineError> {
        let (account, mut fx) = self.account_effects(account_id)?;
        let keys: Vec<AssignmentKey> = account.licenses.ours().iter().filter(|k| matches(&account.mirror, k)).collect();
        for key in keys {
            account.licenses.hold(key, "reclaimed by an administrator", &mut fx);
        }
        Ok(())
    }

    /// The license removal notification toggle (`notifyUser` events on releases).
    pub(super) fn set_license_removal_notification(&mut self, enabled: bool) {
        self.notify_users = enabled;
        self.effects.engine_change(EngineChange::Settings { license_removal_notification: enabled });
    }

    /// Every account: release what this MDM assigned that is no longer used.
    pub(super) fn reconcile(&mut self, now: Millis) {
        for account in self.accounts.iter_mut_all() {
            account.licenses.request_reconcile();
        }
        self.next_reconcile_at = now + self.config.reconcile_interval_ms;
    }
}
