//! The app lifecycle of the simulator, as iOS does it (sources: the bracketed tags of the
//! fidelity review; [Y] Apple's device-management schema, [P] the decompiled iOS 26.1
//! MDM.framework, [F32400] a device a peer captured): asynchronous installs reported only by
//! ManagedApplicationList, transient states reported once, the App Store account and VPP
//! licence modes, user-installed apps, Shared iPad refusals, RemoveApplication by supervision.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use baton_proto::plist::Value;
use baton_proto::{
    AppSource, Command, CommandRequest, CommandUuid, InstallApplication, Profile, Status,
};
use baton_sim::ios_apps::{
    APP_ALREADY_INSTALLED, APP_ALREADY_QUEUED, APP_REMOVAL_FAILED, LICENSE_NOT_FOUND,
    LOGIN_REFUSED, NOT_MANAGED_AND_NOT_SUPERVISED, PURCHASE_METHOD_NOT_SUPPORTED_IN_MULTI_USER,
};
use baton_sim::ios_commands::{
    ChannelContext, CommandAnswer, DeviceFacts, SharedUser, answer, installed_profile,
};
use baton_sim::{
    AppInstallOutcome, AppStatus, AppStoreAccount, Inventory, SimOptions, VppLicences,
};

struct Channel {
    facts: DeviceFacts,
    inventory: Inventory,
    users: Vec<SharedUser>,
    options: SimOptions,
    enrollment: baton_sim::InstalledProfile,
}

impl Channel {
    fn new(options: SimOptions) -> Self {
        Self {
            facts: DeviceFacts::for_udid("00008101-0000000000000002", options.shared_ipad),
            inventory: Inventory::default(),
            users: Vec::new(),
            enrollment: installed_profile(&Profile::new("com.example.enroll", "E"), false),
            options,
        }
    }

    fn run(&mut self, request: CommandRequest) -> CommandAnswer {
        let command = Command::new(CommandUuid::new("C-1").unwrap(), request);
        let results = BTreeMap::new();
        let mut ctx = ChannelContext {
            facts: &self.facts,
            identity_cert_der: &[],
            enrollment_profile: Some(&self.enrollment),
            inventory: &mut self.inventory,
            users: &mut self.users,
            user_channel: false,
            locked: false,
            before_first_unlock: false,
            options: &self.options,
            scep_results: &results,
        };
        answer(&mut ctx, &command)
    }

    /// A later session starts: installs move on (what `SimDevice` does at each session).
    fn later_session(&mut self) {
        let outcome = match self.options.app_install_outcome {
            AppInstallOutcome::Failed => AppStatus::Failed,
            AppInstallOutcome::UserRejected => AppStatus::UserRejected,
            _ => AppStatus::Managed,
        };
        self.inventory.advance_apps(outcome);
    }

    /// ManagedApplicationList: bundle id -> the app's dictionary.
    fn managed_list(&mut self) -> BTreeMap<String, baton_proto::plist::Dictionary> {
        let a = self.run(CommandRequest::ManagedApplicationList { identifiers: None });
        assert_eq!(a.status, Status::Acknowledged);
        a.response["ManagedApplicationList"]
            .as_dictionary()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_dictionary().unwrap().clone()))
            .collect()
    }

    fn status_of(&mut self, bundle: &str) -> Option<String> {
        self.managed_list()
            .get(bundle)
            .map(|d| d["Status"].as_string().unwrap().to_owned())
    }
}

/// A sim that knows store id 361309726 as `com.example.app`.
fn options() -> SimOptions {
    let mut o = SimOptions::default();
    o.app_store
        .insert("361309726".into(), "com.example.app".into());
    o
}

fn store_install(purchase_method: Option<i64>) -> CommandRequest {
    let mut app = InstallApplication::new(AppSource::ITunesStoreId(361_309_726));
    app.management_flags = Some(1);
    app.purchase_method = purchase_method;
    CommandRequest::InstallApplication(app)
}

fn refusal(a: &CommandAnswer) -> (Option<&str>, i64) {
    assert_eq!(a.status, Status::Error, "{a:?}");
    (
        a.response.get("RejectionReason").and_then(Value::as_string),
        a.error_chain.as_ref().unwrap()[0].code,
    )
}

/// [Y application.install; P `_performInstallApplication…` block_invoke_4]: the Ack carries
/// `Identifier` and `State` `Queued`; the install finishes later and only ManagedApplicationList
/// shows it, with the keys a device sends [P; Y application.managed.list].
#[test]
fn install_is_acknowledged_queued_and_settles_in_later_sessions() {
    let mut ch = Channel::new(options());
    let a = ch.run(store_install(Some(1)));
    assert_eq!(a.status, Status::Acknowledged);
    assert_eq!(
        a.response["Identifier"].as_string(),
        Some("com.example.app")
    );
    assert_eq!(a.response["State"].as_string(), Some("Queued"));
    assert_eq!(ch.status_of("com.example.app").as_deref(), Some("Queued"));
    ch.later_session();
    assert_eq!(
        ch.status_of("com.example.app").as_deref(),
        Some("Installing")
    );
    ch.later_session();
    let list = ch.managed_list();
    let app = &list["com.example.app"];
    assert_eq!(app["Status"].as_string(), Some("Managed"));
    for key in [
        "ManagementFlags",
        "HasConfiguration",
        "HasFeedback",
        "IsValidated",
        "ExternalVersionIdentifier",
    ] {
        assert!(app.contains_key(key), "{key} missing");
    }
}

/// [Y application.managed.list; P `advanceTransientStates:1`]: `Failed` and `UserRejected`
/// are reported once, and the entry is gone from the next list.
#[test]
fn transient_failure_states_are_reported_once() {
    for (outcome, status) in [
        (AppInstallOutcome::Failed, "Failed"),
        (AppInstallOutcome::UserRejected, "UserRejected"),
    ] {
        let mut o = options();
        o.app_install_outcome = outcome;
        let mut ch = Channel::new(o);
        assert_eq!(ch.run(store_install(Some(1))).status, Status::Acknowledged);
        ch.later_session();
        ch.later_session();
        assert_eq!(ch.status_of("com.example.app").as_deref(), Some(status));
        assert_eq!(ch.status_of("com.example.app"), None);
    }
}

/// [Y application.managed.list]: an app the person deleted stays listed as
/// `ManagedButUninstalled`.
#[test]
fn a_deleted_managed_app_is_managed_but_uninstalled() {
    let mut o = options();
    o.app_install = baton_sim::AppInstallTiming::Immediate;
    let mut ch = Channel::new(o);
    ch.run(store_install(Some(1)));
    ch.inventory.apps.get_mut("com.example.app").unwrap().status = AppStatus::ManagedButUninstalled;
    assert_eq!(
        ch.status_of("com.example.app").as_deref(),
        Some("ManagedButUninstalled")
    );
    assert_eq!(
        ch.status_of("com.example.app").as_deref(),
        Some("ManagedButUninstalled")
    );
}

/// [P `_installApplication:…`, `promptUserToLoginToiTunesIfNeeded`]: PurchaseMethod 0 (also
/// the default without `Options`) on a device with no Apple ID: the person is asked to sign in
/// and refuses: Error 12040. With an Apple ID it installs.
#[test]
fn purchase_method_0_without_an_apple_id_is_refused() {
    let mut ch = Channel::new(options());
    assert_eq!(refusal(&ch.run(store_install(None))).1, LOGIN_REFUSED);
    assert_eq!(refusal(&ch.run(store_install(Some(0)))).1, LOGIN_REFUSED);
    assert!(ch.inventory.apps.is_empty());
    let mut o = options();
    o.app_store_account = AppStoreAccount::SignedIn;
    let mut ch = Channel::new(o);
    assert_eq!(ch.run(store_install(Some(0))).status, Status::Acknowledged);
}

/// [P `_performInstallApplication…`]: PurchaseMethod 1 (VPP) needs a licence, else
/// `LicenseNotFound` 12064. The default sim has licences for the store ids it knows.
#[test]
fn vpp_install_without_a_licence_is_license_not_found() {
    let mut ch = Channel::new(options());
    let mut unknown = InstallApplication::new(AppSource::ITunesStoreId(7));
    unknown.purchase_method = Some(1);
    assert_eq!(
        refusal(&ch.run(CommandRequest::InstallApplication(unknown))),
        (Some("LicenseNotFound"), LICENSE_NOT_FOUND)
    );
    let mut o = options();
    o.vpp_licences = VppLicences::Missing;
    let mut ch = Channel::new(o);
    assert_eq!(
        refusal(&ch.run(store_install(Some(1)))),
        (Some("LicenseNotFound"), LICENSE_NOT_FOUND)
    );
}

/// [P; Y RejectionReason]: a Shared iPad refuses PurchaseMethod 0 at once with
/// `PurchaseMethodNotSupportedInMultiUser` 12008; VPP installs.
#[test]
fn shared_ipad_refuses_purchase_method_0() {
    let mut o = options();
    o.shared_ipad = true;
    o.app_store_account = AppStoreAccount::SignedIn;
    let mut ch = Channel::new(o);
    assert_eq!(
        refusal(&ch.run(store_install(None))),
        (
            Some("PurchaseMethodNotSupportedInMultiUser"),
            PURCHASE_METHOD_NOT_SUPPORTED_IN_MULTI_USER
        )
    );
    assert_eq!(ch.run(store_install(Some(1))).status, Status::Acknowledged);
}

/// [F32400; P]: an app the person installed is refused with `AppAlreadyInstalled` 12025
/// unless `ChangeManagementState: Managed` takes it over; it is listed by
/// InstalledApplicationList (unless `ManagedAppsOnly`) [Y; P `MDMInstalledApplicationListCommand`].
#[test]
fn user_installed_app_is_refused_unless_taken_over() {
    let mut ch = Channel::new(options());
    ch.inventory
        .user_apps
        .insert("com.example.app".into(), "App".into());
    let listed = |ch: &mut Channel, only: bool| -> Vec<String> {
        let a = ch.run(CommandRequest::InstalledApplicationList {
            identifiers: None,
            managed_apps_only: Some(only),
        });
        a.response["InstalledApplicationList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                d.as_dictionary().unwrap()["Identifier"]
                    .as_string()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(listed(&mut ch, false), vec!["com.example.app"]);
    assert!(listed(&mut ch, true).is_empty());
    assert_eq!(
        refusal(&ch.run(store_install(Some(1)))),
        (Some("AppAlreadyInstalled"), APP_ALREADY_INSTALLED)
    );
    let mut app = InstallApplication::new(AppSource::ITunesStoreId(361_309_726));
    app.purchase_method = Some(1);
    app.change_management_state = Some("Managed".into());
    let a = ch.run(CommandRequest::InstallApplication(app));
    assert_eq!(a.status, Status::Acknowledged);
    assert_eq!(ch.status_of("com.example.app").as_deref(), Some("Managed"));
    assert_eq!(listed(&mut ch, true), vec!["com.example.app"]);
}

/// [P]: an install already in flight is refused with `AppAlreadyQueued` 12026.
#[test]
fn a_second_install_while_queued_is_app_already_queued() {
    let mut ch = Channel::new(options());
    assert_eq!(ch.run(store_install(Some(1))).status, Status::Acknowledged);
    assert_eq!(
        refusal(&ch.run(store_install(Some(1)))),
        (Some("AppAlreadyQueued"), APP_ALREADY_QUEUED)
    );
}

/// [P `_removeApplication:`]: unsupervised, an app that is not managed gives 12130 (the
/// person's own apps stay); supervised (the sim's Shared iPad) removes any installed app, and a
/// removal that fails gives 12087.
#[test]
fn remove_application_depends_on_supervision() {
    let mut ch = Channel::new(options());
    ch.inventory
        .user_apps
        .insert("com.example.own".into(), "Own".into());
    let remove = |ch: &mut Channel, id: &str| {
        ch.run(CommandRequest::RemoveApplication {
            identifier: id.into(),
        })
    };
    assert_eq!(
        refusal(&remove(&mut ch, "com.example.own")).1,
        NOT_MANAGED_AND_NOT_SUPERVISED
    );
    assert!(ch.inventory.user_apps.contains_key("com.example.own"));
    let mut o = options();
    o.shared_ipad = true;
    let mut ch = Channel::new(o);
    ch.inventory
        .user_apps
        .insert("com.example.own".into(), "Own".into());
    assert_eq!(
        remove(&mut ch, "com.example.own").status,
        Status::Acknowledged
    );
    assert!(ch.inventory.user_apps.is_empty());
    assert_eq!(
        refusal(&remove(&mut ch, "com.example.own")).1,
        APP_REMOVAL_FAILED
    );
}

/// The lenient sim keeps the old "every install succeeds" for tests that are not about apps.
#[test]
fn lenient_installs_anything() {
    let mut ch = Channel::new(SimOptions::lenient());
    let a = ch.run(CommandRequest::InstallApplication(InstallApplication::new(
        AppSource::ITunesStoreId(5),
    )));
    assert_eq!(a.status, Status::Acknowledged);
    assert_eq!(a.response["State"].as_string(), Some("Installing"));
}
