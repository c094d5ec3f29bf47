//! Which channel of a Shared iPad accepts a payload type, and which payload types need a
//! supervised device, from Apple's profile schema (github.com/apple/device-management,
//! `mdm/profiles/*.yaml`: each payload's `supportedOS.iOS.sharedipad.devicechannel` /
//! `userchannel` flags and `supervised: true`). Only the types whose flags say "not both" are
//! listed; every other type is accepted on either channel.

/// Where a payload type may be installed on a Shared iPad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharedIpadChannels {
    /// Device channel and user channels.
    Both,
    /// The device channel only (Wi-Fi, certificates, VPN, global proxy, ...).
    DeviceOnly,
    /// User channels only (web clips, mail, Exchange, CalDAV, ...).
    UserOnly,
}

/// `devicechannel: false` in the schema: user channel only.
const USER_ONLY: &[&str] = &[
    "com.apple.caldav.account",
    "com.apple.carddav.account",
    "com.apple.eas.account",
    "com.apple.extensiblesso",
    "com.apple.font",
    "com.apple.google-oauth",
    "com.apple.ldap.account",
    "com.apple.mail.managed",
    "com.apple.subscribedcalendar.account",
    "com.apple.webClip.managed",
];

/// `userchannel: false` in the schema: device channel only.
const DEVICE_ONLY: &[&str] = &[
    "com.apple.SetupAssistant.managed",
    "com.apple.airplay",
    "com.apple.airprint",
    "com.apple.apn.managed",
    "com.apple.app.lock",
    "com.apple.cellular",
    "com.apple.cellularprivatenetwork.managed",
    "com.apple.dnsProxy.managed",
    "com.apple.dnsSettings.managed",
    "com.apple.education",
    "com.apple.mdm",
    "com.apple.networkusagerules",
    "com.apple.proxy.http.global",
    "com.apple.relay.managed",
    "com.apple.security.acme",
    "com.apple.security.certificaterevocation",
    "com.apple.security.certificatetransparency",
    "com.apple.security.pem",
    "com.apple.security.pkcs1",
    "com.apple.security.pkcs12",
    "com.apple.security.root",
    "com.apple.security.scep",
    "com.apple.shareddeviceconfiguration",
    "com.apple.vpn.managed",
    "com.apple.vpn.managed.applayer",
    "com.apple.webcontent-filter",
    "com.apple.wifi.managed",
];

/// `supervised: true` for iOS in the schema.
const SUPERVISED_ONLY: &[&str] = &[
    "com.apple.SetupAssistant.managed",
    "com.apple.app.lock",
    "com.apple.homescreenlayout",
    "com.apple.notificationsettings",
    "com.apple.profileRemovalPassword",
    "com.apple.proxy.http.global",
    "com.apple.shareddeviceconfiguration",
    "com.apple.tvremote",
];

/// The Shared iPad channels that accept `payload_type`.
pub fn shared_ipad_channels(payload_type: &str) -> SharedIpadChannels {
    if USER_ONLY.contains(&payload_type) {
        SharedIpadChannels::UserOnly
    } else if DEVICE_ONLY.contains(&payload_type) {
        SharedIpadChannels::DeviceOnly
    } else {
        SharedIpadChannels::Both
    }
}

/// Whether iOS installs `payload_type` only on a supervised device.
pub fn supervised_only(payload_type: &str) -> bool {
    SUPERVISED_ONLY.contains(&payload_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_the_schema_flags() {
        assert_eq!(
            shared_ipad_channels("com.apple.webClip.managed"),
            SharedIpadChannels::UserOnly
        );
        assert_eq!(
            shared_ipad_channels("com.apple.wifi.managed"),
            SharedIpadChannels::DeviceOnly
        );
        assert_eq!(
            shared_ipad_channels("com.apple.applicationaccess"),
            SharedIpadChannels::Both
        );
        assert!(supervised_only("com.apple.proxy.http.global"));
        assert!(!supervised_only("com.apple.wifi.managed"));
        for t in USER_ONLY {
            assert!(!DEVICE_ONLY.contains(t), "{t} in both lists");
        }
    }
}
