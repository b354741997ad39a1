//! Packing license changes into as few Apple requests as the service-config limits allow.
//!
//! A `ManageAssetsRequest` (associate / disassociate) applies every listed asset to every listed
//! target, up to `maxAssets` assets × (`maxSerialNumbers` devices and `maxClientUserIds` users).
//! Targets that need exactly the same set of assets therefore share requests; each such group
//! costs `⌈assets / maxAssets⌉ × max(⌈devices / maxSerialNumbers⌉, ⌈users / maxClientUserIds⌉)`.
//! A `RevokeAssetsRequest` releases everything revocable a target holds, up to
//! `maxRevokeSerialNumbers` devices and `maxRevokeClientUserIds` users.

use std::collections::{BTreeMap, BTreeSet};

use crate::apple::Limits;
use crate::vocab::{AssetKey, Target};

/// One associate or disassociate request's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageBatch {
    pub assets: Vec<AssetKey>,
    pub targets: Vec<Target>,
}

/// One revoke request's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeBatch {
    pub targets: Vec<Target>,
}

/// Splits `targets` into chunks holding at most `max_devices` devices and `max_users` users
/// each, as few chunks as possible.
fn chunk_targets(targets: &[Target], max_devices: u32, max_users: u32) -> Vec<Vec<Target>> {
    let (devices, users): (Vec<Target>, Vec<Target>) = targets.iter().partition(|t| matches!(t, Target::Device(_)));
    let device_chunks: Vec<&[Target]> = devices.chunks(max_devices.max(1) as usize).collect();
    let user_chunks: Vec<&[Target]> = users.chunks(max_users.max(1) as usize).collect();
    (0..device_chunks.len().max(user_chunks.len()))
        .map(|i| {
            let mut chunk = device_chunks.get(i).map_or_else(Vec::new, |c| c.to_vec());
            chunk.extend_from_slice(user_chunks.get(i).copied().unwrap_or_default());
            chunk
        })
        .collect()
}

/// Associate or disassociate requests for `wanted` (each target and the assets it needs).
pub fn manage_batches(wanted: &BTreeMap<Target, BTreeSet<AssetKey>>, limits: &Limits) -> Vec<ManageBatch> {
    let mut groups: BTreeMap<&BTreeSet<AssetKey>, Vec<Target>> = BTreeMap::new();
    for (target, assets) in wanted.iter().filter(|(_, assets)| !assets.is_empty()) {
        groups.entry(assets).or_default().push(*target);
    }
    let mut batches = Vec::new();
    for (assets, targets) in groups {
        let assets: Vec<AssetKey> = assets.iter().copied().collect();
        let target_chunks = chunk_targets(&targets, limits.max_serial_numbers, limits.max_client_user_ids);
        for asset_chunk in assets.chunks(limits.max_assets.max(1) as usize) {
            for targets in &target_chunks {
                batches.push(ManageBatch { assets: asset_chunk.to_vec(), targets: targets.clone() });
            }
        }
    }
    batches
}

/// Revoke requests for `targets`.
pub fn revoke_batches(targets: &BTreeSet<Target>, limits: &Limits) -> Vec<RevokeBatch> {
    let targets: Vec<Target> = targets.iter().copied().collect();
    chunk_targets(&targets, limits.max_revoke_serial_numbers, limits.max_revoke_client_user_ids)
        .into_iter()
        .map(|targets| RevokeBatch { targets })
        .collect()
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::vocab::PricingParam;

    fn asset(n: u32) -> AssetKey {
        AssetKey { adam_id: n, pricing: PricingParam::Stdq }
    }

    fn wanted(targets: impl Iterator<Item = Target>, apps: u32) -> BTreeMap<Target, BTreeSet<AssetKey>> {
        targets.map(|t| (t, (0..apps).map(asset).collect())).collect()
    }

    #[test]
    fn one_app_to_2500_devices_takes_3_requests() {
        let batches = manage_batches(&wanted((0..2500).map(Target::Device), 1), &Limits::default());
        assert_eq!(batches.len(), 3);
        assert_eq!(batches.iter().map(|b| b.targets.len()).sum::<usize>(), 2500);
    }

    #[test]
    fn thirty_apps_to_1000_devices_take_2_requests() {
        let batches = manage_batches(&wanted((0..1000).map(Target::Device), 30), &Limits::default());
        assert_eq!(batches.len(), 2);
        assert_eq!(batches.iter().map(|b| b.assets.len()).collect::<Vec<_>>(), [25, 5]);
    }

    #[test]
    fn thirty_apps_to_2500_users_take_6_requests() {
        let batches = manage_batches(&wanted((0..2500).map(Target::User), 30), &Limits::default());
        assert_eq!(batches.len(), 6);
    }

    #[test]
    fn devices_and_users_needing_the_same_apps_share_requests() {
        let targets = (0..10).map(Target::Device).chain((0..10).map(Target::User));
        assert_eq!(manage_batches(&wanted(targets, 3), &Limits::default()).len(), 1);
    }

    #[test]
    fn targets_needing_different_app_sets_get_separate_requests() {
        let mut w = wanted((0..5).map(Target::Device), 1);
        w.extend(wanted((5..10).map(Target::Device), 2));
        assert_eq!(manage_batches(&w, &Limits::default()).len(), 2);
    }

    #[test]
    fn revoking_250_devices_takes_3_requests() {
        let targets: BTreeSet<Target> = (0..250).map(Target::Device).collect();
        assert_eq!(revoke_batches(&targets, &Limits::default()).len(), 3);
    }
}
