//! How a simulated device answers the app commands, the way iOS does (pure, no IO):
//! InstallApplication, RemoveApplication, InstalledApplicationList, ManagedApplicationList.
//!
//! Installs are asynchronous: the Ack carries `Identifier` and the current `State` (`Queued`),
//! the install runs afterwards (see [`crate::AppInstallTiming`]) and only
//! ManagedApplicationList shows how it ends [Y application.install; P
//! `_performInstallApplication…`]. App Store installs depend on the purchase method, the
//! device's App Store account and its VPP licences [P `_installApplication:…`].
//!
//! Sources (tags of the fidelity review): [Y] Apple's device-management schema, [P] the
//! decompiled iOS 26.1 MDM.framework, [F32400] a device captured by a peer. Error domains on the
//! wire are UNCONFIRMED for iOS 26 (the sim uses `MDMErrorDomain`, as its iPhone capture of
//! 12075 does); match codes, not domains.

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{AppSource, InstallApplication, Status};

use crate::behaviour::{AppInstallTiming, AppStoreAccount, VppLicences};
use crate::inventory::{AppStatus, ManagedApp};
use crate::ios_commands::{
    ChannelContext, CommandAnswer, MDM_DOMAIN, answer_undecodable, chain_item,
};

/// `PurchaseMethodNotSupportedInMultiUser`: PurchaseMethod 0 on a Shared iPad [P; Y].
pub const PURCHASE_METHOD_NOT_SUPPORTED_IN_MULTI_USER: i64 = 12008;
/// `AppAlreadyInstalled`: the person installed the app themselves [P; F32400].
pub const APP_ALREADY_INSTALLED: i64 = 12025;
/// `AppAlreadyQueued`: an install of this app is in flight [P].
pub const APP_ALREADY_QUEUED: i64 = 12026;
/// The person refused to sign in to the App Store [P `promptUserToLoginToiTunesIfNeeded`].
pub const LOGIN_REFUSED: i64 = 12040;
/// `LicenseNotFound`: no VPP licence for the app [P].
pub const LICENSE_NOT_FOUND: i64 = 12064;
/// A supervised device could not remove the app [P `_removeApplication:`].
pub const APP_REMOVAL_FAILED: i64 = 12087;
/// RemoveApplication of an app that is not managed on an unsupervised device
/// (`_notManagedAndNotSupervisedErrorAppID`) [P `_removeApplication:`, iOS 26.1].
pub const NOT_MANAGED_AND_NOT_SUPERVISED: i64 = 12130;

/// The simulator's stand-in for supervision: its Shared iPads are supervised (as
/// DeviceInformation `IsSupervised` says), its iPhones are not.
fn supervised(ctx: &ChannelContext<'_>) -> bool {
    ctx.options.shared_ipad
}

/// Error with a `RejectionReason` (as [F32400] shows it) and one ErrorChain item.
fn rejection(reason: &str, code: i64, text: String) -> CommandAnswer {
    let mut response = Dictionary::new();
    response.insert("RejectionReason".into(), Value::String(reason.into()));
    CommandAnswer {
        status: Status::Error,
        error_chain: Some(vec![chain_item(MDM_DOMAIN, code, text)]),
        response,
    }
}

/// InstallApplication.
pub fn install_application(
    ctx: &mut ChannelContext<'_>,
    app: &InstallApplication,
) -> CommandAnswer {
    let store_id = match &app.source {
        AppSource::ITunesStoreId(n) => Some(n.to_string()),
        _ => None,
    };
    let (identifier, source) = match &app.source {
        AppSource::Identifier(id) => (id.clone(), id.clone()),
        AppSource::ITunesStoreId(n) => (
            ctx.options
                .app_store
                .get(&n.to_string())
                .cloned()
                .unwrap_or_else(|| format!("store.app{n}")),
            format!("iTunesStoreID {n}"),
        ),
        AppSource::ManifestUrl(url) => {
            let stem = url
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .trim_end_matches(".plist");
            (format!("enterprise.{stem}"), url.clone())
        }
        _ => {
            return answer_undecodable(Some("InstallApplication"), "unsupported app source");
        }
    };
    let from_store = !matches!(app.source, AppSource::ManifestUrl(_));
    let purchase_method = app.purchase_method.unwrap_or(0);
    // [P `_installApplication:…`; Y RejectionReason list]: refused before anything else.
    if from_store && purchase_method == 0 && ctx.options.shared_ipad {
        return rejection(
            "PurchaseMethodNotSupportedInMultiUser",
            PURCHASE_METHOD_NOT_SUPPORTED_IN_MULTI_USER,
            "Purchase method 0 is not supported on a Shared iPad.".into(),
        );
    }
    // [P; F32400]: a user-installed app is taken over only with ChangeManagementState Managed.
    if ctx.inventory.user_apps.contains_key(&identifier) {
        if app.change_management_state.as_deref() != Some("Managed") {
            return rejection(
                "AppAlreadyInstalled",
                APP_ALREADY_INSTALLED,
                format!("The app \u{201c}{identifier}\u{201d} is already installed."),
            );
        }
        let name = ctx
            .inventory
            .user_apps
            .remove(&identifier)
            .unwrap_or_default();
        return accept(ctx, app, identifier, name, source, AppStatus::Managed);
    }
    let existing = ctx.inventory.apps.get(&identifier).map(|a| a.status);
    // [P]: an install already in flight.
    if existing.is_some_and(AppStatus::is_pending) {
        return rejection(
            "AppAlreadyQueued",
            APP_ALREADY_QUEUED,
            format!("The app \u{201c}{identifier}\u{201d} is already queued for installation."),
        );
    }
    if from_store && existing != Some(AppStatus::Managed) {
        if purchase_method == 1 {
            // [P `_performInstallApplication…`]: VPP skips the Apple ID prompt; no licence
            // gives LicenseNotFound.
            let licensed = match ctx.options.vpp_licences {
                VppLicences::All => true,
                VppLicences::Missing => false,
                VppLicences::AppStoreMap => {
                    store_id.is_some_and(|id| ctx.options.app_store.contains_key(&id))
                        || ctx.options.app_store.values().any(|b| *b == identifier)
                }
            };
            if !licensed {
                return rejection(
                    "LicenseNotFound",
                    LICENSE_NOT_FOUND,
                    format!("No license was found for \u{201c}{identifier}\u{201d}."),
                );
            }
        } else if ctx.options.app_store_account == AppStoreAccount::SignedOut {
            // [P `promptUserToLoginToiTunesIfNeeded`]: the device asks the person to sign in
            // to the App Store; the sim's person refuses at once (12040). That iOS holds the
            // answer until the person responds is UNCONFIRMED.
            return rejection(
                "LoginRequired",
                LOGIN_REFUSED,
                "The user declined to sign in to the App Store.".into(),
            );
        }
    }
    let state = match (existing, ctx.options.app_install) {
        // A managed app (e.g. a new configuration) stays Managed.
        (Some(AppStatus::Managed), _) => AppStatus::Managed,
        (_, AppInstallTiming::Immediate) => AppStatus::Managed,
        (_, AppInstallTiming::NextSession) => AppStatus::Installing,
        // [Y application.install; P block_invoke_4]: the Ack's State is usually Queued.
        _ => AppStatus::Queued,
    };
    let name = identifier
        .rsplit('.')
        .next()
        .unwrap_or(&identifier)
        .to_owned();
    accept(ctx, app, identifier, name, source, state)
}

fn accept(
    ctx: &mut ChannelContext<'_>,
    app: &InstallApplication,
    identifier: String,
    name: String,
    source: String,
    status: AppStatus,
) -> CommandAnswer {
    ctx.inventory.apps.insert(
        identifier.clone(),
        ManagedApp {
            identifier: identifier.clone(),
            name,
            version: "1.0".into(),
            status,
            management_flags: app.management_flags.unwrap_or(0),
            has_configuration: app.configuration.is_some(),
            source,
        },
    );
    let mut response = Dictionary::new();
    response.insert("Identifier".into(), Value::String(identifier));
    response.insert("State".into(), Value::String(status.as_str().into()));
    CommandAnswer::ack_with(response)
}

/// RemoveApplication [P `_removeApplication:`]: unsupervised, only managed apps (12130);
/// supervised, any installed app, 12087 when it cannot be removed.
pub fn remove_application(ctx: &mut ChannelContext<'_>, identifier: &str) -> CommandAnswer {
    if let Some(&code) = ctx.options.refuse_removals.get(identifier) {
        return CommandAnswer {
            status: Status::Error,
            error_chain: Some(vec![chain_item(
                MDM_DOMAIN,
                code,
                format!("The app \u{201c}{identifier}\u{201d} could not be removed."),
            )]),
            response: Dictionary::new(),
        };
    }
    if ctx.inventory.apps.remove(identifier).is_some() {
        return CommandAnswer::ack_with(Dictionary::new());
    }
    if supervised(ctx) {
        if ctx.inventory.user_apps.remove(identifier).is_some() {
            return CommandAnswer::ack_with(Dictionary::new());
        }
        // Nothing to remove: the removal fails (which code iOS gives for an app that is not
        // installed at all on a supervised device is UNCONFIRMED).
        return CommandAnswer {
            status: Status::Error,
            error_chain: Some(vec![chain_item(
                MDM_DOMAIN,
                APP_REMOVAL_FAILED,
                format!("The app \u{201c}{identifier}\u{201d} could not be removed."),
            )]),
            response: Dictionary::new(),
        };
    }
    CommandAnswer {
        status: Status::Error,
        error_chain: Some(vec![chain_item(
            MDM_DOMAIN,
            NOT_MANAGED_AND_NOT_SUPERVISED,
            format!(
                "The app \u{201c}{identifier}\u{201d} is not managed and the device is not \
                 supervised."
            ),
        )]),
        response: Dictionary::new(),
    }
}

fn wanted(filter: Option<&[String]>, id: &str) -> bool {
    filter.is_none_or(|ids| ids.iter().any(|i| i == id))
}

fn installed_item(identifier: &str, name: &str, version: &str, installing: bool) -> Value {
    let mut d = Dictionary::new();
    d.insert("Identifier".into(), Value::String(identifier.to_owned()));
    d.insert("Name".into(), Value::String(name.to_owned()));
    d.insert("Version".into(), Value::String(version.to_owned()));
    d.insert("ShortVersion".into(), Value::String(version.to_owned()));
    d.insert("BundleSize".into(), Value::Integer(10_485_760u64.into()));
    d.insert("DynamicSize".into(), Value::Integer(1_048_576u64.into()));
    d.insert("Installing".into(), Value::Boolean(installing));
    d.insert("IsValidated".into(), Value::Boolean(true));
    d.insert("HasUpdateAvailable".into(), Value::Boolean(false));
    d.insert("IsAppClip".into(), Value::Boolean(false));
    Value::Dictionary(d)
}

/// InstalledApplicationList: every installed app, the person's own included, unless
/// `ManagedAppsOnly` [Y; P `MDMInstalledApplicationListCommand`]. Apps that are not (or no
/// longer) on the device are not listed.
pub fn installed_application_list(
    ctx: &ChannelContext<'_>,
    filter: Option<&[String]>,
    managed_apps_only: bool,
) -> CommandAnswer {
    let mut items: Vec<Value> = ctx
        .inventory
        .apps
        .values()
        .filter(|a| a.status == AppStatus::Managed || a.status.is_pending())
        .filter(|a| wanted(filter, &a.identifier))
        .map(|a| {
            installed_item(
                &a.identifier,
                &a.name,
                &a.version,
                a.status != AppStatus::Managed,
            )
        })
        .collect();
    if !managed_apps_only {
        items.extend(
            ctx.inventory
                .user_apps
                .iter()
                .filter(|(id, _)| wanted(filter, id))
                .map(|(id, name)| installed_item(id, name, "1.0", false)),
        );
    }
    let mut response = Dictionary::new();
    response.insert("InstalledApplicationList".into(), Value::Array(items));
    CommandAnswer::ack_with(response)
}

/// `ExternalVersionIdentifier` of an app: the App Store's version id (the simulator derives a
/// stable number from the bundle id).
fn external_version_identifier(identifier: &str) -> i64 {
    let h = identifier
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    800_000_000 + i64::from(h % 100_000_000)
}

/// ManagedApplicationList with the keys a device sends per app (`Status`, `ManagementFlags`,
/// `HasConfiguration`, `HasFeedback`, `IsValidated`, `ExternalVersionIdentifier`) [P; Y].
/// Transient states are reported once, then the entry is gone [Y application.managed.list; P
/// `advanceTransientStates:1`].
pub fn managed_application_list(
    ctx: &mut ChannelContext<'_>,
    filter: Option<&[String]>,
) -> CommandAnswer {
    let mut apps = Dictionary::new();
    for a in ctx
        .inventory
        .apps
        .values()
        .filter(|a| wanted(filter, &a.identifier))
    {
        let mut d = Dictionary::new();
        d.insert("Status".into(), Value::String(a.status.as_str().into()));
        d.insert(
            "ManagementFlags".into(),
            Value::Integer(a.management_flags.into()),
        );
        d.insert(
            "HasConfiguration".into(),
            Value::Boolean(a.has_configuration),
        );
        d.insert("HasFeedback".into(), Value::Boolean(false));
        d.insert("IsValidated".into(), Value::Boolean(true));
        d.insert(
            "ExternalVersionIdentifier".into(),
            Value::Integer(external_version_identifier(&a.identifier).into()),
        );
        apps.insert(a.identifier.clone(), Value::Dictionary(d));
    }
    ctx.inventory
        .apps
        .retain(|id, a| !(a.status.is_transient() && wanted(filter, id)));
    let mut response = Dictionary::new();
    response.insert("ManagedApplicationList".into(), Value::Dictionary(apps));
    CommandAnswer::ack_with(response)
}
