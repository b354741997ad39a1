//! The desired state: which (asset, target) pairs the account's policies want licensed, filtered
//! by the rules (a device's eligibility — user enrollment, books, platforms: see
//! [`super::eligibility`] — `deviceAssignable`, shared iPads, a device whose user holds a user
//! license from us) and by the holds (install failed, removed by the user, reclaimed by an
//! administrator, refused by Apple). Owns the target → policy index, so that planning one target
//! asks only the policies that scope it, and the holds (durable: `hold/`, `userhold/` records).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::base::sorted::extend_in_bulk;
use crate::effects::AccountEffects;
use crate::facts::{DeviceFacts, Facts};
use crate::licenses::eligibility::device_refusal;
use crate::licenses::provenance::Provenance;
use crate::mirror::Mirror;
use crate::policy::Policy;
use crate::vocab::{AssetKey, AssignmentKey, LicenseType, Target};

/// What the rules need to know about one target, looked up once per target.
enum TargetFacts<'f> {
    Device { device: Option<&'f DeviceFacts>, user: Option<Target> },
    User { removed: bool, only_on_shared_ipads: bool },
}

impl<'f> TargetFacts<'f> {
    fn of(target: Target, facts: &'f Facts, mirror: &Mirror) -> Self {
        match target {
            Target::Device(id) => {
                let device = facts.devices.get(mirror.name(id));
                TargetFacts::Device {
                    device,
                    user: device.and_then(|d| d.client_user_id.as_deref()).and_then(|u| mirror.lookup(u)).map(Target::User),
                }
            }
            Target::User(id) => {
                let name = mirror.name(id);
                TargetFacts::User { removed: facts.user_removed(name), only_on_shared_ipads: facts.user_only_on_shared_ipads(name) }
            }
        }
    }
}

/// Why a pair must not be licensed.
enum Refusal<'s> {
    /// The MDM's rules or a hold: planning waits silently (what caused it was reported when it happened).
    Rule(&'s str),
    /// The device can't use the license at all: the host is told ([`super::eligibility::Told`]).
    Ineligible(Cow<'static, str>),
}

impl Refusal<'_> {
    fn text(&self) -> &str {
        match self {
            Refusal::Rule(reason) => reason,
            Refusal::Ineligible(reason) => reason,
        }
    }
}

/// Whether one policy wants one target licensed, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Want(AssignmentKey),
    Skip(String),
}

/// The scope index and the holds of one account.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// (target, policy) for every target in the scope of a policy of the account (policy ids
    /// interned in the mirror): the policies to ask when one target is planned.
    /// Shared by a copy (a preview's) until either changes.
    scoped: Arc<BTreeSet<(Target, u32)>>,
    /// The asset each policy of `scoped` means (interned when its targets were indexed), so
    /// planning one target needs no lookup of the policy.
    policy_assets: BTreeMap<u32, AssetKey>,
    /// Pairs not to assign, with why.
    holds: BTreeMap<AssignmentKey, String>,
    /// Users Apple refused to create, with why (until the MDM adds the user again).
    user_holds: BTreeMap<u32, String>,
}

impl Desired {
    /// The decision of one policy for one target (for explanations).
    pub fn decide(&self, policy: &Policy, target: &str, facts: &Facts, mirror: &mut Mirror, ours: &Provenance) -> Decision {
        let asset = mirror.intern_asset(&policy.adam_id, policy.pricing_param);
        let target = match policy.license_type {
            LicenseType::Device => mirror.intern_device(target),
            LicenseType::User => mirror.intern_user(target),
        };
        let key = AssignmentKey { target, asset };
        match self.refusal(key, &TargetFacts::of(target, facts, mirror), mirror, ours) {
            None => Decision::Want(key),
            Some(refusal) => Decision::Skip(refusal.text().to_owned()),
        }
    }

    /// Why `key` must not be licensed, if it must not (the rules, then the holds).
    fn refusal<'s>(&'s self, key: AssignmentKey, who: &TargetFacts, mirror: &Mirror, ours: &Provenance) -> Option<Refusal<'s>> {
        let Some(counts) = mirror.asset(&key.asset) else {
            return Some(Refusal::Rule("the account holds no licenses of this app"));
        };
        match *who {
            TargetFacts::Device { device, user } => {
                if device.is_some_and(|d| d.retired) {
                    return Some(Refusal::Rule("the device is retired"));
                }
                if let Some(reason) = device_refusal(device, counts) {
                    return Some(Refusal::Ineligible(reason));
                }
                if !counts.device_assignable {
                    return Some(Refusal::Rule("Apple does not allow device licenses for this app"));
                }
                if user.is_some_and(|user| ours.contains(&AssignmentKey { target: user, asset: key.asset })) {
                    return Some(Refusal::Rule("the device's user already has a user license for this app from this MDM"));
                }
            }
            TargetFacts::User { removed, only_on_shared_ipads } => {
                if removed {
                    return Some(Refusal::Rule("the user was removed"));
                }
                if only_on_shared_ipads {
                    return Some(Refusal::Rule("shared iPads get device licenses only"));
                }
                if let Some(reason) = self.user_holds.get(&key.target.id()) {
                    return Some(Refusal::Rule(reason));
                }
            }
        }
        self.holds.get(&key).map(|reason| Refusal::Rule(reason))
    }

    /// The pairs the policies want, and those refused because the device can't use the license
    /// (with why): all of them, or those of the `only` targets. Walks the target → policy index,
    /// so each target's facts are looked up once.
    pub fn wanted(
        &self,
        facts: &Facts,
        mirror: &Mirror,
        only: Option<&BTreeSet<Target>>,
        ours: &Provenance,
    ) -> (BTreeSet<AssignmentKey>, Vec<(AssignmentKey, Cow<'static, str>)>) {
        let scoped: Box<dyn Iterator<Item = &(Target, u32)>> = match only {
            None => Box::new(self.scoped.iter()),
            Some(only) => Box::new(only.iter().flat_map(|&t| self.scoped.range((t, 0)..=(t, u32::MAX)))),
        };
        let mut who: Option<(Target, TargetFacts)> = None;
        let mut wanted = Vec::new();
        let mut ineligible = Vec::new();
        for &(target, policy) in scoped {
            let asset = self.policy_assets[&policy];
            let facts = match &who {
                Some((of, facts)) if *of == target => facts,
                _ => &who.insert((target, TargetFacts::of(target, facts, mirror))).1,
            };
            let key = AssignmentKey { target, asset };
            match self.refusal(key, facts, mirror, ours) {
                None => wanted.push(key),
                Some(Refusal::Ineligible(reason)) => ineligible.push((key, reason)),
                Some(Refusal::Rule(_)) => {}
            }
        }
        // Sorted once: a sorted sequence builds the set in bulk.
        wanted.sort_unstable();
        (wanted.into_iter().collect(), ineligible)
    }

    /// The first policy (interned id, in id order) that wants `key` licensed, if one does: `key`'s
    /// target is in its scope, it gives `key`'s asset, and the rules and holds allow it.
    pub fn wanting_policy(&self, key: &AssignmentKey, facts: &Facts, mirror: &Mirror, ours: &Provenance) -> Option<u32> {
        let mut policies = self.scoped.range((key.target, 0)..=(key.target, u32::MAX)).map(|&(_, policy)| policy);
        let policy = policies.find(|policy| self.policy_assets.get(policy) == Some(&key.asset))?;
        let who = TargetFacts::of(key.target, facts, mirror);
        self.refusal(*key, &who, mirror, ours).is_none().then_some(policy)
    }

    /// The policy `policy_id` (interned) gives licenses of `asset`.
    pub fn policy_means(&mut self, policy_id: u32, asset: AssetKey) {
        self.policy_assets.insert(policy_id, asset);
    }

    /// `target` entered (or left) the scope of the policy `policy_id` (interned).
    pub fn scope_changed(&mut self, target: Target, policy_id: u32, in_scope: bool) {
        if in_scope != self.scoped.contains(&(target, policy_id)) {
            let scoped = Arc::make_mut(&mut self.scoped);
            if in_scope {
                scoped.insert((target, policy_id));
            } else {
                scoped.remove(&(target, policy_id));
            }
        }
    }

    /// Targets in the scopes of policies read back from the store (`(target, policy id)`).
    pub fn restore_scoped(&mut self, scoped: Vec<(Target, u32)>) {
        extend_in_bulk(Arc::make_mut(&mut self.scoped), scoped);
    }

    /// Every target in a policy's scope, in order, each once.
    pub fn scoped_targets(&self) -> Vec<Target> {
        let mut targets: Vec<Target> = self.scoped.iter().map(|&(target, _)| target).collect();
        targets.dedup();
        targets
    }

    /// Don't assign `key` until the hold is lifted.
    pub fn hold(&mut self, key: AssignmentKey, reason: String, fx: &mut AccountEffects<'_>) {
        fx.changes().holds.insert(key, Some(reason.clone()));
        self.holds.insert(key, reason);
    }

    /// Lifts the hold on `key`; whether there was one.
    pub fn lift_hold(&mut self, key: &AssignmentKey, fx: &mut AccountEffects<'_>) -> bool {
        let held = self.holds.remove(key).is_some();
        if held {
            fx.changes().holds.insert(*key, None);
        }
        held
    }

    /// The pairs of `target` on hold.
    pub fn holds_of(&self, target: Target) -> Vec<AssignmentKey> {
        self.holds.range(AssignmentKey::range_of(target)).map(|(k, _)| *k).collect()
    }

    /// A hold read back from the store.
    pub fn restore_hold(&mut self, key: AssignmentKey, reason: String) {
        self.holds.insert(key, reason);
    }

    /// Apple refused to create user `id` (interned): no user license for it until the MDM adds it again.
    pub fn hold_user(&mut self, id: u32, reason: String, fx: &mut AccountEffects<'_>) {
        fx.changes().user_holds.insert(id, Some(reason.clone()));
        self.user_holds.insert(id, reason);
    }

    /// Lifts the hold on user `id`; whether there was one.
    pub fn lift_user_hold(&mut self, id: u32, fx: &mut AccountEffects<'_>) -> bool {
        let held = self.user_holds.remove(&id).is_some();
        if held {
            fx.changes().user_holds.insert(id, None);
        }
        held
    }

    /// A user hold read back from the store.
    pub fn restore_user_hold(&mut self, id: u32, reason: String) {
        self.user_holds.insert(id, reason);
    }
}
