//! When the account syncs: a full refresh on add, every `fullRefreshIntervalMs` and on demand; a
//! delta sync every `deltaSyncIntervalMs` from the stored `versionId` cursors, sooner when the
//! counts may be off or unanswered associations wait to be confirmed. Owns the sync running (its
//! pages are requested and received here) and what a completed sync means for the mirror and
//! the licenses.

use crate::account::{Account, AccountRequest, Purpose};
use crate::account::answers::parse;
use crate::account::sync::{PageMeta, PageRequest, Resource, SyncRun};
use crate::apple::errors::{INVALID_VERSION_ID, PAGE_INDEX_OUT_OF_RANGE};
use crate::apple::wire::{self, Envelope, Page};
use crate::base::time::Millis;
use crate::contract::config::EngineConfig;
use crate::contract::event::Event;
use crate::contract::output::Method;
use crate::effects::{AccountEffects, Env};
use crate::vocab::{Cursors, SyncKind};

/// The account's sync schedule and the sync running.
#[derive(Debug, Clone)]
pub struct SyncSchedule {
    /// Where the next delta sync starts (durable).
    pub cursors: Cursors,
    /// When the last sync, and the last trustworthy full refresh, completed (durable).
    pub last_synced_at: Option<Millis>,
    pub last_full_refresh_at: Option<Millis>,
    /// The store holds the whole mirror as of `cursors` (else a restart runs a full refresh) (durable).
    pub mirror_stored: bool,
    next_full_at: Millis,
    next_delta_at: Millis,
    refresh_requested: bool,
    run: Option<SyncRun>,
    /// When the current (or last) sync started.
    started_at: Millis,
    /// Whether an operation of ours was at Apple during the current sync.
    overlapped: bool,
    next_run_id: u64,
}

impl SyncSchedule {
    /// The schedule as stored: a full refresh is due at once (see [`SyncSchedule::restored`]).
    pub fn new(cursors: Cursors, last_synced_at: Option<Millis>, last_full_refresh_at: Option<Millis>, mirror_stored: bool) -> Self {
        Self {
            cursors,
            last_synced_at,
            last_full_refresh_at,
            mirror_stored,
            next_full_at: 0,
            next_delta_at: 0,
            refresh_requested: false,
            run: None,
            started_at: 0,
            overlapped: false,
            next_run_id: 1,
        }
    }

    /// Restored from the store: with the whole mirror stored, a delta sync catches up and the
    /// full refresh keeps its schedule.
    pub fn restored(&mut self, config: &EngineConfig) {
        if self.mirror_stored {
            self.next_full_at = self.last_full_refresh_at.unwrap_or(0) + config.full_refresh_interval_ms;
        }
    }

    /// A full refresh as soon as one may start.
    pub fn request_full(&mut self) {
        self.refresh_requested = true;
    }

    /// A delta sync no later than `now` (the counts may be off).
    pub fn delta_soon(&mut self, now: Millis) {
        self.next_delta_at = self.next_delta_at.min(now);
    }

    /// A delta sync at `now` (new users' invitation codes to read).
    pub fn delta_now(&mut self, now: Millis) {
        self.next_delta_at = now;
    }

    /// Forgets what was synced (the token is of another organization now).
    pub fn forget_history(&mut self) {
        self.cursors = Cursors::default();
        self.last_synced_at = None;
    }

    /// Abandons the sync running, if any; its kind.
    pub fn abandon_run(&mut self) -> Option<SyncKind> {
        self.run.take().map(|run| run.kind)
    }

    /// The kind of sync running.
    pub fn running(&self) -> Option<SyncKind> {
        self.run.as_ref().map(|run| run.kind)
    }

    /// Whether a sync runs.
    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// (kind, pages done, pages known) of the sync running.
    pub fn progress(&self) -> Option<(SyncKind, u32, u32)> {
        self.run.as_ref().map(|run| {
            let (done, total) = run.progress();
            (run.kind, done, total)
        })
    }

    /// Whether license decisions can be made: synced at least once, no full refresh running.
    pub fn allows_plan(&self) -> bool {
        self.last_synced_at.is_some() && self.running() != Some(SyncKind::Full)
    }

    /// Whether the sync running wants a page fetched now.
    pub fn wants_page(&self, max_in_flight: usize) -> bool {
        self.run.as_ref().is_some_and(|run| run.wants_page(max_in_flight))
    }

    /// An operation of ours left for Apple: a sync running now may miss what it changes.
    pub fn operation_sent(&mut self) {
        self.overlapped |= self.run.is_some();
    }

    /// Starts the sync due at `now`, if one is (none runs): a full refresh when asked for or due,
    /// else a delta when due or when unanswered associations wait (`confirming`); `overlapped`:
    /// an operation of ours is at Apple. Returns its kind.
    pub fn start_due(&mut self, now: Millis, confirming: bool, overlapped: bool) -> Option<SyncKind> {
        let kind = if self.refresh_requested || now >= self.next_full_at {
            SyncKind::Full
        } else if now >= self.next_delta_at || confirming {
            if self.cursors.allow_delta() { SyncKind::Delta } else { SyncKind::Full }
        } else {
            return None;
        };
        if kind == SyncKind::Full {
            self.refresh_requested = false;
        }
        self.run = Some(SyncRun::new(self.next_run_id, kind, &self.cursors));
        self.started_at = now;
        self.overlapped = overlapped;
        self.next_run_id += 1;
        Some(kind)
    }

    /// The earliest time [`SyncSchedule::start_due`] starts a sync without `confirming` (0: at once).
    pub fn next_start_at(&self) -> Millis {
        if self.refresh_requested { 0 } else { self.next_full_at.min(self.next_delta_at) }
    }

    /// When the next sync is due (none runs), and which.
    pub fn next_sync(&self, now: Millis) -> (Millis, &'static str) {
        if self.refresh_requested || self.next_full_at <= self.next_delta_at {
            (if self.refresh_requested { now } else { self.next_full_at }, "full refresh")
        } else {
            (self.next_delta_at, "delta sync")
        }
    }

    /// The next page the sync running wants, as a request (marked as in flight).
    pub fn next_page_request(&mut self, env: &Env<'_>) -> Option<AccountRequest> {
        let run = self.run.as_mut()?;
        let page = run.next_page(env.config.max_pages_in_flight as usize)?;
        let urls = &env.service.urls;
        let base = match page.resource {
            Resource::Assets => &urls.get_assets,
            Resource::Assignments => &urls.get_assignments,
            Resource::Users => &urls.get_users,
        };
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("pageIndex", &page.page_index.to_string());
        if let Some(since) = &page.since_version_id {
            query.append_pair("sinceVersionId", since);
        }
        let url = format!("{base}{}{}", if base.contains('?') { '&' } else { '?' }, query.finish());
        Some(AccountRequest { purpose: Purpose::Page { run: run.id, page }, method: Method::Get, url, body: None })
    }

    /// Whether an answer for sync run `run` is for the sync running (else it was abandoned).
    pub fn is_current(&self, run: u64) -> bool {
        self.run.as_ref().is_some_and(|r| r.id == run)
    }

    /// A page of run `run` failed in a way worth retrying: fetched again when the account may send.
    pub fn retry(&mut self, run: u64, page: &PageRequest) {
        if let Some(sync) = self.run.as_mut().filter(|s| s.id == run) {
            sync.page_failed(page.resource, page.page_index);
        }
    }

    /// The clock was set back to `now` after a glitch.
    pub fn clock_rewound(&mut self, now: Millis, config: &EngineConfig) {
        self.next_full_at = self.next_full_at.min(now + config.full_refresh_interval_ms);
        self.next_delta_at = self.next_delta_at.min(now + config.delta_sync_interval_ms);
        self.started_at = self.started_at.min(now);
    }
}

impl Account {
    /// A page arrived; `read`: its body read already (with its envelope), else it is read now.
    pub(super) fn page_succeeded(
        &mut self,
        page: &PageRequest,
        body: &str,
        read: Option<ReadPage<'_>>,
        env: &Env<'_>,
        fx: &mut AccountEffects<'_>,
    ) -> Result<(), String> {
        let read = match read {
            Some(read) => read,
            None => ReadPage::parse(page.resource, body)?,
        };
        let Some(run) = self.schedule.run.as_mut() else { return Ok(()) };
        let meta = match read {
            ReadPage::Assets(parsed) => {
                for asset in &parsed.records {
                    self.mirror.stage_asset(&mut run.staged, asset);
                }
                meta_of(parsed)
            }
            ReadPage::Assignments(parsed) => {
                for assignment in &parsed.records {
                    self.mirror.stage_assignment(&mut run.staged, assignment);
                }
                meta_of(parsed)
            }
            ReadPage::Users(parsed) => {
                for user in &parsed.records {
                    self.mirror.stage_user(&mut run.staged, user);
                }
                meta_of(parsed)
            }
        };
        run.page_received(page.resource, page.page_index, meta);
        self.after_page(env, fx);
        Ok(())
    }

    /// Apple refused a page; whether that was handled here (else the run is abandoned and the
    /// request retried with backoff).
    pub(super) fn page_rejected(&mut self, page: &PageRequest, error_number: Option<i64>, env: &Env<'_>, fx: &mut AccountEffects<'_>) -> bool {
        match error_number {
            Some(PAGE_INDEX_OUT_OF_RANGE) => {
                if let Some(run) = self.schedule.run.as_mut() {
                    run.page_beyond_end(page.resource, page.page_index);
                }
                self.after_page(env, fx);
                true
            }
            Some(INVALID_VERSION_ID) => {
                // The delta cursor is no longer valid: start over with a full refresh.
                self.schedule.run = None;
                self.schedule.cursors = Cursors::default();
                self.schedule.refresh_requested = true;
                fx.record_changed();
                true
            }
            _ => {
                // Abandon this run; it starts again once the backoff has passed.
                if self.schedule.abandon_run() == Some(SyncKind::Full) {
                    self.schedule.refresh_requested = true;
                }
                false
            }
        }
    }

    fn after_page(&mut self, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        let Some(run) = self.schedule.run.as_ref() else { return };
        let (pages_done, pages_total) = run.progress();
        fx.event(Event::SyncProgress { account_id: self.id.clone(), kind: run.kind, pages_done, pages_total });
        if run.is_complete() {
            self.finish_sync(env, fx);
        }
    }

    fn finish_sync(&mut self, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        let Some(run) = self.schedule.run.take() else { return };
        let cursors = run.cursors();
        let kind = run.kind;
        let now = env.now;
        let mut trustworthy = false;
        match kind {
            // Apple pages by index: an event of ours completing mid-traversal shifts later pages,
            // so such a traversal may miss assignments that exist. Nothing is removed on its word.
            SyncKind::Full if self.schedule.overlapped => self.mirror.merge(run.staged, now, &mut fx.changes().mirror),
            SyncKind::Full => {
                self.licenses.forget_pool_refusals();
                let held_before = self.licenses.ours_held(&self.mirror);
                self.mirror.replace(run.staged, now, &mut fx.changes().mirror);
                self.licenses.prune_ours(&held_before, &mut self.mirror, env, fx);
                trustworthy = true;
                self.schedule.next_full_at = now + env.config.full_refresh_interval_ms;
                self.schedule.last_full_refresh_at = Some(now);
            }
            SyncKind::Delta => self.mirror.merge(run.staged, now, &mut fx.changes().mirror),
        }
        let schedule = &mut self.schedule;
        schedule.cursors = Cursors {
            assignments: cursors.assignments.or(schedule.cursors.assignments.take()),
            users: cursors.users.or(schedule.cursors.users.take()),
        };
        schedule.next_delta_at = now + env.config.delta_sync_interval_ms;
        schedule.last_synced_at = Some(now);
        self.licenses.settle_unconfirmed(schedule.started_at, trustworthy, &mut self.mirror, env, fx);
        self.licenses.counts_changed(&self.mirror);
        fx.record_changed();
        let (assets, assignments, users) = self.mirror.counts();
        fx.event(Event::SyncCompleted { account_id: self.id.clone(), kind, assets, assignments, users });
    }
}

/// A page body read once, records and envelope.
pub(super) enum ReadPage<'a> {
    Assets(Page<wire::Asset>),
    Assignments(Page<wire::Assignment<'a>>),
    Users(Page<wire::User>),
}

impl<'a> ReadPage<'a> {
    /// Reads a page body of `resource`.
    pub(super) fn parse(resource: Resource, body: &'a str) -> Result<Self, String> {
        Ok(match resource {
            Resource::Assets => ReadPage::Assets(parse(body)?),
            Resource::Assignments => ReadPage::Assignments(parse(body)?),
            Resource::Users => ReadPage::Users(parse(body)?),
        })
    }

    /// Takes the envelope (`mdmInfo`, `errorNumber`) out of the page.
    pub(super) fn take_envelope(&mut self) -> Envelope {
        match self {
            ReadPage::Assets(page) => page.take_envelope(),
            ReadPage::Assignments(page) => page.take_envelope(),
            ReadPage::Users(page) => page.take_envelope(),
        }
    }
}

fn meta_of<T>(page: Page<T>) -> PageMeta {
    PageMeta { next_page_index: page.next_page_index, total_pages: page.total_pages, version_id: page.version_id }
}
