//! The license usage reports, for one account or all of them (in account id order): per app
//! (purchased, used by us, used by others, pending, available) and per assignment (target, app,
//! ours or not, confirmed since, the policy that wants it). The assignment report is read a page
//! at a time after a cursor, so a million rows never sit in one answer.

use super::Engine;
use crate::account::Account;
use crate::contract::error::EngineError;
use super::read_model::{app_counts, check_page_limit};
use crate::contract::views::{AppReportRow, AssignmentReportPage, AssignmentReportRow, ReportPageQuery};
use crate::mirror::Since;
use crate::vocab::{AssetKey, AssignmentKey, PricingParam, Target};

impl Engine {
    /// Every app of the account (`None`: of every account), by account id, adam id and pricing.
    pub fn app_report(&self, account_id: Option<&str>) -> Result<Vec<AppReportRow>, EngineError> {
        let mut rows = Vec::new();
        for account in self.report_accounts(account_id)? {
            let usage = account.licenses.app_usage(&account.mirror);
            // The counts in `appCounts`' order (adam id, pricing), with their use.
            for view in app_counts(&account.mirror, |_| 0) {
                let asset = account.mirror.lookup(&view.adam_id).map(|id| AssetKey { adam_id: id, pricing: view.pricing_param });
                let used = asset.and_then(|asset| usage.get(&asset)).copied().unwrap_or_default();
                rows.push(AppReportRow {
                    account_id: account.id.clone(),
                    adam_id: view.adam_id,
                    pricing_param: view.pricing_param,
                    product_type: view.product_type,
                    total_count: view.total_count,
                    used_by_us: used.ours,
                    used_by_others: used.others,
                    pending: used.pending,
                    available_count: view.available_count,
                    unlimited: view.unlimited,
                });
            }
        }
        Ok(rows)
    }

    /// The assignments Apple holds for the account (`None`: for every account), as of the last
    /// sync, in a stable order: up to `query.limit` rows after `query.after`, and the cursor of
    /// the rest. Rows added or removed between pages are seen or not; none is seen twice. A cursor
    /// is valid for the engine that gave it (not after a restart) and for the same `account_id`.
    pub fn assignment_report(&self, account_id: Option<&str>, query: &ReportPageQuery) -> Result<AssignmentReportPage, EngineError> {
        check_page_limit(query.limit)?;
        let cursor = query.after.as_deref().map(Cursor::parse).transpose()?;
        if let (Some(id), Some(cursor)) = (account_id, &cursor) {
            if cursor.account_id != id {
                return Err(EngineError::InvalidInput("the cursor belongs to the report of another account".to_owned()));
            }
        }
        let in_scope = self.report_accounts(account_id)?;
        let total = match &query.adam_id {
            None => in_scope.iter().map(|a| a.mirror.counts().1).sum(),
            Some(_) => in_scope.iter().map(|a| a.mirror.assignments_after(None).filter(app_filter(a, query)).count()).sum(),
        };
        // From the cursor's account on (the accounts are in id order).
        let from = cursor.as_ref().map_or(0, |c| in_scope.partition_point(|a| a.id.as_str() < c.account_id));
        let mut rows = Vec::with_capacity(query.limit.min(total));
        let (mut last, mut next): (Option<Cursor<'_>>, _) = (None, None);
        'accounts: for account in &in_scope[from..] {
            let after = cursor.as_ref().filter(|c| c.account_id == account.id).map(|c| c.key);
            for (key, since) in account.mirror.assignments_after(after).filter(app_filter(account, query)) {
                if rows.len() == query.limit {
                    next = last.map(|last| last.to_string());
                    break 'accounts;
                }
                rows.push(report_row(self, account, key, since));
                last = Some(Cursor { account_id: &account.id, key: *key });
            }
        }
        Ok(AssignmentReportPage { rows, next, total })
    }

    /// The account `account_id`, or every account (`None`), in id order.
    fn report_accounts(&self, account_id: Option<&str>) -> Result<Vec<&Account>, EngineError> {
        match account_id {
            Some(id) => Ok(vec![self.account(id)?]),
            None => Ok(self.accounts.values().collect()),
        }
    }
}

/// Whether an assignment of `account` is of the app the query asks for (any when it names none).
fn app_filter(account: &Account, query: &ReportPageQuery) -> impl Fn(&(&AssignmentKey, Since)) -> bool {
    // The adam id as the account interned it; `Some(None)`: the account never saw it, nothing matches.
    let adam_id = query.adam_id.as_deref().map(|adam_id| account.mirror.lookup(adam_id));
    let pricing = query.pricing_param;
    move |(key, _)| {
        adam_id.is_none_or(|id| id == Some(key.asset.adam_id)) && pricing.is_none_or(|pricing| key.asset.pricing == pricing)
    }
}

fn report_row(engine: &Engine, account: &Account, key: &AssignmentKey, since: Since) -> AssignmentReportRow {
    let pair = account.mirror.pair(key);
    let (ours, policy) = account.licenses.assignment_usage(key, &engine.facts, &account.mirror);
    AssignmentReportRow {
        account_id: account.id.clone(),
        adam_id: pair.adam_id,
        pricing_param: pair.pricing_param,
        serial_number: pair.serial_number,
        client_user_id: pair.client_user_id,
        ours,
        confirmed_since: (since != 0).then(|| u64::from(since) * 1000),
        policy_id: policy.map(|id| account.mirror.name(id).to_owned()),
    }
}

/// A position in the assignment report: an account and an assignment key of its mirror (interned
/// ids, valid while the engine runs), written `d12.5.0.<account id>` (a device or user and its id,
/// the adam id, the pricing, then the account id, which may hold any character).
struct Cursor<'a> {
    account_id: &'a str,
    key: AssignmentKey,
}

impl<'a> Cursor<'a> {
    fn parse(text: &'a str) -> Result<Self, EngineError> {
        let invalid = || EngineError::InvalidInput("after is not a cursor this engine's report gave".to_owned());
        let mut parts = text.splitn(4, '.');
        let (Some(target), Some(adam_id), Some(pricing), Some(account_id)) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let number = |digits: &str| digits.parse::<u32>().map_err(|_| invalid());
        let target = match target.split_at_checked(1) {
            Some(("d", id)) => Target::Device(number(id)?),
            Some(("u", id)) => Target::User(number(id)?),
            _ => return Err(invalid()),
        };
        let pricing = match pricing {
            "0" => PricingParam::Stdq,
            "1" => PricingParam::Plus,
            _ => return Err(invalid()),
        };
        Ok(Cursor { account_id, key: AssignmentKey { target, asset: AssetKey { adam_id: number(adam_id)?, pricing } } })
    }
}

impl std::fmt::Display for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, id) = match self.key.target {
            Target::Device(id) => ('d', id),
            Target::User(id) => ('u', id),
        };
        let pricing = match self.key.asset.pricing {
            PricingParam::Stdq => 0,
            PricingParam::Plus => 1,
        };
        write!(f, "{kind}{id}.{}.{pricing}.{}", self.key.asset.adam_id, self.account_id)
    }
}
