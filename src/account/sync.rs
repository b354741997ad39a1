//! One synchronization run of an account: which pages of which endpoint to fetch next,
//! what has arrived, how far along it is, and the version cursors it produces.
//!
//! A **full** refresh reads assets, assignments and users from page 0; a **delta** sync reads
//! assets in full (Apple has no asset delta) and assignments and users `sinceVersionId`.
//! Page 0 of an endpoint comes first (it tells `totalPages` and the `versionId` to keep);
//! the rest are fetched in parallel, never more than the in-flight limit at once.
//! `nextPageIndex` decides where an endpoint ends: a page without it is the last one, even
//! if `totalPages` said otherwise (Apple: `totalPages` may change while traversing).

use std::collections::BTreeSet;

use crate::mirror::Staged;
use crate::vocab::{Cursors, SyncKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Assets,
    Assignments,
    Users,
}

impl Resource {
    pub fn purpose(self) -> &'static str {
        match self {
            Resource::Assets => "assetsPage",
            Resource::Assignments => "assignmentsPage",
            Resource::Users => "usersPage",
        }
    }
}

/// What a page said about the traversal it belongs to.
#[derive(Debug, Clone, Default)]
pub struct PageMeta {
    pub next_page_index: Option<u32>,
    pub total_pages: Option<u32>,
    pub version_id: Option<String>,
}

/// A page the run wants fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub resource: Resource,
    pub page_index: u32,
    pub since_version_id: Option<String>,
}

#[derive(Debug, Clone)]
struct Traversal {
    resource: Resource,
    since: Option<String>,
    first_version: Option<String>,
    /// Pages known to exist: 1 until page 0 answers, then from `totalPages` / `nextPageIndex`.
    known_pages: u32,
    /// Index of a received page that had no `nextPageIndex`.
    last_page: Option<u32>,
    next_index: u32,
    in_flight: BTreeSet<u32>,
    retry: BTreeSet<u32>,
    received: BTreeSet<u32>,
}

impl Traversal {
    fn new(resource: Resource, since: Option<String>) -> Self {
        Self {
            resource,
            since,
            first_version: None,
            known_pages: 1,
            last_page: None,
            next_index: 0,
            in_flight: BTreeSet::new(),
            retry: BTreeSet::new(),
            received: BTreeSet::new(),
        }
    }

    fn end(&self) -> u32 {
        self.last_page.map_or(self.known_pages, |last| last + 1)
    }

    fn has_wanted(&self) -> bool {
        // Until page 0 has answered, nothing is known about the other pages.
        let may_advance = self.next_index == 0 || self.received.contains(&0);
        !self.retry.is_empty() || (may_advance && self.next_index < self.end())
    }

    fn next_wanted(&mut self) -> Option<u32> {
        if let Some(index) = self.retry.pop_first() {
            return Some(index);
        }
        self.has_wanted().then(|| {
            self.next_index += 1;
            self.next_index - 1
        })
    }

    fn is_complete(&self) -> bool {
        self.in_flight.is_empty()
            && self.retry.is_empty()
            && self.last_page.is_some()
            && (0..self.end()).all(|i| self.received.contains(&i))
    }
}

#[derive(Debug, Clone)]
pub struct SyncRun {
    pub id: u64,
    pub kind: SyncKind,
    traversals: [Traversal; 3],
    pub staged: Staged,
}

impl SyncRun {
    pub fn new(id: u64, kind: SyncKind, cursors: &Cursors) -> Self {
        let since = |cursor: &Option<String>| match kind {
            SyncKind::Full => None,
            SyncKind::Delta => cursor.clone(),
        };
        Self {
            id,
            kind,
            traversals: [
                Traversal::new(Resource::Assets, None),
                Traversal::new(Resource::Assignments, since(&cursors.assignments)),
                Traversal::new(Resource::Users, since(&cursors.users)),
            ],
            staged: Staged::default(),
        }
    }

    fn traversal(&mut self, resource: Resource) -> &mut Traversal {
        let index = match resource {
            Resource::Assets => 0,
            Resource::Assignments => 1,
            Resource::Users => 2,
        };
        &mut self.traversals[index]
    }

    pub fn in_flight(&self) -> usize {
        self.traversals.iter().map(|t| t.in_flight.len()).sum()
    }

    /// Whether [`SyncRun::next_page`] would return a page now.
    pub fn wants_page(&self, max_in_flight: usize) -> bool {
        self.in_flight() < max_in_flight && self.traversals.iter().any(Traversal::has_wanted)
    }

    /// The next page to fetch, if the run wants one and fewer than `max_in_flight` are out.
    pub fn next_page(&mut self, max_in_flight: usize) -> Option<PageRequest> {
        if self.in_flight() >= max_in_flight {
            return None;
        }
        self.traversals.iter_mut().find_map(|t| {
            let page_index = t.next_wanted()?;
            t.in_flight.insert(page_index);
            Some(PageRequest { resource: t.resource, page_index, since_version_id: t.since.clone() })
        })
    }

    /// A page failed in a way worth retrying: it is fetched again when the account may send.
    pub fn page_failed(&mut self, resource: Resource, page_index: u32) {
        let t = self.traversal(resource);
        if t.in_flight.remove(&page_index) {
            t.retry.insert(page_index);
        }
    }

    /// Apple said the page index is out of range (9650): the data shrank while traversing.
    pub fn page_beyond_end(&mut self, resource: Resource, page_index: u32) {
        let t = self.traversal(resource);
        t.in_flight.remove(&page_index);
        t.known_pages = t.known_pages.min(page_index);
        if t.last_page.is_none_or(|last| last >= page_index) {
            t.last_page = page_index.checked_sub(1);
        }
        // Page 0 out of range means an empty data set.
        if page_index == 0 {
            t.received.insert(0);
            t.last_page = Some(0);
        }
    }

    /// Records an arrived page. Returns `false` if the run was not waiting for it.
    pub fn page_received(&mut self, resource: Resource, page_index: u32, meta: PageMeta) -> bool {
        let t = self.traversal(resource);
        if !t.in_flight.remove(&page_index) {
            return false;
        }
        t.received.insert(page_index);
        if page_index == 0 {
            t.first_version = meta.version_id;
        }
        if let Some(total) = meta.total_pages {
            t.known_pages = t.known_pages.max(total);
        }
        match meta.next_page_index {
            Some(next) => t.known_pages = t.known_pages.max(next.saturating_add(1)),
            None => t.last_page = Some(t.last_page.map_or(page_index, |last| last.min(page_index))),
        }
        true
    }

    pub fn is_complete(&self) -> bool {
        self.traversals.iter().all(Traversal::is_complete)
    }

    /// (pages received, pages known so far) over all endpoints of the run.
    pub fn progress(&self) -> (u32, u32) {
        self.traversals.iter().fold((0, 0), |(done, total), t| {
            let received = t.received.len() as u32;
            (done.saturating_add(received), total.saturating_add(t.end().max(received)))
        })
    }

    /// The cursors for the next delta: the first page's `versionId` of each traversal.
    pub fn cursors(&self) -> Cursors {
        Cursors {
            assignments: self.traversals[1].first_version.clone(),
            users: self.traversals[2].first_version.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn meta(next: Option<u32>, total: u32, version: &str) -> PageMeta {
        PageMeta { next_page_index: next, total_pages: Some(total), version_id: Some(version.to_owned()) }
    }

    #[test]
    fn page_zero_first_then_the_rest_in_parallel_within_the_limit() {
        let mut run = SyncRun::new(1, SyncKind::Full, &Cursors::default());
        let first: Vec<_> = std::iter::from_fn(|| run.next_page(5)).collect();
        assert_eq!(first.len(), 3, "only page 0 of each endpoint before totals are known");
        assert!(first.iter().all(|p| p.page_index == 0));
        run.page_received(Resource::Assets, 0, meta(Some(1), 4, "v1"));
        let more: Vec<_> = std::iter::from_fn(|| run.next_page(5)).collect();
        assert_eq!(more.iter().map(|p| p.page_index).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(run.in_flight(), 5);
    }

    #[test]
    fn a_page_without_next_index_ends_the_traversal_even_if_total_pages_said_more() {
        let mut run = SyncRun::new(1, SyncKind::Full, &Cursors::default());
        while run.next_page(5).is_some() {}
        run.page_received(Resource::Assignments, 0, meta(Some(1), 3, "v1"));
        run.page_received(Resource::Assets, 0, meta(None, 1, "a"));
        run.page_received(Resource::Users, 0, meta(None, 1, "u"));
        while run.next_page(5).is_some() {}
        run.page_received(Resource::Assignments, 1, meta(None, 3, "v2"));
        run.page_beyond_end(Resource::Assignments, 2);
        assert!(run.is_complete());
        assert_eq!(run.cursors().assignments.as_deref(), Some("v1"));
    }

    #[test]
    fn failed_pages_are_fetched_again() {
        let mut run = SyncRun::new(1, SyncKind::Full, &Cursors::default());
        let page = run.next_page(1).unwrap();
        assert_eq!(run.next_page(1), None);
        run.page_failed(page.resource, page.page_index);
        assert_eq!(run.next_page(1), Some(page));
    }
}
