//! Why a target has or lacks a license, in words an administrator can act on: every refusal or
//! hold that keeps a wanted license from a target has an answer here.

use crate::licenses::desired::Decision;
use crate::licenses::Licenses;
use crate::mirror::Mirror;
use crate::vocab::{AssignmentKey, OperationKind, Target};

impl Licenses {
    /// Why `key` has or lacks a license, given the decisions of the policies that cover it
    /// (`None`: the account holds no licenses of the app). Call for [`crate::Engine::explain`].
    pub fn explain(&self, key: Option<AssignmentKey>, decisions: &[Decision], mirror: &Mirror) -> (bool, String) {
        let Some(key) = key else {
            return (false, "the account holds no licenses of this app".to_owned());
        };
        let has = mirror.has_assignment(&key);
        let wanted = decisions.iter().any(|d| matches!(d, Decision::Want(k) if *k == key));
        let reason = if let Some(reason) = self.ops.releasing.get(&key) {
            format!("being released: {reason}")
        } else if has && self.ours.contains(&key) {
            "licensed by this MDM".to_owned()
        } else if has {
            "licensed by another MDM (Clean Up releases it unless a policy wants it)".to_owned()
        } else if self.in_flight.is_associating(&key) {
            "assignment requested, waiting for Apple to confirm".to_owned()
        } else if let Some(Decision::Skip(reason)) = decisions.iter().find(|d| matches!(d, Decision::Skip(_))).filter(|_| !wanted) {
            reason.clone()
        } else if !wanted {
            "not in the scope of any app policy".to_owned()
        } else if let Some(reason) = self.pool.explain(&key.asset) {
            reason
        } else if matches!(key.target, Target::User(id) if self.ops.registering.contains(&id)) {
            "waiting for Apple to register the user".to_owned()
        } else if self.ops.revoking().any(|t| t == key.target) {
            "will be assigned once the revoke of this target's licenses, sent earlier, is done".to_owned()
        } else if self.ops.values().any(|op| op.kind == OperationKind::Disassociate && op.tasks().any(|t| t == (key.asset, key.target) && !op.is_resolved(&t))) {
            "will be assigned once the release of it sent earlier is done".to_owned()
        } else if self.planner.waits(key.target) {
            "will be assigned with the changes collecting now (coalescing: sent within coalesceMs)".to_owned()
        } else {
            "will be assigned at the next plan".to_owned()
        };
        (has, reason)
    }
}
