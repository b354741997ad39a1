//! License decisions for one account: which (asset, target) pairs should hold a license, what
//! to ask Apple for, and what Apple's answers mean.
//!
//! The **desired state** comes from the account's app policies and the device and user facts,
//! filtered by the rules (books are user-only, `deviceAssignable`, shared iPads, a device whose
//! user already holds a user license from us, held-back pairs). **Planning** compares it with
//! what Apple holds and what is already in flight, checks the pool, and emits operations batched
//! to the service-config limits. Only pairs this instance assigned (*ours*, the provenance) are
//! ever released, except by Clean Up, which releases what other MDMs assigned and we don't want.

pub mod batch;
pub mod coalesce;
pub mod in_flight;
pub mod operations;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::apple::errors::{INSUFFICIENT_LICENSES, INTERNAL_ERROR, MAINTENANCE, USER_ALREADY_EXISTS, USER_NOT_FOUND};
use crate::apple::limits::{POLL_INTERVAL, RESUBMIT_AFTER};
use crate::apple::Limits;
use crate::apple::notification::{AssetManagement, ManagementResult, ManagementType, UserManagement};
use crate::apple::wire::{EventStatus, NewUser, StatusResponse};
use crate::apple::wire;
use crate::base::time::Millis;
use crate::contract::event::Event;
use crate::facts::Facts;
use crate::licenses::batch::{manage_batches, revoke_batches};
use crate::licenses::coalesce::{CoalescePolicy, Coalescer};
use crate::licenses::in_flight::InFlight;
use crate::licenses::operations::{Operation, OperationState, Operations};
use crate::mirror::{Mirror, UserRecord};
use crate::policy::AppPolicy;
use crate::vocab::{AssetKey, AssignmentKey, LicenseType, OperationKind, PricingParam, ProductType, Target};

/// The asset slot of a user-creation task (user tasks have no asset).
const NO_ASSET: AssetKey = AssetKey { adam_id: u32::MAX, pricing: PricingParam::Stdq };

/// How many finished event ids are remembered.
const FINISHED_EVENTS_KEPT: usize = 4_096;

/// Apple refused associations of an asset for lack of licenses (9709).
#[derive(Debug, Clone)]
struct PoolRefusal {
    /// Apple's message, for `explain`.
    message: String,
    /// The available count the mirror showed when Apple refused.
    available_then: i64,
    /// The refusal contradicted the counts: the count refresh it asked for retries once, even if
    /// the counts are the same.
    retry_on_refresh: bool,
}

/// Whose release a confirmed release is, for provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// Ours: the pair leaves provenance.
    Ours,
    /// Someone else's, at an unknown time (perhaps older than a newer association of ours):
    /// provenance stays until a full refresh shows the pair gone.
    Elsewhere,
}

/// What planning and outcome handling borrow from the engine.
pub struct LicenseCtx<'a> {
    pub account_id: &'a str,
    pub now: Millis,
    pub limits: &'a Limits,
    pub low_license_threshold: i64,
    pub notify_users: bool,
    pub invitation_url: &'a str,
    pub events: &'a mut Vec<Event>,
}

/// What the rules need to know about one target, looked up once per target.
enum TargetFacts {
    Device { retired: bool, user: Option<Target> },
    User { removed: bool, only_on_shared_ipads: bool },
}

impl TargetFacts {
    fn of(target: Target, facts: &Facts, mirror: &Mirror) -> Self {
        match target {
            Target::Device(id) => {
                let device = facts.devices.get(mirror.name(id));
                TargetFacts::Device {
                    retired: device.is_some_and(|d| d.retired),
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

/// Whether one policy wants one target licensed, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Want(AssignmentKey),
    Skip(String),
}

/// The assignments this instance made (its durable provenance); a device's or user's pairs are
/// one range.
#[derive(Debug, Default)]
pub struct Provenance {
    keys: BTreeSet<AssignmentKey>,
}

impl Provenance {
    pub fn contains(&self, key: &AssignmentKey) -> bool {
        self.keys.contains(key)
    }

    pub fn insert(&mut self, key: AssignmentKey) -> bool {
        self.keys.insert(key)
    }

    pub fn remove(&mut self, key: &AssignmentKey) -> bool {
        self.keys.remove(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = AssignmentKey> + '_ {
        self.keys.iter().copied()
    }

    /// The pairs of this instance not in `keys` (one merge walk of the two ordered sets).
    pub fn not_in<'a>(&'a self, keys: &'a BTreeSet<AssignmentKey>) -> impl Iterator<Item = &'a AssignmentKey> {
        self.keys.difference(keys)
    }

    /// The pairs one device or user holds from this instance.
    pub fn of_target(&self, target: Target) -> impl Iterator<Item = AssignmentKey> + '_ {
        self.keys.range(AssignmentKey::range_of(target)).copied()
    }
}

#[derive(Debug, Default)]
pub struct Licenses {
    /// Assignments this instance made (durable provenance).
    pub ours: Provenance,
    ops: Operations,
    next_op_id: u64,
    /// Associations that may be spending licenses: pairs being associated, and awaited pairs
    /// (adopted as ours if they appear before a trustworthy full refresh).
    pub in_flight: InFlight,
    /// Pairs being released, with the reason.
    pending_release: BTreeMap<AssignmentKey, String>,
    pending_users: BTreeSet<u32>,
    /// Pairs not to assign (install failed, removed by the user, reclaimed by an admin, Apple refused).
    holds: BTreeMap<AssignmentKey, String>,
    /// (target, policy) for every target in the scope of a policy of the account (policy ids
    /// interned in the mirror): the policies to ask when one target is planned.
    scoped: BTreeSet<(Target, u32)>,
    /// The asset each policy of `scoped` means (interned when its targets were indexed), so
    /// planning one target needs no lookup of the policy.
    policy_assets: BTreeMap<u32, AssetKey>,
    /// Event ids of operations finished lately (and their order), whose late notifications are old news.
    finished_events: BTreeSet<String>,
    finished_order: VecDeque<String>,
    /// Users Apple refused to create, with why (until the MDM adds the user again).
    user_holds: BTreeMap<u32, String>,
    /// Release candidates (ours), with what triggered them; released unless still wanted.
    nominated: BTreeMap<AssignmentKey, String>,
    reconcile: bool,
    clean_up: bool,
    /// Assets Apple said are out of licenses (9709): not asked for again until the counts change
    /// (or, once, until the count refresh a refusal that contradicted the counts asked for).
    exhausted: BTreeMap<AssetKey, PoolRefusal>,
    /// Assets retried once already after a refusal that contradicted their counts, with the
    /// available count of that time: a second refusal at the same count waits for the counts to change.
    retried_at: BTreeMap<AssetKey, i64>,
    /// Pool refusals of the outcome being applied, per asset: reported as `insufficientLicenses`.
    refused_now: BTreeMap<AssetKey, usize>,
    /// The shortfall last reported per asset (reported again when it changes, or after the counts
    /// were read again).
    reported_short: BTreeMap<AssetKey, i64>,
    /// Assets the last plan found short (for `explain`; kept while the counts are read again).
    short: BTreeSet<AssetKey>,
    reported_low: BTreeSet<AssetKey>,
    invited: BTreeSet<u32>,
    /// Something changed that may change the whole plan (policies, counts, Reconcile, Clean Up).
    pub needs_plan: bool,
    /// Targets whose pairs must be planned again (a fact, hold or outcome about them changed):
    /// planned alone, without recomputing the desired state of the whole account.
    dirty_targets: BTreeSet<Target>,
    /// The window in which waiting license work collects before it is planned.
    coalescer: Coalescer,
    /// Users were created: a users delta sync should fetch their invitation codes.
    pub users_changed: bool,
    /// Provenance changes not yet persisted: key → now ours?
    pub dirty_ours: BTreeMap<AssignmentKey, bool>,
    /// Operations whose record must be written (or deleted, when gone).
    pub dirty_ops: BTreeSet<u64>,
    /// Hold changes not yet persisted: key → its reason, or `None` when lifted.
    pub dirty_holds: BTreeMap<AssignmentKey, Option<String>>,
    /// User hold changes not yet persisted, likewise.
    pub dirty_user_holds: BTreeMap<u32, Option<String>>,
}

impl Licenses {
    // ================================================================ desired state

    /// The decision of one policy for one target (for explanations).
    pub fn decide(&self, policy: &AppPolicy, target: &str, facts: &Facts, mirror: &mut Mirror) -> Decision {
        let asset = mirror.intern_asset(&policy.adam_id, policy.pricing_param);
        let target = match policy.license_type {
            LicenseType::Device => mirror.intern_device(target),
            LicenseType::User => mirror.intern_user(target),
        };
        let key = AssignmentKey { target, asset };
        match self.refusal(key, &TargetFacts::of(target, facts, mirror), mirror) {
            None => Decision::Want(key),
            Some(reason) => Decision::Skip(reason.to_owned()),
        }
    }

    /// Why `key` must not be licensed, if it must not (the rules, then the holds).
    fn refusal<'s>(&'s self, key: AssignmentKey, who: &TargetFacts, mirror: &Mirror) -> Option<&'s str> {
        let Some(counts) = mirror.asset(&key.asset) else {
            return Some("the account holds no licenses of this app");
        };
        match *who {
            TargetFacts::Device { retired, user } => {
                if retired {
                    return Some("the device is retired");
                }
                if counts.product_type == ProductType::Book {
                    return Some("books can only be licensed to users");
                }
                if !counts.device_assignable {
                    return Some("Apple does not allow device licenses for this app");
                }
                if user.is_some_and(|user| self.ours.contains(&AssignmentKey { target: user, asset: key.asset })) {
                    return Some("the device's user already has a user license for this app from this MDM");
                }
            }
            TargetFacts::User { removed, only_on_shared_ipads } => {
                if removed {
                    return Some("the user was removed");
                }
                if only_on_shared_ipads {
                    return Some("shared iPads get device licenses only");
                }
                if let Some(reason) = self.user_holds.get(&key.target.id()) {
                    return Some(reason);
                }
            }
        }
        self.holds.get(&key).map(String::as_str)
    }

    /// The pairs the policies want: all of them, or those of the `only` targets. Walks the
    /// target → policy index, so each target's facts are looked up once.
    fn desired(&self, facts: &Facts, mirror: &Mirror, only: Option<&BTreeSet<Target>>) -> BTreeSet<AssignmentKey> {
        let scoped: Box<dyn Iterator<Item = &(Target, u32)>> = match only {
            None => Box::new(self.scoped.iter()),
            Some(only) => Box::new(only.iter().flat_map(|&t| self.scoped.range((t, 0)..=(t, u32::MAX)))),
        };
        let mut who: Option<(Target, TargetFacts)> = None;
        let mut wanted = Vec::new();
        for &(target, policy) in scoped {
            let asset = self.policy_assets[&policy];
            let facts = match &who {
                Some((of, facts)) if *of == target => facts,
                _ => &who.insert((target, TargetFacts::of(target, facts, mirror))).1,
            };
            let key = AssignmentKey { target, asset };
            if self.refusal(key, facts, mirror).is_none() {
                wanted.push(key);
            }
        }
        // Sorted once: a sorted sequence builds the set in bulk.
        wanted.sort_unstable();
        wanted.into_iter().collect()
    }

    /// The policy `policy_id` (interned) gives licenses of `asset`. Call before its targets
    /// enter its scope ([`Licenses::scope_changed`]).
    pub fn policy_means(&mut self, policy_id: u32, asset: AssetKey) {
        self.policy_assets.insert(policy_id, asset);
    }

    /// `target` entered (or left) the scope of the policy `policy_id` (interned): it is planned
    /// again. Call for every target a policy input adds or removes, and at restore.
    pub fn scope_changed(&mut self, target: Target, policy_id: u32, in_scope: bool) {
        if in_scope {
            self.scoped.insert((target, policy_id));
        } else {
            self.scoped.remove(&(target, policy_id));
        }
        self.dirty_targets.insert(target);
    }

    // ================================================================ triggers

    /// Releases `key` (if it is ours and no policy still wants it) at the next plan.
    pub fn nominate(&mut self, key: AssignmentKey, reason: &str) {
        if self.ours.contains(&key) {
            self.nominated.insert(key, reason.to_owned());
            self.dirty_targets.insert(key.target);
        }
    }

    /// Nominates every pair of ours that `target` holds.
    pub fn nominate_target(&mut self, target: Target, reason: &str) {
        let keys: Vec<AssignmentKey> = self.ours.of_target(target).collect();
        for key in keys {
            self.nominate(key, reason);
        }
    }

    /// Don't assign `key` until [`Licenses::release_hold`]; release it if it is ours.
    pub fn hold(&mut self, key: AssignmentKey, reason: &str) {
        self.set_hold(key, reason.to_owned());
        self.nominate(key, reason);
        self.dirty_targets.insert(key.target);
    }

    fn set_hold(&mut self, key: AssignmentKey, reason: String) {
        self.dirty_holds.insert(key, Some(reason.clone()));
        self.holds.insert(key, reason);
    }

    /// A hold read back from the store.
    pub fn restore_hold(&mut self, key: AssignmentKey, reason: String) {
        self.holds.insert(key, reason);
    }

    pub fn release_hold(&mut self, key: &AssignmentKey) {
        if self.holds.remove(key).is_some() {
            self.dirty_holds.insert(*key, None);
            self.dirty_targets.insert(key.target);
        }
    }

    /// Lifts every hold on `target` (re-enrollment, new scope, a user added again).
    pub fn release_holds_of(&mut self, target: Target) {
        let lifted: Vec<AssignmentKey> = self.holds.range(AssignmentKey::range_of(target)).map(|(k, _)| *k).collect();
        for key in lifted {
            self.release_hold(&key);
        }
        if let Target::User(id) = target {
            if self.user_holds.remove(&id).is_some() {
                self.dirty_user_holds.insert(id, None);
                self.dirty_targets.insert(target);
            }
        }
    }

    /// A user hold read back from the store.
    pub fn restore_user_hold(&mut self, id: u32, reason: String) {
        self.user_holds.insert(id, reason);
    }

    pub fn request_reconcile(&mut self) {
        self.reconcile = true;
        self.needs_plan = true;
    }

    pub fn request_clean_up(&mut self) {
        self.clean_up = true;
        self.needs_plan = true;
    }

    /// A full refresh read every count: every asset Apple refused is tried again (at most daily,
    /// when Apple's counts stay the same and it refused twice).
    pub fn forget_pool_refusals(&mut self) {
        self.exhausted.clear();
        self.retried_at.clear();
    }

    /// Counts were read or changed (sync, `ASSET_COUNT`): shortages may be over, warnings may
    /// apply again. An asset Apple refused is tried again if its available count moved, or once
    /// if the refusal contradicted the counts; otherwise it waits for the next change.
    pub fn counts_changed(&mut self, mirror: &Mirror) {
        let retried = &mut self.retried_at;
        self.exhausted.retain(|asset, refusal| {
            let available = mirror.asset(asset).map(|c| c.available_count);
            if available != Some(refusal.available_then) {
                retried.remove(asset);
                false
            } else if refusal.retry_on_refresh {
                retried.insert(*asset, refusal.available_then);
                false
            } else {
                true
            }
        });
        self.reported_short.clear();
        self.reported_low.clear();
        self.needs_plan = true;
    }

    // ================================================================ planning

    /// Whether something changed that planning must look at.
    pub fn wants_plan(&self) -> bool {
        self.needs_plan || !self.dirty_targets.is_empty()
    }

    /// Plans `target`'s pairs again (a fact about it changed).
    pub fn replan(&mut self, target: Target) {
        self.dirty_targets.insert(target);
    }

    /// Feeds the coalescing window while [`Licenses::wants_plan`]: call on every pass of the
    /// engine's scheduling, right after the inputs that changed something.
    pub fn note_waiting_work(&mut self, now: Millis) {
        let work = self.dirty_targets.len() + self.nominated.len() + usize::from(self.needs_plan);
        self.coalescer.note_waiting(now, work);
    }

    /// When the waiting work's coalescing window closes, if one is open.
    pub fn coalescing_closes_at(&self, policy: &CoalescePolicy) -> Option<Millis> {
        self.coalescer.closes_at(policy)
    }

    /// Whether planned requests wait to be sent.
    pub fn has_queued(&self) -> bool {
        self.ops.first_queued().is_some()
    }

    /// Whether license requests wait: planned ones, or work collecting in a window.
    pub fn sends_waiting(&self) -> bool {
        self.has_queued() || self.wants_plan()
    }

    /// Compares the desired state with Apple's and queues the operations that close the gap:
    /// for the whole account when [`Licenses::needs_plan`], else for the targets that changed.
    pub fn plan(&mut self, facts: &Facts, mirror: &mut Mirror, ctx: &mut LicenseCtx<'_>) {
        self.coalescer.close();
        let dirty = std::mem::take(&mut self.dirty_targets);
        let only = if std::mem::take(&mut self.needs_plan) { None } else { Some(dirty) };
        let want = self.desired(facts, mirror, only.as_ref());
        let registered = self.plan_users(&want, facts, mirror, ctx);
        self.plan_associations(&want, &registered, only.is_none(), mirror, ctx);
        self.plan_releases(&want, only.as_ref(), mirror, ctx);
        if self.wants_plan() {
            self.note_waiting_work(ctx.now); // what this plan left for the next (a whole-account plan, say) waits from now
        }
    }

    /// Queues user creation for wanted users Apple doesn't know; invites registered users
    /// without a Managed Apple ID. Returns the users that may be assigned now.
    fn plan_users(
        &mut self,
        want: &BTreeSet<AssignmentKey>,
        facts: &Facts,
        mirror: &Mirror,
        ctx: &mut LicenseCtx<'_>,
    ) -> BTreeSet<u32> {
        // Keys order devices before users: the users are the tail of the set.
        let first_user = *AssignmentKey::range_of(Target::User(0)).start();
        // Ordered sets and maps are filled by `extend`: `collect` (their `FromIterator`) links one stable-sort
        // copy per element type into the wasm (issue 7's size target); only 1M-key sets keep it.
        let mut users = BTreeSet::new();
        users.extend(want.range(first_user..).map(|k| k.target.id()));
        let mut registered = BTreeSet::new();
        let mut to_create = Vec::new();
        for id in users {
            let name = mirror.name(id);
            let fact = facts.users.get(name);
            match mirror.user(id).and_then(|u| u.status.as_deref()) {
                Some("Registered" | "Associated") => {
                    registered.insert(id);
                    let record = mirror.user(id).expect("just read");
                    let invite = record.invite_code.as_deref().filter(|_| record.status.as_deref() == Some("Registered"));
                    let managed = fact.is_some_and(|f| f.managed_apple_id.is_some());
                    if let Some(code) = invite.filter(|_| !managed && !self.invited.contains(&id)) {
                        self.invited.insert(id);
                        ctx.events.push(Event::InviteUser {
                            account_id: ctx.account_id.to_owned(),
                            client_user_id: name.to_owned(),
                            email: record.email.clone().or_else(|| fact.and_then(|f| f.email.clone())),
                            invite_url: ctx.invitation_url.replace("%25inviteCode%25", code).replace("%inviteCode%", code),
                        });
                    }
                }
                _ if !self.pending_users.contains(&id) => to_create.push(NewUser {
                    client_user_id: name.to_owned(),
                    email: fact.and_then(|f| f.email.clone()),
                    managed_apple_id: fact.and_then(|f| f.managed_apple_id.clone()),
                }),
                _ => {}
            }
        }
        for chunk in to_create.chunks(ctx.limits.max_users.max(1) as usize) {
            let targets: Vec<Target> = chunk.iter().filter_map(|u| mirror.lookup(&u.client_user_id).map(Target::User)).collect();
            self.pending_users.extend(targets.iter().filter_map(|t| match t {
                Target::User(id) => Some(*id),
                Target::Device(_) => None,
            }));
            let mut op = self.new_op(OperationKind::CreateUsers, Vec::new(), targets, "users in scope of a user-license policy".to_owned());
            op.new_users = chunk.to_vec();
            self.queue(op);
        }
        registered
    }

    /// Queues associations for wanted pairs Apple doesn't hold, within the pool. `whole`: `want`
    /// is the whole account's (shortfalls are reported only then).
    fn plan_associations(
        &mut self,
        want: &BTreeSet<AssignmentKey>,
        registered_users: &BTreeSet<u32>,
        whole: bool,
        mirror: &Mirror,
        ctx: &mut LicenseCtx<'_>,
    ) {
        // A target being revoked gets nothing until the revoke is done (it would take it away), nor a
        // pair a disassociate at Apple may still take away (one sent twice after a lost answer, say).
        let mut revoking = BTreeSet::new();
        revoking.extend(self.ops.revoking());
        let mut releasing = BTreeSet::new();
        for op in self.ops.values().filter(|op| op.kind == OperationKind::Disassociate) {
            releasing.extend(op.tasks().filter(|t| !op.is_resolved(t)).map(|(asset, target)| AssignmentKey { asset, target }));
        }
        // Per asset: the awaited pairs (their license is counted in flight already: Apple may
        // still complete the old event) and the others, which need a free license each.
        let mut missing: BTreeMap<AssetKey, (Vec<Target>, Vec<Target>)> = BTreeMap::new();
        for key in mirror.not_held(want).filter(|k| !self.in_flight.is_associating(k) && !revoking.contains(&k.target) && !releasing.contains(k)) {
            let ready = match key.target {
                Target::User(id) => registered_users.contains(&id),
                Target::Device(_) => true,
            };
            if ready {
                let (awaited, fresh) = missing.entry(key.asset).or_default();
                if self.in_flight.is_awaited(key) { awaited } else { fresh }.push(key.target);
            }
        }
        let mut wanted_by_target: BTreeMap<Target, BTreeSet<AssetKey>> = BTreeMap::new();
        for (asset, (awaited, fresh)) in missing {
            let Some(counts) = mirror.asset(&asset) else { continue };
            let unlimited = counts.unlimited();
            let available = if self.exhausted.contains_key(&asset) {
                0
            } else if unlimited {
                i64::MAX
            } else {
                (counts.available_count - self.in_flight.count(&asset)).max(0)
            };
            let take = fresh.len().min(usize::try_from(available).unwrap_or(usize::MAX));
            if whole {
                self.report_shortfall(asset, fresh.len() - take, mirror, ctx);
            } else if take < fresh.len() {
                self.needs_plan = true; // short: the whole account's shortfall must be reported
            }
            let remaining = available - take as i64;
            if take > 0 && !unlimited && remaining <= ctx.low_license_threshold && self.reported_low.insert(asset) {
                ctx.events.push(Event::LowLicenses {
                    account_id: ctx.account_id.to_owned(),
                    adam_id: mirror.name(asset.adam_id).to_owned(),
                    pricing_param: asset.pricing,
                    available: remaining,
                    threshold: ctx.low_license_threshold,
                });
            }
            for target in awaited.iter().chain(&fresh[..take]) {
                wanted_by_target.entry(*target).or_default().insert(asset);
            }
        }
        for batch in manage_batches(&wanted_by_target, ctx.limits) {
            let op = self.new_op(OperationKind::Associate, batch.assets, batch.targets, "in scope of an app policy".to_owned());
            self.associating(&op);
            self.queue(op);
        }
    }

    fn report_shortfall(&mut self, asset: AssetKey, short_by: usize, mirror: &Mirror, ctx: &mut LicenseCtx<'_>) {
        if short_by == 0 {
            self.reported_short.remove(&asset);
            self.short.remove(&asset);
            return;
        }
        self.short.insert(asset);
        if self.reported_short.insert(asset, short_by as i64) != Some(short_by as i64) {
            ctx.events.push(Event::InsufficientLicenses {
                account_id: ctx.account_id.to_owned(),
                adam_id: mirror.name(asset.adam_id).to_owned(),
                pricing_param: asset.pricing,
                short_by,
            });
        }
    }

    /// Queues releases of nominated pairs (those of the `only` targets, when given) no policy
    /// wants, and of what Reconcile and Clean Up find.
    fn plan_releases(&mut self, want: &BTreeSet<AssignmentKey>, only: Option<&BTreeSet<Target>>, mirror: &Mirror, ctx: &mut LicenseCtx<'_>) {
        let mut release: BTreeMap<AssignmentKey, String> = BTreeMap::new();
        for (key, reason) in std::mem::take(&mut self.nominated) {
            if only.is_some_and(|only| !only.contains(&key.target)) {
                self.nominated.insert(key, reason); // its target's plan decides
                self.dirty_targets.insert(key.target);
            } else if self.ours.contains(&key) && !want.contains(&key) {
                release.insert(key, reason);
            }
        }
        if std::mem::take(&mut self.reconcile) {
            for key in self.ours.not_in(want) {
                release.entry(*key).or_insert_with(|| "no longer used (Reconcile)".to_owned());
            }
        }
        if std::mem::take(&mut self.clean_up) {
            let others: Vec<AssignmentKey> = mirror.assignments_iter().filter(|k| !self.ours.contains(k)).copied().collect();
            for key in others {
                if want.contains(&key) {
                    self.adopt(key);
                } else {
                    release.insert(key, "assigned by another MDM (Clean Up)".to_owned());
                }
            }
        }
        release.retain(|key, _| {
            mirror.has_assignment(key)
                && !self.pending_release.contains_key(key)
                && mirror.asset(&key.asset).is_some_and(|c| c.revocable && c.product_type == ProductType::App)
        });
        if release.is_empty() {
            return;
        }
        let mut by_target: BTreeMap<Target, BTreeSet<AssetKey>> = BTreeMap::new();
        for key in release.keys() {
            by_target.entry(key.target).or_default().insert(key.asset);
        }
        // Revoke releases everything revocable a target holds: only for targets whose every
        // revocable assignment is being released, and only where it takes fewer requests.
        let revocable_held = |t: Target| mirror.assignments_of(t).filter(|k| mirror.asset(&k.asset).is_some_and(|c| c.revocable)).count();
        // A revoke would also take what an association in flight is about to give.
        let mut whole = BTreeSet::new();
        whole.extend(
            by_target.iter().filter(|(t, assets)| revocable_held(**t) == assets.len() && !self.in_flight.is_receiving(**t)).map(|(t, _)| *t),
        );
        let all_disassociate = manage_batches(&by_target, ctx.limits);
        let mut partial = BTreeMap::new();
        partial.extend(by_target.iter().filter(|(t, _)| !whole.contains(t)).map(|(t, a)| (*t, a.clone())));
        let revokes = revoke_batches(&whole, ctx.limits);
        let disassociates = manage_batches(&partial, ctx.limits);
        let (revokes, disassociates) = if !whole.is_empty() && revokes.len() + disassociates.len() < all_disassociate.len() {
            (revokes, disassociates)
        } else {
            (Vec::new(), all_disassociate)
        };
        let reason_of = |targets: &[Target]| {
            targets.iter().find_map(|&t| release.range(AssignmentKey::range_of(t)).next()).map(|(_, r)| r.clone()).unwrap_or_default()
        };
        for batch in revokes {
            let op = self.new_op(OperationKind::Revoke, Vec::new(), batch.targets.clone(), reason_of(&batch.targets));
            for (key, reason) in release.iter().filter(|(k, _)| batch.targets.contains(&k.target)) {
                self.pending_release.insert(*key, reason.clone());
            }
            self.queue(op);
        }
        for batch in disassociates {
            let op = self.new_op(OperationKind::Disassociate, batch.assets, batch.targets.clone(), reason_of(&batch.targets));
            for (asset, target) in op.tasks() {
                let key = AssignmentKey { asset, target };
                if let Some(reason) = release.get(&key) {
                    self.pending_release.insert(key, reason.clone());
                }
            }
            self.queue(op);
        }
    }

    /// `op`'s pairs are being associated by it.
    fn associating(&mut self, op: &Operation) {
        for (asset, target) in op.tasks() {
            self.in_flight.associating(AssignmentKey { asset, target }, op.id);
        }
    }

    fn adopt(&mut self, key: AssignmentKey) {
        if self.ours.insert(key) {
            self.dirty_ours.insert(key, true);
        }
    }

    fn new_op(&mut self, kind: OperationKind, assets: Vec<AssetKey>, targets: Vec<Target>, reason: String) -> Operation {
        self.next_op_id += 1;
        Operation::new(self.next_op_id, kind, assets, targets, reason)
    }

    fn queue(&mut self, op: Operation) {
        self.dirty_ops.insert(op.id);
        self.ops.insert(op);
    }

    // ================================================================ sending

    /// An operation to submit now, marked as sent at `now`. An association's record is written
    /// again (with the time) before the request leaves: after a crash it may have reached Apple.
    pub fn next_submission(&mut self, now: Millis) -> Option<&Operation> {
        let id = self.ops.first_queued()?;
        let kind = self.ops.update(id, |op| {
            op.state = OperationState::Submitting { sent_at: now };
            op.kind
        })?;
        if kind == OperationKind::Associate {
            self.dirty_ops.insert(id);
        }
        self.ops.get(id)
    }

    /// An event to poll now, marked as being polled.
    pub fn next_poll(&mut self, now: Millis) -> Option<(u64, String)> {
        let id = self.ops.poll_due(now)?;
        self.ops.update(id, |op| match &mut op.state {
            OperationState::Pending { event_id, polling, .. } => {
                *polling = true;
                Some((id, event_id.clone()))
            }
            _ => None,
        })?
    }

    /// The clock was set back to `now` after a glitch: times recorded on the glitched clock become
    /// `now`, and deadlines come back within their intervals (a poll in 30 s, a settle in `settle`).
    pub fn clock_rewound(&mut self, now: Millis, settle: Millis) {
        self.coalescer.rewound(now);
        let ids: Vec<u64> = self.ops.values().map(|op| op.id).collect();
        for id in ids {
            let changed = self.ops.update(id, |op| {
                let before = op.state.clone();
                match &mut op.state {
                    OperationState::Queued => {}
                    OperationState::Submitting { sent_at } => *sent_at = (*sent_at).min(now),
                    OperationState::Pending { submitted_at, next_poll_at, .. } => {
                        *submitted_at = (*submitted_at).min(now);
                        *next_poll_at = (*next_poll_at).min(now + POLL_INTERVAL);
                    }
                    OperationState::Unconfirmed { sent_at, confirm_after } => {
                        *sent_at = (*sent_at).min(now);
                        *confirm_after = (*confirm_after).min(now + settle);
                    }
                }
                op.state != before
            });
            if changed == Some(true) {
                self.dirty_ops.insert(id);
            }
        }
    }

    /// The next time an event is due for polling.
    pub fn next_poll_at(&self) -> Option<Millis> {
        self.ops.next_poll_at()
    }

    /// The account stopped sending (ownership lost, token invalid): answers to requests in flight
    /// will be ignored. Each submission in flight goes the way of [`Licenses::unanswered`].
    pub fn requests_abandoned(&mut self, settle: Millis) {
        let submitting: Vec<u64> =
            self.ops.values().filter(|op| matches!(op.state, OperationState::Submitting { .. })).map(|op| op.id).collect();
        for op_id in submitting {
            self.unanswered(op_id, settle);
        }
        let polling: Vec<u64> =
            self.ops.values().filter(|op| matches!(op.state, OperationState::Pending { polling: true, .. })).map(|op| op.id).collect();
        for op_id in polling {
            self.ops.update(op_id, |op| {
                if let OperationState::Pending { polling, .. } = &mut op.state {
                    *polling = false;
                }
            });
        }
    }

    /// A submission got no usable answer (network error, unreadable acceptance, abandoned):
    /// Apple may have acted on it. An association becomes unconfirmed until a sync starting
    /// `settle` after it was sent; releases and user creation are sent again (Apple counts
    /// nothing twice for those).
    pub fn unanswered(&mut self, op_id: u64, settle: Millis) {
        self.ops.update(op_id, |op| {
            let OperationState::Submitting { sent_at } = op.state else { return };
            op.state = if op.kind == OperationKind::Associate {
                OperationState::Unconfirmed { sent_at, confirm_after: sent_at + settle }
            } else {
                OperationState::Queued
            };
        });
    }

    /// A submission or poll failed in a way worth retrying (Apple answered with an error):
    /// try again when the account may send.
    pub fn retry(&mut self, op_id: u64, was_poll: bool) {
        self.ops.update(op_id, |op| match &mut op.state {
            OperationState::Pending { polling, .. } if was_poll => *polling = false,
            OperationState::Submitting { .. } => op.state = OperationState::Queued,
            _ => {}
        });
    }

    /// Whether an operation was sent to Apple and is not finished.
    pub fn has_operations_at_apple(&self) -> bool {
        self.ops.any_sent()
    }

    /// The earliest time a sync must start to settle unconfirmed associations.
    pub fn next_confirmation(&self) -> Option<Millis> {
        self.ops.next_confirmation()
    }

    /// A sync that started at `sync_started_at` completed: awaited pairs it shows are ours (the
    /// rest are forgotten after a `complete` full refresh); an unconfirmed association it can
    /// settle succeeded for the pairs Apple now holds, and the other pairs are planned again.
    pub fn settle_unconfirmed(&mut self, sync_started_at: Millis, complete: bool, mirror: &mut Mirror, ctx: &mut LicenseCtx<'_>) {
        for key in self.in_flight.awaited_held(mirror) {
            self.confirmed_late(key, mirror, ctx);
        }
        if complete {
            self.in_flight.stop_awaiting_all();
        }
        let settled: Vec<Operation> = self
            .ops
            .values()
            .filter(|op| matches!(op.state, OperationState::Unconfirmed { confirm_after, .. } if confirm_after <= sync_started_at))
            .cloned()
            .collect();
        for op in settled {
            for (asset, target) in op.tasks() {
                let key = AssignmentKey { asset, target };
                if mirror.has_assignment(&key) {
                    self.succeed(&op, key, mirror, ctx);
                } else {
                    self.in_flight.await_pair(key); // Apple may still complete it
                }
            }
            self.finish(op.id);
        }
    }

    /// An awaited pair appeared (Apple completed the association after all): it is ours.
    fn confirmed_late(&mut self, key: AssignmentKey, mirror: &mut Mirror, ctx: &mut LicenseCtx<'_>) {
        if self.ours.contains(&key) {
            self.in_flight.stop_awaiting(&key);
        } else {
            self.now_ours(key, true, mirror, ctx);
        }
    }


    /// Apple confirmed an association of ours: it is ours, and (`announce`: unless it was reported
    /// ready already) ready for the install command.
    fn now_ours(&mut self, key: AssignmentKey, announce: bool, mirror: &Mirror, ctx: &mut LicenseCtx<'_>) {
        self.adopt(key);
        self.in_flight.stop_awaiting(&key);
        // The scope may have changed while Apple worked: the next plan releases the pair again
        // if nothing wants it any more.
        self.nominate(key, "no longer wanted when Apple confirmed the assignment");
        if !announce {
            return;
        }
        ctx.events.push(Event::LicenseReady { account_id: ctx.account_id.to_owned(), pair: mirror.pair(&key) });
    }

    /// Apple accepted a submission.
    pub fn submitted(&mut self, op_id: u64, event_id: String, now: Millis) {
        let pending = OperationState::Pending { event_id, submitted_at: now, next_poll_at: now + POLL_INTERVAL, polling: false };
        if self.ops.update(op_id, |op| op.state = pending).is_some() {
            self.dirty_ops.insert(op_id);
        }
    }

    /// Apple refused a submission outright (validation): nothing happened at Apple.
    pub fn refused(&mut self, op_id: u64, error_number: Option<i64>, message: &str, mirror: &mut Mirror, ctx: &mut LicenseCtx<'_>) {
        let Some(op) = self.ops.get(op_id).cloned() else { return };
        for (asset, target) in every_task(&op) {
            self.fail(&op, AssignmentKey { asset, target }, error_number, message, mirror, ctx);
        }
        self.report_refusals(mirror, ctx);
        self.finish(op_id);
    }

    /// `/status` answered for an operation.
    pub fn status(&mut self, op_id: u64, status: StatusResponse, mirror: &mut Mirror, ctx: &mut LicenseCtx<'_>) {
        let Some(op) = self.ops.get(op_id) else { return };
        let OperationState::Pending { submitted_at, .. } = op.state else { return };
        let kind = op.kind;
        let now = ctx.now;
        let still_pending = status.event_status == EventStatus::Pending;
        let resubmit = still_pending && now.saturating_sub(submitted_at) >= RESUBMIT_AFTER;
        self.ops.update(op_id, |op| {
            if let OperationState::Pending { next_poll_at, polling, .. } = &mut op.state {
                *polling = false;
                if still_pending {
                    *next_poll_at = now + POLL_INTERVAL; // unless resubmitted below
                }
            }
        });
        match status.event_status {
            EventStatus::Pending if resubmit => {
                if kind == OperationKind::Associate {
                    self.resubmit_associations(op_id);
                } else {
                    // Releases and user creation change nothing twice: the same request again.
                    self.ops.update(op_id, |op| op.state = OperationState::Queued);
                    self.dirty_ops.insert(op_id);
                }
            }
            EventStatus::Pending => {}
            EventStatus::Complete | EventStatus::Failed => {
                let op = self.ops.get(op_id).cloned().expect("looked up above");
                let failed = op.failed_tasks(&status.failures, mirror);
                let mut failed_keys = BTreeSet::new();
                failed_keys.extend(failed.iter().map(|&(asset, target, _, _)| AssignmentKey { asset, target }));
                for (asset, target, number, message) in &failed {
                    if !op.is_resolved(&(*asset, *target)) {
                        self.fail(&op, AssignmentKey { asset: *asset, target: *target }, *number, message, mirror, ctx);
                    }
                }
                if status.event_status == EventStatus::Failed && failed.is_empty() {
                    for (asset, target) in every_task(&op).into_iter().filter(|t| !op.is_resolved(t)) {
                        self.fail(&op, AssignmentKey { asset, target }, None, "Apple reported the event as failed", mirror, ctx);
                    }
                } else {
                    self.succeed_rest(&op, &failed_keys, mirror, ctx);
                }
                self.report_refusals(mirror, ctx);
                self.finish(op_id);
            }
        }
    }

    /// Applies every task of `op` not failed and not already resolved as a success.
    fn succeed_rest(&mut self, op: &Operation, failed: &BTreeSet<AssignmentKey>, mirror: &mut Mirror, ctx: &mut LicenseCtx<'_>) {
        match op.kind {
            OperationKind::Revoke => {
                let keys: Vec<AssignmentKey> =
                    self.pending_release.keys().filter(|k| op.targets.contains(&k.target)).copied().collect();
                for key in keys {
                    self.succeed(op, key, mirror, ctx);
                }
            }
            OperationKind::CreateUsers => {
                for user in &op.new_users {
                    let target = mirror.intern_user(&user.client_user_id);
                    if failed.iter().any(|k| k.target == target) {
                        continue;
                    }
                    self.user_created(target, user, mirror);
                }
            }
            OperationKind::Associate | OperationKind::Disassociate => {
                let tasks: Vec<(AssetKey, Target)> = op
                    .tasks()
                    .filter(|&(asset, target)| !failed.contains(&AssignmentKey { asset, target }) && !op.is_resolved(&(asset, target)))
                    .collect();
                for (asset, target) in tasks {
                    self.succeed(op, AssignmentKey { asset, target }, mirror, ctx);
                }
            }
        }
    }

    fn user_created(&mut self, target: Target, user: &NewUser, mirror: &mut Mirror) {
        if let Target::User(id) = target {
            self.pending_users.remove(&id);
            if mirror.user(id).and_then(|u| u.status.as_deref()).is_none() {
                let status = if user.managed_apple_id.is_some() { "Associated" } else { "Registered" };
                let record = UserRecord { email: user.email.clone(), status: Some(status.to_owned()), invite_code: None };
                mirror.set_user(&user.client_user_id, record);
            }
            self.users_changed = true;
            self.dirty_targets.insert(target);
        }
    }

    fn succeed(&mut self, op: &Operation, key: AssignmentKey, mirror: &mut Mirror, ctx: &mut LicenseCtx<'_>) {
        match op.kind {
            OperationKind::Associate => {
                self.in_flight.associated(key);
                // Known already (a sync showed it, and it was reported ready then): a second word of the same fact.
                let known = self.ours.contains(&key) && mirror.has_assignment(&key);
                mirror.add_assignment(key);
                self.now_ours(key, !known, mirror, ctx);
            }
            OperationKind::Disassociate | OperationKind::Revoke => {
                match self.pending_release.remove(&key) {
                    Some(reason) => self.released(key, reason, Release::Ours, mirror, ctx),
                    // A release sent twice (the first answer was lost) whose first landing was reported
                    // already: nothing left to say.
                    None if !mirror.has_assignment(&key) => {}
                    None => self.released(key, op.reason.clone(), Release::Ours, mirror, ctx),
                }
            }
            OperationKind::CreateUsers => {}
        }
        self.dirty_targets.insert(key.target);
        if op.kind != OperationKind::Associate && !(self.reported_short.is_empty() && self.exhausted.is_empty()) {
            self.needs_plan = true; // a freed license for targets waiting on the pool
        }
    }

    /// A license went away (released by us, or by someone else as a notification tells).
    fn released(&mut self, key: AssignmentKey, reason: String, how: Release, mirror: &mut Mirror, ctx: &mut LicenseCtx<'_>) {
        let pair = mirror.pair(&key);
        mirror.remove_assignment(&key);
        if how != Release::Elsewhere && self.ours.remove(&key) {
            self.dirty_ours.insert(key, false);
        }
        if ctx.notify_users {
            ctx.events.push(Event::NotifyUser {
                account_id: ctx.account_id.to_owned(),
                adam_id: pair.adam_id.clone(),
                serial_number: pair.serial_number.clone(),
                client_user_id: pair.client_user_id.clone(),
            });
        }
        ctx.events.push(Event::LicenseReleased { account_id: ctx.account_id.to_owned(), pair, reason });
    }

    fn fail(
        &mut self,
        op: &Operation,
        key: AssignmentKey,
        error_number: Option<i64>,
        message: &str,
        mirror: &mut Mirror,
        ctx: &mut LicenseCtx<'_>,
    ) {
        self.dirty_targets.insert(key.target);
        match (op.kind, error_number) {
            (OperationKind::CreateUsers, Some(USER_ALREADY_EXISTS)) => {
                if let Some(user) = op.new_users.iter().find(|u| mirror.lookup(&u.client_user_id).map(Target::User) == Some(key.target)) {
                    self.user_created(key.target, &user.clone(), mirror);
                }
                return;
            }
            (OperationKind::CreateUsers, _) => {
                if let Target::User(id) = key.target {
                    self.pending_users.remove(&id);
                    let reason = format!("Apple refused to create the user: {message}");
                    self.dirty_user_holds.insert(id, Some(reason.clone()));
                    self.user_holds.insert(id, reason);
                    ctx.events.push(Event::RequestFailed {
                        account_id: Some(ctx.account_id.to_owned()),
                        purpose: format!("createUsers ({})", mirror.name(id)),
                        error_number,
                        message: message.to_owned(),
                    });
                }
                return; // a user task has no asset to report an assignment failure for
            }
            (OperationKind::Associate, Some(INSUFFICIENT_LICENSES)) => {
                self.in_flight.association_ended(key, op.id);
                self.pool_refused(key.asset, message, mirror);
            }
            (OperationKind::Associate, Some(USER_NOT_FOUND)) => {
                self.in_flight.association_ended(key, op.id);
                if let Target::User(id) = key.target {
                    // Apple doesn't know the user (any more): register it again.
                    let name = mirror.name(id).to_owned();
                    mirror.set_user(&name, UserRecord { email: None, status: None, invite_code: None });
                }
            }
            (OperationKind::Associate, Some(INTERNAL_ERROR | MAINTENANCE)) => {
                self.in_flight.association_ended(key, op.id); // Apple's trouble, not the pair's: the next plan retries
            }
            (OperationKind::Associate, _) => {
                self.in_flight.association_ended(key, op.id);
                self.set_hold(key, format!("Apple refused the assignment: {message}"));
            }
            (OperationKind::Disassociate | OperationKind::Revoke, _) => {
                self.pending_release.remove(&key);
            }
        }
        ctx.events.push(Event::AssignmentFailed {
            account_id: ctx.account_id.to_owned(),
            pair: mirror.pair(&key),
            error_number,
            message: message.to_owned(),
        });
    }

    /// Apple refused an association of `asset` for lack of licenses. When the counts said a license
    /// was free, they are read again at once (a purchase or transfer Apple has not counted yet),
    /// and the refresh retries once; a second refusal at the same count waits for the counts to move.
    fn pool_refused(&mut self, asset: AssetKey, message: &str, mirror: &mut Mirror) {
        *self.refused_now.entry(asset).or_default() += 1;
        let available = mirror.asset(&asset).map_or(0, |c| if c.unlimited() { i64::MAX } else { c.available_count });
        let contradicts = available > self.in_flight.count(&asset);
        let retry_on_refresh = contradicts && self.retried_at.get(&asset) != Some(&available);
        if retry_on_refresh {
            mirror.doubt_counts();
        }
        self.exhausted.insert(asset, PoolRefusal { message: message.to_owned(), available_then: available, retry_on_refresh });
    }

    /// `insufficientLicenses` for the pool refusals of the outcome just applied, one per asset.
    fn report_refusals(&mut self, mirror: &Mirror, ctx: &mut LicenseCtx<'_>) {
        for (asset, short_by) in std::mem::take(&mut self.refused_now) {
            self.reported_short.insert(asset, short_by as i64);
            self.short.insert(asset);
            ctx.events.push(Event::InsufficientLicenses {
                account_id: ctx.account_id.to_owned(),
                adam_id: mirror.name(asset.adam_id).to_owned(),
                pricing_param: asset.pricing,
                short_by,
            });
        }
    }

    /// An association still pending at Apple after [`RESUBMIT_AFTER`]: resubmitted by planning
    /// again, so that only the pairs still wanted are asked for, within the pool. Its open pairs
    /// are awaited (Apple may still complete the old event, whose notification is then adopted).
    fn resubmit_associations(&mut self, op_id: u64) {
        let Some(op) = self.ops.get(op_id) else { return };
        let open: Vec<AssignmentKey> =
            op.tasks().filter(|t| !op.is_resolved(t)).map(|(asset, target)| AssignmentKey { asset, target }).collect();
        for key in open {
            self.in_flight.await_pair(key);
        }
        self.close(op_id, false);
    }

    fn finish(&mut self, op_id: u64) {
        self.close(op_id, true);
    }

    /// Forgets operation `op_id`; `remember_event`: its event's late notifications are old news.
    fn close(&mut self, op_id: u64, remember_event: bool) {
        if let Some(op) = self.ops.remove(op_id) {
            if let Some(event_id) = op.event_id().filter(|_| remember_event) {
                self.finished_events.insert(event_id.to_owned());
                self.finished_order.push_back(event_id.to_owned());
                if self.finished_order.len() > FINISHED_EVENTS_KEPT {
                    let oldest = self.finished_order.pop_front().expect("not empty");
                    self.finished_events.remove(&oldest);
                }
            }
            // Tasks never resolved must not stay pending forever; a newer operation's stay.
            for (asset, target) in op.tasks() {
                self.in_flight.association_ended(AssignmentKey { asset, target }, op_id);
            }
            if op.kind == OperationKind::Revoke {
                self.pending_release.retain(|k, _| !op.targets.contains(&k.target));
            }
            if op.kind == OperationKind::CreateUsers {
                for target in &op.targets {
                    if let Target::User(id) = target {
                        self.pending_users.remove(id);
                    }
                }
            }
            self.dirty_ops.insert(op_id);
            self.dirty_targets.extend(op.targets.iter().copied());
        }
    }

    // ================================================================ notifications

    /// An `ASSET_MANAGEMENT` notification: results of one of our events, or news of a change
    /// someone else made (purchases, another MDM, the admin in Apple Business Manager).
    pub fn asset_management(&mut self, n: &AssetManagement, mirror: &mut Mirror, ctx: &mut LicenseCtx<'_>) {
        let keys: Vec<AssignmentKey> = n.assignments.iter().filter_map(|a| mirror.key_of(a)).collect();
        let op_id = n.event_id.as_deref().and_then(|e| self.ops.values().find(|op| op.event_id() == Some(e))).map(|op| op.id);
        // Taken out while its tasks are applied (they need `&mut self`), put back after.
        let Some(mut op) = op_id.and_then(|id| self.ops.remove(id)) else {
            if n.event_id.as_ref().is_some_and(|e| self.finished_events.contains(e)) {
                return; // a late (re)delivery about an operation already finished: old news
            }
            for key in keys {
                match (n.kind, n.result) {
                    (ManagementType::Associate, ManagementResult::Success) => {
                        mirror.add_assignment(key);
                        if self.in_flight.is_awaited(&key) {
                            self.confirmed_late(key, mirror, ctx);
                        }
                    }
                    // When it happened is unknown: the next sync's counts include it. Possibly it
                    // is older than a newer association of ours: provenance stays until a full
                    // refresh shows the pair gone.
                    // A release of ours sent twice (the first answer was lost): this is the first landing.
                    (_, ManagementResult::Success) => match self.pending_release.remove(&key) {
                        Some(reason) => self.released(key, reason, Release::Ours, mirror, ctx),
                        None => self.released(key, "released outside this MDM".to_owned(), Release::Elsewhere, mirror, ctx),
                    },
                    (_, ManagementResult::Failure) => {}
                }
            }
            self.needs_plan = true;
            return;
        };
        let error_number = n.error.as_ref().and_then(|e| e.error_number);
        let message = n.error.as_ref().and_then(|e| e.error_message.clone()).unwrap_or_else(|| "Apple reported a failure".to_owned());
        let mut op_targets = BTreeSet::new();
        op_targets.extend(op.targets.iter().copied());
        for key in keys {
            let task = (key.asset, key.target);
            let in_op = match op.kind {
                // A revoke names no assets: Apple lists every pair of its targets it released.
                OperationKind::Revoke => op_targets.contains(&key.target),
                _ => op_targets.contains(&key.target) && op.assets.contains(&key.asset),
            };
            if !in_op || !op.resolve(task) {
                continue;
            }
            match n.result {
                ManagementResult::Success => self.succeed(&op, key, mirror, ctx),
                ManagementResult::Failure => self.fail(&op, key, error_number, &message, mirror, ctx),
            }
        }
        self.report_refusals(mirror, ctx);
        let done = match op.kind {
            // A revoke is done when nothing it was releasing is still pending.
            OperationKind::Revoke => !self.pending_release.keys().any(|k| op_targets.contains(&k.target)),
            _ => op.tasks().all(|t| op.is_resolved(&t)),
        };
        let id = op.id;
        self.ops.insert(op);
        if done {
            self.finish(id);
        }
    }

    /// `USER_MANAGEMENT`: the outcome of a user event; finishes our create-users operation.
    pub fn user_management(&mut self, n: &UserManagement, mirror: &mut Mirror, ctx: &mut LicenseCtx<'_>) {
        self.users_updated(&n.users, mirror);
        let op_id = n.event_id.as_deref().and_then(|e| self.ops.values().find(|op| op.event_id() == Some(e))).map(|op| op.id);
        let Some(mut op) = op_id.and_then(|id| self.ops.remove(id)) else { return };
        let error_number = n.error.as_ref().and_then(|e| e.error_number);
        let message = n.error.as_ref().and_then(|e| e.error_message.clone()).unwrap_or_else(|| "Apple reported a failure".to_owned());
        for user in &n.users {
            let Some(target) = mirror.lookup(&user.client_user_id).map(Target::User) else { continue };
            if !op.targets.contains(&target) || !op.resolve((NO_ASSET, target)) {
                continue;
            }
            let key = AssignmentKey { asset: NO_ASSET, target };
            match n.result {
                Some(ManagementResult::Failure) => self.fail(&op, key, error_number, &message, mirror, ctx),
                _ => self.user_created(target, &NewUser { client_user_id: user.client_user_id.clone(), email: None, managed_apple_id: None }, mirror),
            }
        }
        let done = op.targets.iter().all(|t| op.is_resolved(&(NO_ASSET, *t)));
        let id = op.id;
        self.ops.insert(op);
        if done {
            self.finish(id);
        }
    }

    /// `USER_MANAGEMENT` / `USER_ASSOCIATED`: user records changed.
    pub fn users_updated(&mut self, users: &[wire::User], mirror: &mut Mirror) {
        for user in users {
            let record = UserRecord { email: user.email.clone(), status: user.status.clone(), invite_code: user.invite_code.clone() };
            mirror.set_user(&user.client_user_id, record);
        }
        self.needs_plan = true;
    }

    // ================================================================ read models and persistence

    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.ops.values()
    }

    pub fn operation(&self, op_id: u64) -> Option<&Operation> {
        self.ops.get(op_id)
    }

    /// Restores an operation read from the store (its state already decided from the record:
    /// polled, unconfirmed or queued).
    pub fn restore_operation(&mut self, op: Operation) {
        self.next_op_id = self.next_op_id.max(op.id);
        match op.kind {
            OperationKind::Associate => self.associating(&op),
            OperationKind::CreateUsers => self.pending_users.extend(op.targets.iter().filter_map(|t| match t {
                Target::User(id) => Some(*id),
                Target::Device(_) => None,
            })),
            OperationKind::Disassociate => {
                for (asset, target) in op.tasks() {
                    self.pending_release.insert(AssignmentKey { asset, target }, op.reason.clone());
                }
            }
            OperationKind::Revoke => {}
        }
        self.ops.insert(op);
        self.needs_plan = true;
    }

    /// The assignments of ours the mirror shows: call before a full refresh replaces it, and hand
    /// them to [`Licenses::prune_ours`] after.
    pub fn ours_held(&self, mirror: &Mirror) -> BTreeSet<AssignmentKey> {
        let mut held = BTreeSet::new();
        held.extend(self.ours.iter().filter(|k| mirror.has_assignment(k)));
        held
    }

    /// After a full refresh: provenance of assignments Apple no longer has is dropped (released
    /// while this instance was down or stopped, or by someone else). Those the mirror showed
    /// before (`held_before`) are reported released: the host learns of it now.
    pub fn prune_ours(&mut self, held_before: &BTreeSet<AssignmentKey>, mirror: &mut Mirror, ctx: &mut LicenseCtx<'_>) {
        let gone: Vec<AssignmentKey> =
            self.ours.iter().filter(|k| !mirror.has_assignment(k) && !self.in_flight.is_associating(k)).collect();
        for key in gone {
            if held_before.contains(&key) {
                let reason = "not at Apple any more (found by a full refresh): released outside this MDM".to_owned();
                self.released(key, reason, Release::Ours, mirror, ctx);
            } else {
                self.ours.remove(&key);
                self.dirty_ours.insert(key, false);
            }
        }
    }

    /// Why `key` has or lacks a license, given the decision of the policies that cover it.
    pub fn explain(&self, key: Option<AssignmentKey>, decisions: &[Decision], mirror: &Mirror) -> (bool, String) {
        let Some(key) = key else {
            return (false, "the account holds no licenses of this app".to_owned());
        };
        let has = mirror.has_assignment(&key);
        let wanted = decisions.iter().any(|d| matches!(d, Decision::Want(k) if *k == key));
        let reason = if let Some(reason) = self.pending_release.get(&key) {
            format!("being released: {reason}")
        } else if has && self.ours.contains(&key) {
            "licensed by this MDM".to_owned()
        } else if has {
            "licensed by another MDM (Clean Up releases it unless a policy wants it)".to_owned()
        } else if self.in_flight.is_associating(&key) {
            "assignment requested, waiting for Apple to confirm".to_owned()
        } else if let Some(Decision::Skip(reason)) = decisions.iter().find(|d| matches!(d, Decision::Skip(_))).filter(|_| !wanted) {
            reason.clone()
        } else if !wanted {
            "not in the scope of any app policy".to_owned()
        } else if let Some(refusal) = self.exhausted.get(&key.asset) {
            let next = if refusal.retry_on_refresh {
                "the license counts are being read again, and the assignment is retried if they allow it"
            } else {
                "it is retried when the license counts change"
            };
            format!("Apple refused the assignment for lack of licenses (9709: {}); {next}", refusal.message)
        } else if self.short.contains(&key.asset) {
            "not enough licenses available".to_owned()
        } else if matches!(key.target, Target::User(id) if self.pending_users.contains(&id)) {
            "waiting for Apple to register the user".to_owned()
        } else if self.ops.revoking().any(|t| t == key.target) {
            "will be assigned once the revoke of this target's licenses, sent earlier, is done".to_owned()
        } else if self.ops.values().any(|op| op.kind == OperationKind::Disassociate && op.tasks().any(|t| t == (key.asset, key.target) && !op.is_resolved(&t))) {
            "will be assigned once the release of it sent earlier is done".to_owned()
        } else if self.needs_plan || self.dirty_targets.contains(&key.target) {
            "will be assigned with the changes collecting now (coalescing: sent within coalesceMs)".to_owned()
        } else {
            "will be assigned at the next plan".to_owned()
        };
        (has, reason)
    }
}

/// Every task of an operation; a user creation has one per user (with no asset).
fn every_task(op: &Operation) -> Vec<(AssetKey, Target)> {
    match op.kind {
        OperationKind::CreateUsers => op.targets.iter().map(|t| (NO_ASSET, *t)).collect(),
        _ => op.tasks().collect(),
    }
}

