//! Planning: what changed since the last plan (targets to plan again, pairs nominated for
//! release, Reconcile and Clean Up requests, the coalescing window), and the plan itself, which
//! compares the desired state with what Apple holds and what is in flight, checks the pools, and
//! queues operations batched to the service-config limits.

use std::collections::{BTreeMap, BTreeSet};

use crate::apple::wire::NewUser;
use crate::base::sorted::extend_in_bulk;
use crate::base::time::Millis;
use crate::contract::event::Event;
use crate::effects::{AccountEffects, Env};
use crate::facts::Facts;
use crate::licenses::batch::{manage_batches, revoke_batches};
use crate::licenses::coalesce::{CoalescePolicy, Coalescer};
use crate::licenses::Licenses;
use crate::licenses::operations::Operation;
use crate::mirror::Mirror;
use crate::vocab::{AssetKey, AssignmentKey, OperationKind, ProductType, Target};

/// What waits to be planned.
#[derive(Debug, Clone, Default)]
pub struct Planner {
    /// Release candidates (ours), with what triggered them; released unless still wanted.
    nominated: BTreeMap<AssignmentKey, String>,
    reconcile: bool,
    clean_up: bool,
    /// Something changed that may change the whole plan (policies, counts, Reconcile, Clean Up).
    whole: bool,
    /// Targets whose pairs must be planned again (a fact, hold or outcome about them changed):
    /// planned alone, without recomputing the desired state of the whole account.
    targets: BTreeSet<Target>,
    /// The window in which waiting license work collects before it is planned.
    coalescer: Coalescer,
    /// Users invited already (one `inviteUser` each).
    invited: BTreeSet<u32>,
}

impl Planner {
    /// Plans `target`'s pairs again.
    pub fn replan(&mut self, target: Target) {
        self.targets.insert(target);
    }

    /// Plans each of `targets` again (in one bulk build: a restore marks every target in a scope).
    pub fn replan_targets(&mut self, targets: Vec<Target>) {
        extend_in_bulk(&mut self.targets, targets);
    }

    /// Plans the whole account again.
    pub fn replan_all(&mut self) {
        self.whole = true;
    }

    /// `key` (ours) is released at the next plan unless a policy still wants it.
    pub fn nominate(&mut self, key: AssignmentKey, reason: &str) {
        self.nominated.insert(key, reason.to_owned());
        self.targets.insert(key.target);
    }

    /// Reconcile at the next plan (a whole-account plan).
    pub fn request_reconcile(&mut self) {
        self.reconcile = true;
        self.whole = true;
    }

    /// Clean Up at the next plan (a whole-account plan).
    pub fn request_clean_up(&mut self) {
        self.clean_up = true;
        self.whole = true;
    }

    /// Whether something changed that planning must look at.
    pub fn wants_plan(&self) -> bool {
        self.whole || !self.targets.is_empty()
    }

    /// Whether `target`'s pairs wait to be planned.
    pub fn waits(&self, target: Target) -> bool {
        self.whole || self.targets.contains(&target)
    }

    /// Feeds the coalescing window with the amount of work waiting at `now`.
    pub fn note_waiting_work(&mut self, now: Millis) {
        self.coalescer.note_waiting(now, self.work());
    }

    /// Whether the coalescing window saw the work waiting now (else the next pass feeds it).
    pub fn waiting_work_noted(&self) -> bool {
        self.coalescer.saw(self.work())
    }

    /// The amount of work waiting.
    fn work(&self) -> usize {
        self.targets.len() + self.nominated.len() + usize::from(self.whole)
    }

    /// When the open coalescing window closes, if one is open.
    pub fn closes_at(&self, policy: &CoalescePolicy) -> Option<Millis> {
        self.coalescer.closes_at(policy)
    }

    /// The clock was set back to `now` after a glitch.
    pub fn clock_rewound(&mut self, now: Millis) {
        self.coalescer.rewound(now);
    }
}

impl Licenses {
    /// Compares the desired state with Apple's and queues the operations that close the gap:
    /// for the whole account when something changed it all, else for the targets that changed.
    /// Call when the coalescing window closes.
    pub fn plan(&mut self, facts: &Facts, mirror: &mut Mirror, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        self.planner.coalescer.close();
        let dirty = std::mem::take(&mut self.planner.targets);
        let only = if std::mem::take(&mut self.planner.whole) { None } else { Some(dirty) };
        let (want, ineligible) = self.desired.wanted(facts, mirror, only.as_ref(), &self.ours);
        self.told.report(ineligible, only.as_ref(), mirror, fx);
        let registered = self.plan_users(&want, facts, mirror, env, fx);
        self.plan_associations(&want, &registered, only.is_none(), mirror, env, fx);
        self.plan_releases(&want, only.as_ref(), mirror, env, fx);
        if self.wants_plan() {
            self.note_waiting_work(env.now); // what this plan left for the next (a whole-account plan, say) waits from now
        }
    }

    /// Queues user creation for wanted users Apple doesn't know; invites registered users
    /// without a Managed Apple ID. Returns the users that may be assigned now.
    fn plan_users(
        &mut self,
        want: &BTreeSet<AssignmentKey>,
        facts: &Facts,
        mirror: &Mirror,
        env: &Env<'_>,
        fx: &mut AccountEffects<'_>,
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
                    if let Some(code) = invite.filter(|_| !managed && !self.planner.invited.contains(&id)) {
                        self.planner.invited.insert(id);
                        let invitation = &env.service.urls.invitation_email;
                        fx.event(Event::InviteUser {
                            account_id: fx.account_id().to_owned(),
                            client_user_id: name.to_owned(),
                            email: record.email.clone().or_else(|| fact.and_then(|f| f.email.clone())),
                            invite_url: invitation.replace("%25inviteCode%25", code).replace("%inviteCode%", code),
                        });
                    }
                }
                _ if !self.ops.registering.contains(&id) => to_create.push(NewUser {
                    client_user_id: name.to_owned(),
                    email: fact.and_then(|f| f.email.clone()),
                    managed_apple_id: fact.and_then(|f| f.managed_apple_id.clone()),
                }),
                _ => {}
            }
        }
        for chunk in to_create.chunks(env.service.limits.max_users.max(1) as usize) {
            let targets: Vec<Target> = chunk.iter().filter_map(|u| mirror.lookup(&u.client_user_id).map(Target::User)).collect();
            self.ops.registering.extend(targets.iter().filter_map(|t| match t {
                Target::User(id) => Some(*id),
                Target::Device(_) => None,
            }));
            let reason = "users in scope of a user-license policy".to_owned();
            let mut op = self.ops.create(OperationKind::CreateUsers, Vec::new(), targets, reason);
            op.new_users = chunk.to_vec();
            self.queue(op, fx);
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
        env: &Env<'_>,
        fx: &mut AccountEffects<'_>,
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
        let mut shortfalls = BTreeMap::new();
        for (asset, (awaited, fresh)) in missing {
            let Some(counts) = mirror.asset(&asset) else { continue };
            let available = self.pool.available(&asset, counts, self.in_flight.count(&asset));
            let take = fresh.len().min(usize::try_from(available).unwrap_or(usize::MAX));
            if whole {
                shortfalls.insert(asset, fresh.len() - take);
            } else if take < fresh.len() {
                self.planner.replan_all(); // short: the whole account's shortfall must be reported
            }
            if take > 0 && !counts.unlimited() {
                self.pool.remaining(asset, available - take as i64, mirror, env, fx);
            }
            for target in awaited.iter().chain(&fresh[..take]) {
                wanted_by_target.entry(*target).or_default().insert(asset);
            }
        }
        if whole {
            self.pool.shortfalls(shortfalls, mirror, fx);
        }
        for batch in manage_batches(&wanted_by_target, &env.service.limits) {
            let op = self.ops.create(OperationKind::Associate, batch.assets, batch.targets, "in scope of an app policy".to_owned());
            self.associating(&op);
            self.queue(op, fx);
        }
    }

    /// Queues releases of nominated pairs (those of the `only` targets, when given) no policy
    /// wants, and of what Reconcile and Clean Up find.
    fn plan_releases(
        &mut self,
        want: &BTreeSet<AssignmentKey>,
        only: Option<&BTreeSet<Target>>,
        mirror: &Mirror,
        env: &Env<'_>,
        fx: &mut AccountEffects<'_>,
    ) {
        let mut release: BTreeMap<AssignmentKey, String> = BTreeMap::new();
        for (key, reason) in std::mem::take(&mut self.planner.nominated) {
            if only.is_some_and(|only| !only.contains(&key.target)) {
                self.planner.nominate(key, &reason); // its target's plan decides
            } else if self.ours.contains(&key) && !want.contains(&key) {
                release.insert(key, reason);
            }
        }
        if std::mem::take(&mut self.planner.reconcile) {
            for key in self.ours.not_in(want) {
                release.entry(*key).or_insert_with(|| "no longer used (Reconcile)".to_owned());
            }
        }
        if std::mem::take(&mut self.planner.clean_up) {
            let others: Vec<AssignmentKey> = mirror.assignments_iter().filter(|k| !self.ours.contains(k)).copied().collect();
            for key in others {
                if want.contains(&key) {
                    self.ours.adopt(key, fx);
                } else {
                    release.insert(key, "assigned by another MDM (Clean Up)".to_owned());
                }
            }
        }
        release.retain(|key, _| {
            mirror.has_assignment(key)
                && !self.ops.releasing.contains_key(key)
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
        let limits = &env.service.limits;
        let all_disassociate = manage_batches(&by_target, limits);
        let mut partial = BTreeMap::new();
        partial.extend(by_target.iter().filter(|(t, _)| !whole.contains(t)).map(|(t, a)| (*t, a.clone())));
        let revokes = revoke_batches(&whole, limits);
        let disassociates = manage_batches(&partial, limits);
        let (revokes, disassociates) = if !whole.is_empty() && revokes.len() + disassociates.len() < all_disassociate.len() {
            (revokes, disassociates)
        } else {
            (Vec::new(), all_disassociate)
        };
        let reason_of = |targets: &[Target]| {
            targets.iter().find_map(|&t| release.range(AssignmentKey::range_of(t)).next()).map(|(_, r)| r.clone()).unwrap_or_default()
        };
        for batch in revokes {
            let op = self.ops.create(OperationKind::Revoke, Vec::new(), batch.targets.clone(), reason_of(&batch.targets));
            for (key, reason) in release.iter().filter(|(k, _)| batch.targets.contains(&k.target)) {
                self.ops.releasing.insert(*key, reason.clone());
            }
            self.queue(op, fx);
        }
        for batch in disassociates {
            let op = self.ops.create(OperationKind::Disassociate, batch.assets, batch.targets.clone(), reason_of(&batch.targets));
            for (asset, target) in op.tasks() {
                let key = AssignmentKey { asset, target };
                if let Some(reason) = release.get(&key) {
                    self.ops.releasing.insert(key, reason.clone());
                }
            }
            self.queue(op, fx);
        }
    }

    /// Adds a planned operation (written before it is sent).
    fn queue(&mut self, op: Operation, fx: &mut AccountEffects<'_>) {
        fx.changes().operations.insert(op.id);
        self.ops.insert(op);
    }
}
