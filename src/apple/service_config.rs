//! `GET /service/config`: the URLs and limits every other request obeys.
//!
//! Apple: the URLs and limits "are dynamic and can change without notice. Sync them every
//! 5 minutes rather than hard-coding them". The defaults below apply only until the first answer.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::limits::Limits;

/// Apple's production service config URL.
pub const APPLE_SERVICE_CONFIG_URL: &str = "https://vpp.itunes.apple.com/mdm/v2/service/config";

/// The endpoint URLs the engine uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrls {
    pub client_config: String,
    pub get_assets: String,
    pub get_assignments: String,
    pub get_users: String,
    pub associate_assets: String,
    pub disassociate_assets: String,
    pub revoke_assets: String,
    pub event_status: String,
    pub create_users: String,
    pub update_users: String,
    pub retire_users: String,
    pub invitation_email: String,
}

impl ServiceUrls {
    /// Defaults derived from the service config URL (`…/service/config` → `…/assets` etc.).
    pub fn derived_from(service_config_url: &str) -> Self {
        let base = service_config_url
            .strip_suffix("/service/config")
            .unwrap_or(service_config_url)
            .trim_end_matches('/');
        let at = |path: &str| format!("{base}/{path}");
        Self {
            client_config: at("client/config"),
            get_assets: at("assets"),
            get_assignments: at("assignments"),
            get_users: at("users"),
            associate_assets: at("assets/associate"),
            disassociate_assets: at("assets/disassociate"),
            revoke_assets: at("assets/revoke"),
            event_status: at("status"),
            create_users: at("users/create"),
            update_users: at("users/update"),
            retire_users: at("users/retire"),
            invitation_email: "https://buy.itunes.apple.com/WebObjects/MZFinance.woa/wa/associateVPPUserWithITSAccount?inviteCode=%25inviteCode%25&mt=8".to_owned(),
        }
    }

    /// Replaces every URL Apple sent; keeps the current one for any it left out.
    fn merge(&mut self, urls: &BTreeMap<String, String>) {
        let slots: [(&str, &mut String); 12] = [
            ("clientConfig", &mut self.client_config),
            ("getAssets", &mut self.get_assets),
            ("getAssignments", &mut self.get_assignments),
            ("getUsers", &mut self.get_users),
            ("associateAssets", &mut self.associate_assets),
            ("disassociateAssets", &mut self.disassociate_assets),
            ("revokeAssets", &mut self.revoke_assets),
            ("eventStatus", &mut self.event_status),
            ("createUsers", &mut self.create_users),
            ("updateUsers", &mut self.update_users),
            ("retireUsers", &mut self.retire_users),
            ("invitationEmail", &mut self.invitation_email),
        ];
        for (key, slot) in slots {
            if let Some(url) = urls.get(key).filter(|u| !u.is_empty()) {
                url.clone_into(slot);
            }
        }
    }
}

/// The engine's current service configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub urls: ServiceUrls,
    pub limits: Limits,
}

/// The parts of Apple's `ServiceConfigResponse` the engine reads.
#[derive(Debug, Deserialize)]
pub struct ServiceConfigResponse {
    #[serde(default)]
    limits: BTreeMap<String, i64>,
    #[serde(default)]
    urls: BTreeMap<String, String>,
}

impl ServiceConfig {
    /// Apple's documented example limits, and URLs derived from the service config URL: what the
    /// engine uses until Apple's first answer.
    pub fn defaults(service_config_url: &str) -> Self {
        Self { urls: ServiceUrls::derived_from(service_config_url), limits: Limits::default() }
    }

    /// Applies an answer from Apple.
    pub fn apply(&mut self, response: &ServiceConfigResponse) {
        self.urls.merge(&response.urls);
        self.limits.merge(&response.limits);
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn default_urls_follow_the_service_config_url() {
        let urls = ServiceUrls::derived_from("http://127.0.0.1:9/mdm/v2/service/config");
        assert_eq!(urls.get_assets, "http://127.0.0.1:9/mdm/v2/assets");
        assert_eq!(urls.event_status, "http://127.0.0.1:9/mdm/v2/status");
    }

    #[test]
    fn apple_answer_replaces_urls_and_limits_but_ignores_nonsense_values() {
        let mut config = ServiceConfig::defaults(APPLE_SERVICE_CONFIG_URL);
        let response: ServiceConfigResponse = serde_json::from_str(
            r#"{"limits":{"maxAssets":10,"maxRequestPerSecond":-3,"maxNew":7},
                "urls":{"getAssets":"https://x.example/assets"}}"#,
        )
        .unwrap();
        config.apply(&response);
        assert_eq!(config.limits.max_assets, 10);
        assert_eq!(config.limits.max_request_per_second, 15);
        assert_eq!(config.limits.raw.get("maxNew"), Some(&7));
        assert_eq!(config.urls.get_assets, "https://x.example/assets");
        assert_eq!(config.urls.get_users, "https://vpp.itunes.apple.com/mdm/v2/users");
    }
}
