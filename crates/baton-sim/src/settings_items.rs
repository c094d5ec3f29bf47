//! The Settings command answered per item, as iOS does [P MDMParser `_settings:`,
//! `_validateSetting:`] (pure).
//!
//! The command's status is `Acknowledged` even when items fail; each item reports
//! `{Item, Status, ErrorChain?, Identifier?}`:
//! - an item this channel or mode does not allow gives `CommandFormatError`: on an unsupervised
//!   device the items the schema marks `supervised: true` for iOS (`DeviceName`, `TimeZone`,
//!   `Wallpaper`, `Bluetooth`, `SoftwareUpdateSettings`) [Y settings.yaml; P]; on a user channel
//!   every item but `DefaultApplications` and `AccessibilitySettings` [P MDMUserParser
//!   `_allSettingsItems`];
//! - `ApplicationConfiguration` for an app that is not managed: `Error` 12038 [P];
//! - `MaximumResidentUsers`, or `SharedDeviceConfiguration` with `QuotaSize`, once users exist
//!   on the device: `Error` 12090 [P];
//! - `SharedDeviceConfiguration` outside Shared iPad: `Error` 12131 [P].
//!
//! [`crate::SimOptions::settings_all_acknowledged`] acknowledges every item instead (the old,
//! lenient simulator).

use baton_proto::Setting;
use baton_proto::plist::{Dictionary, Value};

use crate::channel_scope::supervised;
use crate::ios_commands::{ChannelContext, CommandAnswer, MDM_DOMAIN, chain_item};

/// Items iOS accepts only on a supervised device [Y settings.yaml `supervised: true`].
pub const SUPERVISED_ITEMS: &[&str] = &[
    "DeviceName",
    "TimeZone",
    "Wallpaper",
    "Bluetooth",
    "SoftwareUpdateSettings",
];

/// Items a Shared iPad user channel accepts [P MDMUserParser `_allSettingsItems`].
pub const USER_CHANNEL_ITEMS: &[&str] = &["DefaultApplications", "AccessibilitySettings"];

/// `ApplicationConfiguration` for an app that is not managed [P].
pub const APP_NOT_MANAGED: i64 = 12038;
/// A resident-user limit or quota once users exist [P].
pub const USERS_EXIST: i64 = 12090;
/// `SharedDeviceConfiguration` outside Shared iPad [P].
pub const NOT_SHARED_DEVICE: i64 = 12131;

/// Answers a Settings command.
pub(crate) fn answer(ctx: &ChannelContext<'_>, settings: &[Setting]) -> CommandAnswer {
    let results = settings
        .iter()
        .map(|s| Value::Dictionary(item_result(ctx, s)))
        .collect();
    let mut response = Dictionary::new();
    response.insert("Settings".into(), Value::Array(results));
    CommandAnswer::ack_with(response)
}

fn item_result(ctx: &ChannelContext<'_>, s: &Setting) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("Item".into(), Value::String(s.item.clone()));
    let identifier = s
        .keys
        .get("Identifier")
        .and_then(Value::as_string)
        .map(str::to_owned);
    if let Some(id) = &identifier {
        d.insert("Identifier".into(), Value::String(id.clone()));
    }
    let outcome = if ctx.options.settings_all_acknowledged {
        Ok(())
    } else {
        check(ctx, s, identifier.as_deref())
    };
    match outcome {
        Ok(()) => {
            d.insert("Status".into(), Value::String("Acknowledged".into()));
        }
        Err(None) => {
            d.insert("Status".into(), Value::String("CommandFormatError".into()));
        }
        Err(Some((code, text))) => {
            d.insert("Status".into(), Value::String("Error".into()));
            let item = chain_item(MDM_DOMAIN, code, text);
            let mut e = Dictionary::new();
            e.insert("ErrorCode".into(), Value::Integer(item.code.into()));
            e.insert("ErrorDomain".into(), Value::String(item.domain));
            if let Some(t) = item.localized_description {
                e.insert("LocalizedDescription".into(), Value::String(t));
            }
            if let Some(t) = item.us_english_description {
                e.insert("USEnglishDescription".into(), Value::String(t));
            }
            d.insert(
                "ErrorChain".into(),
                Value::Array(vec![Value::Dictionary(e)]),
            );
        }
    }
    d
}

/// `Err(None)`: CommandFormatError; `Err(Some(code, text))`: Error with that code.
fn check(
    ctx: &ChannelContext<'_>,
    s: &Setting,
    identifier: Option<&str>,
) -> Result<(), Option<(i64, String)>> {
    let item = s.item.as_str();
    if ctx.user_channel {
        return if USER_CHANNEL_ITEMS.contains(&item) {
            Ok(())
        } else {
            Err(None)
        };
    }
    if !supervised(ctx) && SUPERVISED_ITEMS.contains(&item) {
        return Err(None);
    }
    let users_exist = !ctx.users.is_empty();
    match item {
        "ApplicationConfiguration" => {
            let managed = identifier.is_some_and(|id| ctx.inventory.apps.contains_key(id));
            if managed {
                Ok(())
            } else {
                Err(Some((
                    APP_NOT_MANAGED,
                    format!(
                        "The app \u{201c}{}\u{201d} is not managed.",
                        identifier.unwrap_or("")
                    ),
                )))
            }
        }
        "MaximumResidentUsers" if users_exist => Err(Some((
            USERS_EXIST,
            "The number of resident users cannot be changed while users exist.".into(),
        ))),
        "SharedDeviceConfiguration" if !ctx.options.shared_ipad => Err(Some((
            NOT_SHARED_DEVICE,
            "Shared device configuration requires a Shared iPad.".into(),
        ))),
        "SharedDeviceConfiguration" if users_exist && s.keys.contains_key("QuotaSize") => {
            Err(Some((
                USERS_EXIST,
                "The user quota cannot be changed while users exist.".into(),
            )))
        }
        _ => Ok(()),
    }
}
