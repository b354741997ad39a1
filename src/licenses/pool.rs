//! License pools: how many licenses of an asset planning may still ask for, Apple's refusals for
//! lack of licenses (9709), and the shortfalls and low counts reported to the host.

use std::collections::{BTreeMap, BTreeSet};

use crate::apple::wire::AssetCounts;
use crate::contract::event::Event;
use crate::effects::{AccountEffects, Env};
use crate::mirror::Mirror;
use crate::vocab::AssetKey;

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

/// The pool state of one account's assets.
#[derive(Debug, Clone, Default)]
pub struct Pool {
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
    /// Assets the last whole-account plan (or a refusal) found short, by how many licenses (for
    /// `explain` and `appCounts`; kept while the counts are read again, until a plan finds enough).
    short: BTreeMap<AssetKey, usize>,
    /// Assets whose low count was reported (again after the counts were read again).
    reported_low: BTreeSet<AssetKey>,
}

impl Pool {
    /// A full refresh read every count: every asset Apple refused is tried again (at most daily,
    /// when Apple's counts stay the same and it refused twice).
    pub fn forget_refusals(&mut self) {
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
    }

    /// How many more licenses of `asset` planning may ask for, with `in_flight` of them already
    /// spoken for by associations in flight.
    pub fn available(&self, asset: &AssetKey, counts: &AssetCounts, in_flight: i64) -> i64 {
        if self.exhausted.contains_key(asset) {
            0
        } else if counts.unlimited() {
            i64::MAX
        } else {
            (counts.available_count - in_flight).max(0)
        }
    }

    /// A whole-account plan found these assets short by so many licenses (0: not short), for every
    /// asset targets wait for: `insufficientLicenses` when a shortfall is new or changed, and with
    /// `shortBy` 0 when an asset reported short has enough again (or nobody waits for it any more):
    /// the waiting targets are being assigned.
    pub fn shortfalls(&mut self, found: BTreeMap<AssetKey, usize>, mirror: &Mirror, fx: &mut AccountEffects<'_>) {
        let resolved: Vec<AssetKey> = self.short.keys().filter(|asset| found.get(asset).is_none_or(|&n| n == 0)).copied().collect();
        for asset in resolved {
            self.short.remove(&asset);
            self.reported_short.remove(&asset);
            fx.event(insufficient(fx.account_id(), asset, 0, mirror));
        }
        for (asset, short_by) in found.into_iter().filter(|&(_, n)| n > 0) {
            self.short.insert(asset, short_by);
            if self.reported_short.insert(asset, short_by as i64) != Some(short_by as i64) {
                fx.event(insufficient(fx.account_id(), asset, short_by, mirror));
            }
        }
    }

    /// How many licenses of `asset` the last whole-account plan (or refusal) found missing.
    pub fn short_by(&self, asset: &AssetKey) -> usize {
        self.short.get(asset).copied().unwrap_or(0)
    }

    /// Planning leaves `remaining` licenses of `asset` (not free): `lowLicenses` once it is at or
    /// below the threshold, until the counts are read again.
    pub fn remaining(&mut self, asset: AssetKey, remaining: i64, mirror: &Mirror, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        let threshold = env.config.low_license_threshold;
        if remaining <= threshold && self.reported_low.insert(asset) {
            fx.event(Event::LowLicenses {
                account_id: fx.account_id().to_owned(),
                adam_id: mirror.name(asset.adam_id).to_owned(),
                pricing_param: asset.pricing,
                available: remaining,
                threshold,
            });
        }
    }

    /// The assets found short (see [`Pool::short_by`]).
    pub fn short_assets(&self) -> impl Iterator<Item = AssetKey> + '_ {
        self.short.keys().copied()
    }

    /// Apple refused an association of `asset` for lack of licenses, with `in_flight` licenses of
    /// it spoken for. When the counts said a license was free, they are read again at once (a
    /// purchase or transfer Apple has not counted yet), and the refresh retries once; a second
    /// refusal at the same count waits for the counts to move.
    pub fn refused(&mut self, asset: AssetKey, message: &str, mirror: &mut Mirror, in_flight: i64) {
        *self.refused_now.entry(asset).or_default() += 1;
        let available = mirror.asset(&asset).map_or(0, |c| if c.unlimited() { i64::MAX } else { c.available_count });
        let contradicts = available > in_flight;
        let retry_on_refresh = contradicts && self.retried_at.get(&asset) != Some(&available);
        if retry_on_refresh {
            mirror.doubt_counts();
        }
        self.exhausted.insert(asset, PoolRefusal { message: message.to_owned(), available_then: available, retry_on_refresh });
    }

    /// `insufficientLicenses` for the refusals of the outcome just applied, one per asset.
    pub fn report_refusals(&mut self, mirror: &Mirror, fx: &mut AccountEffects<'_>) {
        for (asset, short_by) in std::mem::take(&mut self.refused_now) {
            self.reported_short.insert(asset, short_by as i64);
            self.short.insert(asset, short_by);
            fx.event(insufficient(fx.account_id(), asset, short_by, mirror));
        }
    }

    /// Whether targets wait for licenses (a shortfall or a refusal): a freed license may serve them.
    pub fn anyone_waiting(&self) -> bool {
        !(self.reported_short.is_empty() && self.exhausted.is_empty())
    }

    /// Why `asset` is not assigned for lack of licenses, if that is why.
    pub fn explain(&self, asset: &AssetKey) -> Option<String> {
        if let Some(refusal) = self.exhausted.get(asset) {
            let next = if refusal.retry_on_refresh {
                "the license counts are being read again, and the assignment is retried if they allow it"
            } else {
                "it is retried when the license counts change"
            };
            return Some(format!("Apple refused the assignment for lack of licenses (9709: {}); {next}", refusal.message));
        }
        self.short.contains_key(asset).then(|| "not enough licenses available".to_owned())
    }
}

/// `insufficientLicenses` for `asset`: `short_by` 0 says the shortfall is over.
fn insufficient(account_id: &str, asset: AssetKey, short_by: usize, mirror: &Mirror) -> Event {
    Event::InsufficientLicenses {
        account_id: account_id.to_owned(),
        adam_id: mirror.name(asset.adam_id).to_owned(),
        pricing_param: asset.pricing,
        short_by,
    }
}
