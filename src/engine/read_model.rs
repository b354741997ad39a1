//! The read models: the views the UI asks for, built from the engine's state without I/O (the
//! view types are the contract's, [`crate::contract::views`]).

use std::collections::BTreeMap;

use super::licensing::key_for;
use super::Engine;
use crate::apple::wire::AssetCounts;
use crate::apple::ServiceConfig;
use crate::contract::error::EngineError;
use crate::contract::views::{
    AccountView, AppCountInAccount, AppCountView, AppTotalView, AssignmentPage, AssignmentQuery, EngineStats, ExplainQuery,
    LicenseExplanation, PendingOperationView, Wakeup, MAX_ASSIGNMENT_PAGE,
};
use crate::licenses::desired::Decision;
use crate::licenses::operations::OperationState;
use crate::mirror::Mirror;
use crate::policy::{Policy, Scope};
use crate::vocab::{AssetKey, AssignmentKey, LicenseType, OperationKind, PricingParam, SyncKind, Target};

impl Engine {
    /// Every account with its status, for the account list.
    pub fn accounts(&self) -> Vec<AccountView> {
        let now = self.clock.now();
        self.accounts
            .values()
            .map(|a| {
                let (status, status_reason) = a.status(now);
                let (_, location_name, country_code) = a.location();
                AccountView {
                    account_id: a.id.clone(),
                    name: a.name.clone(),
                    status,
                    status_reason,
                    org_name: a.token().org_name.clone(),
                    location_name: location_name.map(str::to_owned),
                    country_code: country_code.map(str::to_owned),
                    last_synced_at: a.last_synced_at(),
                    token_expires_at: a.token().expires_at,
                    other_mdm_name: a.other_mdm_name(),
                    policy_ids: self.policies.values().filter(|p| p.account_id == a.id).map(|p| p.policy_id.clone()).collect(),
                }
            })
            .collect()
    }

    /// License counts per app (purchased / used / available) of one account, as of the last sync.
    pub fn app_counts(&self, account_id: &str) -> Result<Vec<AppCountView>, EngineError> {
        let account = self.account(account_id)?;
        Ok(app_counts(&account.mirror, |asset| account.licenses.short_by(asset)))
    }

    /// License counts per app across every account (one token each), with each account's share: for
    /// a view of an app bought under several tokens. Call when the UI shows it; the cost is that of
    /// every account's assets.
    pub fn app_totals(&self) -> Vec<AppTotalView> {
        let mut totals: BTreeMap<(String, PricingParam), AppTotalView> = BTreeMap::new();
        for account in self.accounts.values() {
            for (key, counts) in account.mirror.assets() {
                let adam_id = account.mirror.name(key.adam_id);
                let total = totals.entry((adam_id.to_owned(), key.pricing)).or_insert_with(|| AppTotalView {
                    adam_id: adam_id.to_owned(),
                    pricing_param: key.pricing,
                    product_type: counts.product_type,
                    supported_platforms: counts.supported_platforms.clone(),
                    total_count: 0,
                    assigned_count: 0,
                    available_count: 0,
                    retired_count: 0,
                    unlimited: false,
                    accounts: Vec::new(),
                });
                total.unlimited |= counts.unlimited();
                let unlimited = total.unlimited;
                let sum = |a: i64, b: i64| if unlimited { AssetCounts::UNLIMITED } else { a.saturating_add(b) };
                total.total_count = sum(total.total_count, counts.total_count);
                total.available_count = sum(total.available_count, counts.available_count);
                total.assigned_count = total.assigned_count.saturating_add(counts.assigned_count);
                total.retired_count = total.retired_count.saturating_add(counts.retired_count);
                total.accounts.push(AppCountInAccount {
                    account_id: account.id.clone(),
                    total_count: counts.total_count,
                    assigned_count: counts.assigned_count,
                    available_count: counts.available_count,
                    retired_count: counts.retired_count,
                });
            }
        }
        totals.into_values().collect()
    }

    /// Assignments of one account, filtered and paged, as of the last sync.
    pub fn assignments(&self, account_id: &str, query: &AssignmentQuery) -> Result<AssignmentPage, EngineError> {
        check_page_limit(query.limit)?;
        Ok(assignments(&self.account(account_id)?.mirror, query))
    }

    /// Progress of the sync running for an account: (kind, pages done, pages known).
    pub fn sync_progress(&self, account_id: &str) -> Result<Option<(SyncKind, u32, u32)>, EngineError> {
        Ok(self.account(account_id)?.sync_progress())
    }

    /// When the engine next wants to be called, and why.
    pub fn next_wakeup(&self) -> Wakeup {
        let now = self.clock.now();
        let mut best =
            Wakeup { at: self.service_fetch.wakeup(now, &self.config), reason: "service config refresh".to_owned(), account_id: None };
        if self.next_reconcile_at < best.at {
            best = Wakeup { at: self.next_reconcile_at, reason: "Reconcile".to_owned(), account_id: None };
        }
        if let Some((at, reason, account_id)) = self.accounts.next_wakeup(now, &self.config, &self.service.limits) {
            if at < best.at {
                best = Wakeup { at, reason: reason.to_owned(), account_id: Some(account_id.to_owned()) };
            }
        }
        best.at = best.at.max(now);
        best
    }

    /// Counters for monitoring: requests issued, answers handled, unknown answers dropped, requests in flight.
    pub fn stats(&self) -> EngineStats {
        EngineStats { requests_in_flight: self.in_flight.len(), ..self.stats.clone() }
    }

    /// The service config in force (defaults until Apple's first answer).
    pub fn service_config(&self) -> &ServiceConfig {
        &self.service
    }

    /// Operations of an account that Apple has not finished (or that are not sent yet).
    pub fn pending_operations(&self, account_id: &str) -> Result<Vec<PendingOperationView>, EngineError> {
        let account = self.account(account_id)?;
        Ok(account
            .licenses
            .operations()
            .map(|op| {
                let (state, submitted_at) = match &op.state {
                    OperationState::Queued => ("queued", None),
                    OperationState::Submitting { sent_at } => ("submitting", Some(*sent_at)),
                    OperationState::Pending { submitted_at, .. } => ("pending", Some(*submitted_at)),
                    OperationState::Unconfirmed { .. } => ("unconfirmed", None),
                };
                PendingOperationView {
                    operation_id: op.id,
                    kind: op.kind,
                    event_id: op.event_id().map(str::to_owned),
                    state,
                    assets: op.assets.len(),
                    targets: if op.kind == OperationKind::CreateUsers { op.new_users.len() } else { op.targets.len() },
                    submitted_at,
                    reason: op.reason.clone(),
                }
            })
            .collect())
    }

    /// Why a device or user has or lacks a license of an app. Names the engine has not seen
    /// are remembered (interned) by the question.
    pub fn explain(&mut self, account_id: &str, query: &ExplainQuery) -> Result<LicenseExplanation, EngineError> {
        let pair = query.pair();
        let Some(target_name) = pair.target_name().map(str::to_owned) else {
            return Err(EngineError::InvalidInput("give exactly one of serialNumber and clientUserId".to_owned()));
        };
        let license_type = if pair.serial_number.is_some() { LicenseType::Device } else { LicenseType::User };
        let account = self.accounts.get_mut(account_id).ok_or_else(|| EngineError::UnknownAccount(account_id.to_owned()))?;
        let target_id = account.mirror.lookup(&target_name);
        let covering = self.policies.values().filter(|p| {
            p.account_id == account_id
                && p.adam_id == pair.adam_id
                && p.pricing_param == pair.pricing_param
                && p.license_type == license_type
                && target_id.is_some_and(|id| p.scope.contains(id, &target_name))
        });
        let decisions: Vec<Decision> =
            covering.map(|p| account.licenses.decide(p, &target_name, &self.facts, &mut account.mirror)).collect();
        let probe = Policy {
            policy_id: String::new(),
            name: String::new(),
            account_id: account_id.to_owned(),
            adam_id: pair.adam_id,
            pricing_param: pair.pricing_param,
            license_type,
            scope: Scope::default(),
        };
        let key = key_for(&mut account.mirror, &probe, &target_name);
        let known = account.mirror.asset(&key.asset).is_some() || account.mirror.has_assignment(&key);
        let (has_license, reason) = account.licenses.explain(known.then_some(key), &decisions, &account.mirror);
        Ok(LicenseExplanation { has_license, reason })
    }
}

/// A page of assignments holds 1 to [`MAX_ASSIGNMENT_PAGE`] rows.
pub(super) fn check_page_limit(limit: usize) -> Result<(), EngineError> {
    if limit == 0 || limit > MAX_ASSIGNMENT_PAGE {
        return Err(EngineError::InvalidInput(format!("limit must be 1..={MAX_ASSIGNMENT_PAGE}")));
    }
    Ok(())
}

/// The counts of every asset, by adam id and pricing (an order that survives a restart).
pub(super) fn app_counts(mirror: &Mirror, short_by: impl Fn(&AssetKey) -> usize) -> Vec<AppCountView> {
    let mut views: Vec<AppCountView> = mirror
        .assets()
        .map(|(key, counts)| AppCountView::new(mirror.name(key.adam_id).to_owned(), key.pricing, counts, short_by(key)))
        .collect();
    views.sort_by(|a, b| (&a.adam_id, a.pricing_param).cmp(&(&b.adam_id, b.pricing_param)));
    views
}

/// Assignments matching `query`, in a stable order, one page at a time.
fn assignments(mirror: &Mirror, query: &AssignmentQuery) -> AssignmentPage {
    let empty = || AssignmentPage { total: 0, offset: query.offset, items: Vec::new() };
    // A filter naming a string this account never saw matches nothing.
    let resolve = |text: &Option<String>| match text {
        None => Ok(None),
        Some(t) => mirror.lookup(t).map(Some).ok_or(()),
    };
    let (Ok(adam), Ok(serial), Ok(user)) = (resolve(&query.adam_id), resolve(&query.serial_number), resolve(&query.client_user_id)) else {
        return empty();
    };
    let matches = |key: &&AssignmentKey| {
        adam.is_none_or(|a| key.asset.adam_id == a)
            && serial.is_none_or(|s| key.target == Target::Device(s))
            && user.is_none_or(|u| key.target == Target::User(u))
    };
    // A device's or user's assignments are one range.
    let keys: Box<dyn Iterator<Item = &AssignmentKey>> = match (serial, user) {
        (Some(s), None) => Box::new(mirror.assignments_of(Target::Device(s))),
        (None, Some(u)) => Box::new(mirror.assignments_of(Target::User(u))),
        _ => Box::new(mirror.assignments_iter()),
    };
    let mut total = 0;
    let mut items = Vec::new();
    for key in keys.filter(matches) {
        if total >= query.offset && items.len() < query.limit {
            items.push(mirror.pair(key).into());
        }
        total += 1;
    }
    AssignmentPage { total, offset: query.offset, items }
}
