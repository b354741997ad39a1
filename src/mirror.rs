//! An account's copy of what Apple holds: assets with counts, assignments and users.
//!
//! Strings (adam ids, serial numbers, client user ids) are interned once per account, and
//! assignments are stored as small fixed-size keys, so a million assignments stay compact. Each
//! assignment keeps when this engine first saw Apple confirm it, in Unix seconds (4 bytes).
//!
//! The mirror is durable: every change is reported into a [`MirrorChanges`] (part of the account's
//! effects, [`crate::effects::AccountChanges`]) until the engine writes it, so one confirmed
//! assignment rewrites the record of one device or user, and a full refresh writes only the
//! devices and users that differ from the mirror it replaces.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use indexmap::IndexSet;

use crate::apple::wire::{self, AssetCounts, AssetRef};
use crate::base::sorted::{extend_in_bulk, merge_join};
use crate::base::time::Millis;
use crate::vocab::{AssetKey, AssignmentKey, LicensePair, PricingParam, Target};

/// Maps strings to dense ids (their insertion index) and back; each string is stored once.
/// Shared by a copy (a preview's) until either interns a new string.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    strings: Arc<IndexSet<Box<str>, foldhash::fast::RandomState>>,
}

impl Interner {
    pub fn intern(&mut self, text: &str) -> u32 {
        let index = match self.strings.get_index_of(text) {
            Some(index) => index,
            None => Arc::make_mut(&mut self.strings).insert_full(text.into()).0,
        };
        u32::try_from(index).expect("fewer than 2^32 distinct strings per account")
    }

    pub fn lookup(&self, text: &str) -> Option<u32> {
        self.strings.get_index_of(text).map(|index| index as u32)
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn name(&self, id: u32) -> &str {
        self.strings.get_index(id as usize).map_or("", |s| s)
    }
}

/// A user Apple knows (`getUsers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub email: Option<String>,
    pub status: Option<String>,
    pub invite_code: Option<String>,
}

/// Data gathered by a sync run before it replaces or updates the mirror.
#[derive(Debug, Clone, Default)]
pub struct Staged {
    pub assets: BTreeMap<AssetKey, AssetCounts>,
    /// In page order, duplicates possible; sorted when applied.
    pub assignments: Vec<AssignmentKey>,
    pub users: BTreeMap<u32, UserRecord>,
}

/// What changed in a mirror since it was last written: the keys to write (or delete, when
/// absent from the mirror by then).
#[derive(Debug, Default)]
pub struct MirrorChanges {
    pub assets: BTreeSet<AssetKey>,
    /// Devices and users whose assignments changed (all of a target's assignments are one record).
    pub targets: BTreeSet<Target>,
    pub users: BTreeSet<u32>,
    /// Every target holding assignments from this one on is still to be written (a first full
    /// refresh writes the whole mirror without listing each target).
    rewrite_from: Option<Target>,
}

impl MirrorChanges {
    fn listed(&self) -> usize {
        self.assets.len() + self.targets.len() + self.users.len()
    }

    /// Whether nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.listed() == 0 && self.rewrite_from.is_none()
    }

    /// Takes up to `max` changes of `mirror` to write, assets and users first. Call when writing
    /// the account's records; what is left waits for the next call.
    pub fn take(&mut self, max: usize, mirror: &Mirror) -> MirrorChanges {
        if self.rewrite_from.is_none() && self.listed() <= max {
            return std::mem::take(self);
        }
        let mut taken = MirrorChanges::default();
        while taken.listed() < max {
            if let Some(key) = self.assets.pop_first() {
                taken.assets.insert(key);
            } else if let Some(id) = self.users.pop_first() {
                taken.users.insert(id);
            } else if let Some(target) = self.targets.pop_first() {
                taken.targets.insert(target);
            } else {
                break;
            }
        }
        if let Some(from) = self.rewrite_from {
            let mut room = max.saturating_sub(taken.listed());
            let (mut next, mut last) = (None, None);
            let first = *AssignmentKey::range_of(from).start();
            for key in mirror.assignments.range(first..).map(|(key, _)| key) {
                if last == Some(key.target) {
                    continue;
                }
                last = Some(key.target);
                if room == 0 {
                    next = Some(key.target);
                    break;
                }
                if taken.targets.insert(key.target) {
                    room -= 1;
                }
            }
            self.rewrite_from = next;
        }
        taken
    }
}

#[derive(Debug, Clone, Default)]
pub struct Mirror {
    strings: Interner,
    assets: BTreeMap<AssetKey, AssetCounts>,
    /// Each assignment with the time it was first seen confirmed ([`Since`]); shared by a copy (a
    /// preview's) until either changes.
    assignments: Arc<BTreeMap<AssignmentKey, Since>>,
    users: BTreeMap<u32, UserRecord>,
    counts_stale: bool,
    /// Confirmed changes made while a sync gathers pages (`Some` during a sync): pages fetched
    /// before a change would undo it, so it is replayed after the sync's data is applied.
    journal: Option<Vec<(AssignmentKey, bool)>>,
}

/// When this engine first saw Apple confirm an assignment (a sync listing it, a `/status` or a
/// notification), in Unix seconds; 0 when unknown (read from a record written before it was kept).
pub type Since = u32;

/// `now` as a [`Since`].
fn since_at(now: Millis) -> Since {
    Since::try_from(now / 1000).unwrap_or(Since::MAX)
}

impl Mirror {
    pub fn stage_asset(&mut self, staged: &mut Staged, asset: &wire::Asset) {
        let key = self.intern_asset(&asset.adam_id, asset.pricing_param);
        staged.assets.insert(key, asset.counts());
    }

    /// Stages an assignment; one with neither or both targets is malformed and skipped
    /// (returns `false`).
    pub fn stage_assignment(&mut self, staged: &mut Staged, assignment: &wire::Assignment<'_>) -> bool {
        let Some(key) = self.key_of(assignment) else { return false };
        staged.assignments.push(key);
        true
    }

    /// The key of an assignment Apple reported, its strings interned; `None` when it names
    /// neither or both of a device and a user.
    pub fn key_of(&mut self, assignment: &wire::Assignment<'_>) -> Option<AssignmentKey> {
        let target = self.intern_target(assignment.serial_number.as_deref(), assignment.client_user_id.as_deref())?;
        Some(AssignmentKey { asset: self.intern_asset(&assignment.adam_id, assignment.pricing_param), target })
    }

    /// The device or user named by exactly one of a serial number and a client user id,
    /// interned; `None` when neither or both are given.
    pub fn intern_target(&mut self, serial_number: Option<&str>, client_user_id: Option<&str>) -> Option<Target> {
        match (serial_number, client_user_id) {
            (Some(serial), None) => Some(self.intern_device(serial)),
            (None, Some(user)) => Some(self.intern_user(user)),
            _ => None,
        }
    }

    pub fn stage_user(&mut self, staged: &mut Staged, user: &wire::User) {
        let id = self.strings.intern(&user.client_user_id);
        let record = UserRecord { email: user.email.clone(), status: user.status.clone(), invite_code: user.invite_code.clone() };
        staged.users.insert(id, record);
    }

    /// A sync starts gathering pages: journal confirmed changes from now on.
    pub fn begin_journal(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// A full refresh: everything Apple returned replaces what was there. Only the
    /// differences are reported as changes.
    /// Assignments already held keep when they were first confirmed; new ones date from `now`.
    pub fn replace(&mut self, mut staged: Staged, now: Millis, changes: &mut MirrorChanges) {
        self.replace_assets(staged.assets, changes);
        staged.assignments.sort_unstable();
        staged.assignments.dedup();
        let old = std::mem::take(&mut self.assignments);
        // Memory: at a million assignments the pairs are gathered once at their exact size while the
        // staged keys are freed, and the map is built from them in place (a sorted bulk build).
        let mut pairs = Vec::with_capacity(staged.assignments.len());
        let listed = staged.assignments.into_iter().map(|key| (key, ()));
        pairs.extend(
            merge_join(old.iter().map(|(k, s)| (*k, *s)), listed)
                .filter_map(|(key, held, listed)| listed.map(|()| (key, held.unwrap_or(since_at(now))))),
        );
        self.assignments = Arc::new(pairs.into_iter().collect());
        self.replay_journal(now, changes);
        if old.is_empty() {
            changes.rewrite_from = self.assignments.first_key_value().map(|(key, _)| key.target);
        } else {
            let joined = merge_join(old.keys().map(|k| (k, ())), self.assignments.keys().map(|k| (k, ())));
            for (key, _, _) in joined.filter(|(_, was, is)| was.is_some() != is.is_some()) {
                changes.targets.insert(key.target);
            }
        }
        let old = std::mem::replace(&mut self.users, staged.users);
        for (id, user) in &old {
            if self.users.get(id) != Some(user) {
                changes.users.insert(*id);
            }
        }
        for id in self.users.keys().filter(|id| !old.contains_key(id)) {
            changes.users.insert(*id);
        }
    }

    /// A delta sync (or a full refresh that can't be trusted to list everything): assets are
    /// always fetched in full (Apple has no asset delta); the assignments and users returned are
    /// merged in, nothing is removed.
    pub fn merge(&mut self, staged: Staged, now: Millis, changes: &mut MirrorChanges) {
        self.replace_assets(staged.assets, changes);
        for key in staged.assignments {
            self.set_present(key, Some(since_at(now)), changes);
        }
        for (id, user) in staged.users {
            if self.users.get(&id) != Some(&user) {
                self.users.insert(id, user);
                changes.users.insert(id);
            }
        }
        self.replay_journal(now, changes);
    }

    fn replace_assets(&mut self, assets: BTreeMap<AssetKey, AssetCounts>, changes: &mut MirrorChanges) {
        let old = std::mem::replace(&mut self.assets, assets);
        for (key, counts) in &old {
            if self.assets.get(key) != Some(counts) {
                changes.assets.insert(*key);
            }
        }
        for key in self.assets.keys().filter(|key| !old.contains_key(key)) {
            changes.assets.insert(*key);
        }
    }

    /// Re-applies the changes confirmed during the sync. The counts are Apple's as of the
    /// assets pages, which may or may not include them: an association is taken off them again
    /// (never count a license free that is not), a release is not credited; either way the
    /// counts are read again soon.
    fn replay_journal(&mut self, now: Millis, changes: &mut MirrorChanges) {
        for (key, present) in self.journal.take().unwrap_or_default() {
            self.set_present(key, present.then(|| since_at(now)), changes);
            if present {
                self.shift_counts(&key.asset, 1, changes);
            }
            self.counts_stale = true;
        }
    }

    /// Adds an assignment confirmed at `Some(since)` (one already held keeps its time) or removes it
    /// (`None`); returns whether that changed the mirror.
    fn set_present(&mut self, key: AssignmentKey, present: Option<Since>, changes: &mut MirrorChanges) -> bool {
        let assignments = Arc::make_mut(&mut self.assignments);
        let changed = match present {
            Some(since) => match assignments.entry(key) {
                std::collections::btree_map::Entry::Vacant(entry) => {
                    entry.insert(since);
                    true
                }
                std::collections::btree_map::Entry::Occupied(_) => false,
            },
            None => assignments.remove(&key).is_some(),
        };
        if changed {
            changes.targets.insert(key.target);
        }
        changed
    }

    fn journal(&mut self, key: AssignmentKey, present: bool) {
        if let Some(journal) = self.journal.as_mut() {
            journal.push((key, present));
        }
    }

    /// Forgets everything Apple returned (the account moved to another organization's token).
    pub fn clear(&mut self, changes: &mut MirrorChanges) {
        self.journal = None;
        self.replace(Staged::default(), 0, changes);
    }

    // ------------------------------------------------------------ restore

    /// An asset read back from the store.
    pub fn restore_asset(&mut self, key: AssetKey, counts: AssetCounts) {
        self.assets.insert(key, counts);
    }

    /// Assignments read back from the store, each with when it was first confirmed.
    pub fn restore_assignments(&mut self, pairs: Vec<(AssignmentKey, Since)>) {
        extend_in_bulk(Arc::make_mut(&mut self.assignments), pairs);
    }

    /// A user Apple knows, read back from the store.
    pub fn restore_user(&mut self, client_user_id: &str, record: UserRecord) {
        let id = self.strings.intern(client_user_id);
        self.users.insert(id, record);
    }

    // ------------------------------------------------------------ keys and lookups

    pub fn intern_asset(&mut self, adam_id: &str, pricing: PricingParam) -> AssetKey {
        AssetKey { adam_id: self.strings.intern(adam_id), pricing }
    }

    /// An id for any other name the account's licensing refers to (a policy id).
    pub fn intern_name(&mut self, name: &str) -> u32 {
        self.strings.intern(name)
    }

    pub fn intern_device(&mut self, serial: &str) -> Target {
        Target::Device(self.strings.intern(serial))
    }

    pub fn intern_user(&mut self, client_user_id: &str) -> Target {
        Target::User(self.strings.intern(client_user_id))
    }

    /// The id of a string, without interning it.
    pub fn lookup(&self, text: &str) -> Option<u32> {
        self.strings.lookup(text)
    }

    pub fn name(&self, id: u32) -> &str {
        self.strings.name(id)
    }

    /// How many names the account interned (their ids are `0..name_count`, in the order they came).
    pub fn name_count(&self) -> usize {
        self.strings.len()
    }

    /// An asset as Apple's requests name it.
    pub fn asset_ref(&self, key: &AssetKey) -> AssetRef {
        AssetRef { adam_id: self.strings.name(key.adam_id).to_owned(), pricing_param: Some(key.pricing) }
    }

    pub fn asset(&self, key: &AssetKey) -> Option<&AssetCounts> {
        self.assets.get(key)
    }

    /// Every edition (pricing) of an app the account holds.
    pub fn assets_of_app(&self, adam_id: &str) -> Vec<AssetKey> {
        let Some(id) = self.strings.lookup(adam_id) else { return Vec::new() };
        self.assets.keys().filter(|k| k.adam_id == id).copied().collect()
    }

    pub fn has_assignment(&self, key: &AssignmentKey) -> bool {
        self.assignments.contains_key(key)
    }

    pub fn assignments_iter(&self) -> impl Iterator<Item = &AssignmentKey> {
        self.assignments.keys()
    }

    /// The assignments from `after` on (excluded) with when each was first confirmed, in key order.
    pub fn assignments_after(&self, after: Option<AssignmentKey>) -> impl Iterator<Item = (&AssignmentKey, Since)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        self.assignments.range((from, Unbounded)).map(|(key, since)| (key, *since))
    }

    /// When this engine first saw Apple confirm `key` (0: unknown, or not held).
    pub fn confirmed_since(&self, key: &AssignmentKey) -> Since {
        self.assignments.get(key).copied().unwrap_or(0)
    }

    /// The pairs of `keys` Apple does not hold (one walk of the two ordered sets).
    pub fn not_held<'a>(&'a self, keys: &'a BTreeSet<AssignmentKey>) -> impl Iterator<Item = &'a AssignmentKey> {
        merge_join(keys.iter().map(|k| (k, ())), self.assignments.keys().map(|k| (k, ())))
            .filter_map(|(key, wanted, held)| (wanted.is_some() && held.is_none()).then_some(key))
    }

    /// The assignments one device or user holds.
    pub fn assignments_of(&self, target: Target) -> impl Iterator<Item = &AssignmentKey> {
        self.assignments.range(AssignmentKey::range_of(target)).map(|(key, _)| key)
    }

    pub fn user(&self, id: u32) -> Option<&UserRecord> {
        self.users.get(&id)
    }

    /// A user Apple knows changed (created, updated, or to register again).
    pub fn set_user(&mut self, client_user_id: &str, record: UserRecord, changes: &mut MirrorChanges) {
        let id = self.strings.intern(client_user_id);
        self.users.insert(id, record);
        changes.users.insert(id);
    }

    /// A key by name, for events, records and views.
    pub fn pair(&self, key: &AssignmentKey) -> LicensePair {
        let (serial_number, client_user_id) = match key.target {
            Target::Device(id) => (Some(self.strings.name(id).to_owned()), None),
            Target::User(id) => (None, Some(self.strings.name(id).to_owned())),
        };
        LicensePair {
            adam_id: self.strings.name(key.asset.adam_id).to_owned(),
            pricing_param: key.asset.pricing,
            serial_number,
            client_user_id,
        }
    }

    // ------------------------------------------------------------ confirmed changes

    /// Apple confirmed an assignment: record it and move one license from available to assigned.
    /// A sync may have listed the pair already while its counts were read before it was made:
    /// the license is taken off anyway (counting it twice only under-uses the pool) and the
    /// counts are read again soon.
    pub fn add_assignment(&mut self, key: AssignmentKey, now: Millis, changes: &mut MirrorChanges) {
        self.journal(key, true);
        if !self.set_present(key, Some(since_at(now)), changes) {
            self.counts_stale = true;
        }
        self.shift_counts(&key.asset, 1, changes);
    }

    /// Apple confirmed a release: the pair goes. Its license is not counted free here: Apple's
    /// counts may already include the release, or the release freed nothing (the pair was gone
    /// already), and a license counted free that is not would be assigned beyond the pool. The
    /// counts are read again soon instead.
    pub fn remove_assignment(&mut self, key: &AssignmentKey, changes: &mut MirrorChanges) {
        self.journal(*key, false);
        if self.set_present(*key, None, changes) {
            self.counts_stale = true;
        }
    }

    /// Apple's answer contradicts the counts: read them again soon.
    pub fn doubt_counts(&mut self) {
        self.counts_stale = true;
    }

    /// Whether the counts may be off since the last call (a release, a confirmation during a
    /// sync): read them again soon.
    pub fn counts_stale(&self) -> bool {
        self.counts_stale
    }

    pub fn take_counts_stale(&mut self) -> bool {
        std::mem::take(&mut self.counts_stale)
    }

    fn shift_counts(&mut self, asset: &AssetKey, assigned: i64, changes: &mut MirrorChanges) {
        if let Some(counts) = self.assets.get_mut(asset) {
            counts.assigned_count += assigned;
            if !counts.unlimited() {
                counts.available_count -= assigned;
            }
            changes.assets.insert(*asset);
        }
    }

    /// `ASSET_COUNT`: licenses purchased (positive) or refunded / transferred away (negative).
    pub fn apply_count_delta(&mut self, asset: &AssetKey, delta: i64, changes: &mut MirrorChanges) {
        if let Some(counts) = self.assets.get_mut(asset) {
            if !counts.unlimited() {
                counts.total_count += delta;
                counts.available_count += delta;
                changes.assets.insert(*asset);
            }
        }
    }

    /// Every asset with its counts, by key.
    pub fn assets(&self) -> impl Iterator<Item = (&AssetKey, &AssetCounts)> {
        self.assets.iter()
    }

    pub fn counts(&self) -> (usize, usize, usize) {
        (self.assets.len(), self.assignments.len(), self.users.len())
    }
}
