//! One sample of every type crossing the boundary, for [`super::describe`]. They are struct literals,
//! so a field added to or removed from a type fails to compile here until its sample follows; every
//! `Option` holds a value and every list an item, so that the recorder sees each field's type.

use std::collections::BTreeMap;

use crate::{AppPolicy, EngineConfig, LicenseType, MdmInfo, NotificationConfig, PricingParam};
use crate::base::secret::Secret;
use crate::contract::event::Event;
use crate::contract::output::{Method, Output, PersistOp, Request};
use crate::contract::preview::{AccountPreview, AppPreview, PreviewFigures, PreviewReport, ReleaseReason};
use crate::contract::views::{
    AccountView, AppCountInAccount, AppCountView, AppReportRow, AppTotalView, AssignmentPage, AssignmentQuery, AssignmentReportPage,
    AssignmentReportRow, AssignmentView, ReportPageQuery, EngineStats, ExplainQuery, LicenseExplanation,
    PendingOperationView, TokenInfo, Wakeup,
};
use crate::persist::{Record, SettingsRecord, StoredRecord, StoredRecordJson};
use crate::persist::keys::{AccountKeyRanges, ValueKeyed};
use crate::vocab::{AccountStatus, OperationKind, ProductType, SyncKind};

/// A sample of every variant of `$enum`: the `match` fails to compile when the enum gains a variant
/// that has no sample here.
macro_rules! every_variant {
    ($enum:ident: $($variant:ident $({ $($field:ident: $value:expr),* $(,)? })? $(( $inner:expr ))?),* $(,)?) => {{
        fn _every_variant_has_a_sample(value: &$enum) {
            match value {
                $($enum::$variant { .. } => {})*
            }
        }
        vec![$($enum::$variant $({ $($field: $value),* })? $(( $inner ))?),*]
    }};
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

pub fn mdm_info() -> MdmInfo {
    MdmInfo { id: s("mdm-1"), name: s("Acme MDM"), metadata: s("4.2") }
}

pub fn notification_config() -> NotificationConfig {
    NotificationConfig { url: s("https://mdm.example/apple"), auth_token: Secret::new(s("0123456789abcdef")) }
}

pub fn engine_config() -> EngineConfig {
    // Every field differs from its default, so that reading it back shows the reader read it.
    EngineConfig {
        mdm_info: mdm_info(),
        service_config_url: s("https://apple.example/service/config"),
        seed: 7,
        service_config_interval_ms: 60_001,
        delta_sync_interval_ms: 60_002,
        full_refresh_interval_ms: 60_003,
        max_pages_in_flight: 2,
        backoff_base_ms: 1_001,
        backoff_max_ms: 60_004,
        rate_limit_margin_ms: 100,
        notifications: Some(notification_config()),
        low_license_threshold: 3,
        license_removal_notification: true,
        reconcile_interval_ms: 60_005,
        unconfirmed_settle_ms: 60_006,
        coalesce_ms: 2_000,
        coalesce_quiet_ms: 500,
    }
}

pub fn app_policy() -> AppPolicy {
    AppPolicy {
        policy_id: s("p1"),
        name: s("Pages for grade 5"),
        account_id: s("a1"),
        adam_id: s("361309726"),
        pricing_param: PricingParam::Stdq,
        license_type: LicenseType::Device,
        targets: [s("C02X")].into(),
    }
}

pub fn assignment_query() -> AssignmentQuery {
    AssignmentQuery {
        adam_id: some("361309726"),
        serial_number: some("C02X"),
        client_user_id: some("u1"),
        offset: 10,
        limit: 20,
    }
}

pub fn explain_query() -> ExplainQuery {
    ExplainQuery { adam_id: s("361309726"), pricing_param: PricingParam::Stdq, serial_number: some("C02X"), client_user_id: some("u1") }
}

pub fn stored_record() -> StoredRecord {
    StoredRecord { key: s("settings"), value: serde_json::json!({"licenseRemovalNotification": true}) }
}

pub fn stored_record_json() -> StoredRecordJson {
    StoredRecordJson { key: s("settings"), json: s(r#"{"licenseRemovalNotification":true}"#) }
}

fn request() -> Request {
    Request {
        id: 1,
        account_id: some("a1"),
        purpose: "assetsPage",
        method: Method::Get,
        url: s("https://apple.example/assets"),
        headers: BTreeMap::from([(s("Authorization"), s("Bearer ***"))]),
        body: some("{}"),
    }
}

pub fn outputs() -> Vec<Output> {
    let event = Event::OwnershipClaimed { account_id: s("a1") };
    every_variant!(Output:
        Request(request()),
        Event { event: event },
        Persist { ops: persist_ops() },
        Timeout { at: 1 },
    )
}

pub fn persist_ops() -> Vec<PersistOp> {
    let value = Box::new(Record::Settings(SettingsRecord { license_removal_notification: true }));
    every_variant!(PersistOp:
        Put { key: s("settings"), value: value },
        Delete { key: s("settings") },
    )
}

pub fn events() -> Vec<Event> {
    let (a, adam, p) = (|| s("a1"), || s("361309726"), PricingParam::Stdq);
    every_variant!(Event:
        AccountStatusChanged { account_id: a(), status: AccountStatus::Active, reason: s("in sync") },
        TokenExpiring { account_id: a(), threshold_days: 30, expires_at: 1 },
        TestResult { account_id: a(), ok: true, message: s("ok"), location_name: some("School") },
        OwnershipLost { account_id: a(), owner_name: s("Rival MDM"), owner_id: s("rival") },
        OwnershipClaimed { account_id: a() },
        SyncStarted { account_id: a(), kind: SyncKind::Full },
        SyncProgress { account_id: a(), kind: SyncKind::Full, pages_done: 1, pages_total: 2 },
        SyncCompleted { account_id: a(), kind: SyncKind::Delta, assets: 1, assignments: 2, users: 3 },
        Backoff { account_id: some("a1"), until: 1, reason: s("Retry-After") },
        ServiceConfigUpdated { limits: BTreeMap::from([(s("maxAssets"), 25)]) },
        RequestFailed { account_id: some("a1"), purpose: s("assetsPage"), error_number: Some(9600), message: s("m") },
        LicenseReady { account_id: a(), adam_id: adam(), pricing_param: p, serial_number: some("C02X"), client_user_id: some("u1") },
        LicenseReleased {
            account_id: a(),
            adam_id: adam(),
            pricing_param: p,
            serial_number: some("C02X"),
            client_user_id: some("u1"),
            reason: s("left scope"),
        },
        NotifyUser { account_id: a(), adam_id: adam(), serial_number: some("C02X"), client_user_id: some("u1") },
        InsufficientLicenses { account_id: a(), adam_id: adam(), pricing_param: p, short_by: 3 },
        LowLicenses { account_id: a(), adam_id: adam(), pricing_param: p, available: 2, threshold: 5 },
        InviteUser { account_id: a(), client_user_id: s("u1"), email: some("u1@example.org"), invite_url: s("https://invite") },
        AssignmentFailed {
            account_id: a(),
            adam_id: adam(),
            pricing_param: p,
            serial_number: some("C02X"),
            client_user_id: some("u1"),
            error_number: Some(9709),
            message: s("m"),
        },
    )
}

pub fn account_view() -> AccountView {
    AccountView {
        account_id: s("a1"),
        name: s("Headquarters"),
        status: AccountStatus::Active,
        status_reason: s("in sync"),
        org_name: s("ORG1"),
        location_name: some("School"),
        country_code: some("US"),
        last_synced_at: Some(1),
        token_expires_at: 2,
        other_mdm_name: some("Rival MDM"),
        policy_ids: vec![s("p1")],
    }
}

pub fn app_total_view() -> AppTotalView {
    let share = |account: &str, total: i64, assigned: i64| AppCountInAccount {
        account_id: s(account),
        total_count: total,
        assigned_count: assigned,
        available_count: total - assigned,
        retired_count: 0,
    };
    AppTotalView {
        adam_id: s("361309726"),
        pricing_param: PricingParam::Stdq,
        product_type: ProductType::App,
        supported_platforms: vec![s("iOS"), s("macOS")],
        total_count: 15,
        assigned_count: 6,
        available_count: 9,
        retired_count: 0,
        unlimited: false,
        accounts: vec![share("a1", 10, 4), share("a2", 5, 2)],
    }
}

pub fn app_count_view() -> AppCountView {
    AppCountView {
        adam_id: s("361309726"),
        pricing_param: PricingParam::Stdq,
        product_type: ProductType::App,
        supported_platforms: vec![s("iOS")],
        total_count: 10,
        assigned_count: 4,
        available_count: 6,
        retired_count: 0,
        device_assignable: true,
        revocable: true,
        unlimited: false,
        short_by: 0,
    }
}

pub fn assignment_view() -> AssignmentView {
    AssignmentView { adam_id: s("361309726"), pricing_param: PricingParam::Stdq, serial_number: some("C02X"), client_user_id: some("u1") }
}

pub fn assignment_page() -> AssignmentPage {
    AssignmentPage { total: 1, offset: 0, items: vec![assignment_view()] }
}

pub fn report_page_query() -> ReportPageQuery {
    ReportPageQuery { after: some("d3.1.0.a1"), adam_id: some("361309726"), pricing_param: Some(PricingParam::Plus), limit: 500 }
}

pub fn app_report_row() -> AppReportRow {
    AppReportRow {
        account_id: s("a1"),
        adam_id: s("361309726"),
        pricing_param: PricingParam::Stdq,
        product_type: ProductType::App,
        total_count: 10,
        used_by_us: 3,
        used_by_others: 1,
        pending: 2,
        available_count: 6,
        unlimited: false,
    }
}

pub fn assignment_report_page() -> AssignmentReportPage {
    let row = AssignmentReportRow {
        account_id: s("a1"),
        adam_id: s("361309726"),
        pricing_param: PricingParam::Stdq,
        serial_number: some("C02X"),
        client_user_id: some("u1"),
        ours: true,
        confirmed_since: Some(1_700_000_000_000),
        policy_id: some("p1"),
    };
    AssignmentReportPage { rows: vec![row], next: some("d3.1.0.a1"), total: 1 }
}

pub fn wakeup() -> Wakeup {
    Wakeup { at: 1, reason: s("delta sync"), account_id: some("a1") }
}

pub fn engine_stats() -> EngineStats {
    EngineStats { requests_issued: 1, responses_handled: 1, unknown_responses: 0, requests_in_flight: 0, clock_rewinds: 0 }
}

pub fn token_info() -> TokenInfo {
    TokenInfo { org_name: s("ORG1"), expires_at: 1 }
}

pub fn pending_operation() -> PendingOperationView {
    PendingOperationView {
        operation_id: 1,
        kind: OperationKind::Associate,
        event_id: some("e1"),
        state: "pending",
        assets: 1,
        targets: 2,
        submitted_at: Some(1),
        reason: s("policy p1"),
    }
}

pub fn license_explanation() -> LicenseExplanation {
    LicenseExplanation { has_license: true, reason: s("assigned by this MDM") }
}

pub fn value_keyed() -> ValueKeyed {
    ValueKeyed { prefix: "policy/", field: "accountId" }
}

pub fn account_key_ranges() -> AccountKeyRanges {
    AccountKeyRanges { keys: vec![s("account/a1")], prefixes: vec![s("targets/a1/")], by_value: vec![value_keyed()] }
}

pub fn preview_report() -> PreviewReport {
    let figures = PreviewFigures { assign: 0, release: 250, short_by: 0, other_mdm_released: 0, requests: 1, devices: 250, users: 0 };
    PreviewReport {
        totals: figures.clone(),
        accounts: vec![AccountPreview {
            account_id: s("a1"),
            figures: figures.clone(),
            max_request_per_second: 15,
            wait_ms: 1_000,
            wait_reason: some("Retry-After"),
            estimated_ms: 1_067,
        }],
        apps: vec![AppPreview { account_id: s("a1"), adam_id: s("361309726"), pricing_param: PricingParam::Stdq, figures }],
        releases_by_reason: vec![ReleaseReason { reason: s("left the scope of policy Keynote"), count: 250 }],
        estimated_ms: 1_067,
    }
}
