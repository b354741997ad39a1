//! Whether a device can use a device license of an asset at all — Apple's limits, not the MDM's
//! choices: a user-enrolled (BYOD) device cannot (Apple accepts the association and the device
//! never gets the app), a book cannot, nor an app that does not support the device's platform.
//! Such a refusal needs an administrator (assign the app to the device's user, or scope it
//! elsewhere), so the host hears of each refused (device, asset) once, with `assignmentFailed`,
//! and again only if the refusal ended and came back (or after a restart: the set of refusals
//! told is not stored).

use std::borrow::Cow;
use std::collections::BTreeSet;

use crate::apple::wire::AssetCounts;
use crate::contract::event::Event;
use crate::effects::AccountEffects;
use crate::facts::DeviceFacts;
use crate::mirror::Mirror;
use crate::vocab::{AssignmentKey, ProductType, Target};

/// Why a user-enrolled device gets no device license.
const USER_ENROLLED: &str =
    "the device is user-enrolled (BYOD): Apple ignores device licenses for it; assign the app to the device's user instead (a user license)";
/// Why a book gets no device license.
const BOOK: &str = "books can only be licensed to users: assign the book to the device's user instead (a user license)";

/// Apple's names of the platforms (`supportedPlatforms`); a device reporting another is not judged.
const PLATFORMS: [&str; 5] = ["iOS", "macOS", "tvOS", "watchOS", "visionOS"];

/// Why `device` (its facts, if the host gave any) can't use a device license of an asset with
/// `counts`, if it can't.
pub fn device_refusal(device: Option<&DeviceFacts>, counts: &AssetCounts) -> Option<Cow<'static, str>> {
    if device.is_some_and(|d| d.user_enrollment) {
        return Some(Cow::Borrowed(USER_ENROLLED));
    }
    if counts.product_type == ProductType::Book {
        return Some(Cow::Borrowed(BOOK));
    }
    let platform = device.and_then(|d| d.platform.as_deref()).filter(|p| PLATFORMS.contains(p))?;
    let supported = &counts.supported_platforms;
    if supported.is_empty() || supported.iter().any(|s| s == platform) {
        return None;
    }
    Some(Cow::Owned(format!("the app does not support the device's platform ({platform}; the app supports {})", supported.join(", "))))
}

/// The refused pairs the host was told of.
#[derive(Debug, Clone, Default)]
pub struct Told {
    told: BTreeSet<AssignmentKey>,
}

impl Told {
    /// A plan found `refused` (of every target, or of the `only` targets): `assignmentFailed` for
    /// each not told yet; those of the planned targets no longer refused are forgotten.
    pub fn report(
        &mut self,
        refused: Vec<(AssignmentKey, Cow<'static, str>)>,
        only: Option<&BTreeSet<Target>>,
        mirror: &Mirror,
        fx: &mut AccountEffects<'_>,
    ) {
        let mut still = BTreeSet::new();
        still.extend(refused.iter().map(|(key, _)| *key));
        match only {
            None => self.told.retain(|key| still.contains(key)),
            Some(only) => {
                for target in only {
                    let ended: Vec<AssignmentKey> = self.told.range(AssignmentKey::range_of(*target)).filter(|k| !still.contains(*k)).copied().collect();
                    for key in ended {
                        self.told.remove(&key);
                    }
                }
            }
        }
        let account_id = fx.account_id().to_owned();
        for (key, reason) in refused {
            if self.told.insert(key) {
                fx.event(Event::assignment_failed(&account_id, mirror.pair(&key), None, reason.into_owned()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn app(platforms: &[&str]) -> AssetCounts {
        AssetCounts {
            product_type: ProductType::App,
            total_count: 10,
            assigned_count: 0,
            available_count: 10,
            retired_count: 0,
            device_assignable: true,
            revocable: true,
            supported_platforms: platforms.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn on(platform: &str) -> DeviceFacts {
        DeviceFacts { platform: Some(platform.to_owned()), ..DeviceFacts::default() }
    }

    #[test]
    fn a_platform_is_judged_only_when_both_the_device_and_the_app_name_one_apple_knows() {
        assert_eq!(device_refusal(Some(&on("iOS")), &app(&["iOS", "macOS"])), None);
        let refused = device_refusal(Some(&on("macOS")), &app(&["iOS"])).unwrap();
        assert_eq!(refused, "the app does not support the device's platform (macOS; the app supports iOS)");
        assert_eq!(device_refusal(Some(&on("iPadOS")), &app(&["iOS"])), None, "not Apple's name: not judged");
        assert_eq!(device_refusal(Some(&on("macOS")), &app(&[])), None, "the app's platforms are not known");
        assert_eq!(device_refusal(None, &app(&["iOS"])), None, "nothing known of the device");
    }

    #[test]
    fn user_enrollment_and_books_are_refused_whatever_the_platform() {
        let byod = DeviceFacts { user_enrollment: true, ..on("iOS") };
        assert_eq!(device_refusal(Some(&byod), &app(&["iOS"])).unwrap(), USER_ENROLLED);
        let book = AssetCounts { product_type: ProductType::Book, ..app(&["iOS"]) };
        assert_eq!(device_refusal(Some(&on("iOS")), &book).unwrap(), BOOK);
        assert_eq!(device_refusal(None, &book).unwrap(), BOOK);
    }
}
