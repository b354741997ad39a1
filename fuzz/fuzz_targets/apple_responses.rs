//! Apple's answers: the world runs its script (claim, sync, associate, create users, status polls,
//! revoke, disassociate, Test, Refresh, delta sync) and the fuzz input answers one request of a
//! chosen purpose instead of Apple, with the status, headers and body it gives. The engine must
//! not panic, must leave no request unanswered and must keep working afterwards.
//!
//! Input: `<purpose> <status> [<occurrence>]`, header lines, a blank line, the body. An unknown
//! purpose picks one by the word's bytes; an unreadable status is 200.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpp_license_engine_fuzz::{Framed, Intercept, World};

/// Every request the world's script makes, by purpose.
const PURPOSES: [&str; 12] = [
    "serviceConfig",
    "clientConfig",
    "claimOwnership",
    "assetsPage",
    "assignmentsPage",
    "usersPage",
    "associateAssets",
    "createUsers",
    "eventStatus",
    "revokeAssets",
    "disassociateAssets",
    "testAccount",
];

fuzz_target!(|data: &[u8]| {
    let framed = Framed::parse(data);
    let word = framed.word(0).unwrap_or("");
    let purpose = PURPOSES.iter().find(|p| **p == word).copied().unwrap_or_else(|| {
        PURPOSES[word.bytes().fold(0usize, |sum, b| sum.wrapping_add(usize::from(b))) % PURPOSES.len()]
    });
    let status = framed.word(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let occurrence = framed.word(2).and_then(|s| s.parse().ok()).unwrap_or(1usize).min(8);

    let mut world = World::new();
    world.intercept = Some(Intercept::new(purpose, occurrence, status, framed.headers, framed.body));
    world.add_account();
    world.assign();
    world.release_and_resync();
    world.assert_still_works();
});
