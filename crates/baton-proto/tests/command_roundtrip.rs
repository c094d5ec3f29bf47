//! Property: for any command this crate can build, `decode(encode(c)) == c`.

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    AppSource, Command, CommandRequest, CommandUuid, InstallApplication, Limits, Setting,
    TYPED_REQUEST_TYPES,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::String),
        any::<i64>().prop_map(|i| Value::Integer(i.into())),
        any::<bool>().prop_map(Value::Boolean),
        vec(any::<u8>(), 0..64).prop_map(Value::Data),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            dictionary_of(inner).prop_map(Value::Dictionary),
        ]
    })
}

fn dictionary_of(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Dictionary> {
    vec(("[A-Za-z][A-Za-z0-9]{0,12}", values), 0..5)
        .prop_map(|entries| entries.into_iter().collect())
}

fn dictionary() -> impl Strategy<Value = Dictionary> {
    dictionary_of(value())
}

fn install_application() -> impl Strategy<Value = InstallApplication> {
    let source = prop_oneof![
        any::<i64>().prop_map(AppSource::ITunesStoreId),
        text().prop_map(AppSource::ManifestUrl),
        text().prop_map(AppSource::Identifier),
    ];
    (
        source,
        option::of(any::<i64>()),
        option::of(dictionary()),
        option::of(dictionary()),
        option::of(any::<i64>()),
        option::of(text()),
    )
        .prop_map(
            |(source, flags, configuration, attributes, purchase, state)| {
                let mut app = InstallApplication::new(source);
                app.management_flags = flags;
                app.configuration = configuration;
                app.attributes = attributes;
                app.purchase_method = purchase;
                app.change_management_state = state;
                app
            },
        )
}

fn setting() -> impl Strategy<Value = Setting> {
    (text(), dictionary()).prop_map(|(item, mut keys)| {
        keys.remove("Item");
        Setting { item, keys }
    })
}

fn request() -> impl Strategy<Value = CommandRequest> {
    let raw_type = "[A-Z][A-Za-z]{2,20}".prop_filter("typed request types decode as typed", |t| {
        !TYPED_REQUEST_TYPES.contains(&t.as_str())
    });
    prop_oneof![
        vec(any::<u8>(), 0..256).prop_map(|payload| CommandRequest::InstallProfile { payload }),
        text().prop_map(|identifier| CommandRequest::RemoveProfile { identifier }),
        Just(CommandRequest::ProfileList),
        install_application().prop_map(CommandRequest::InstallApplication),
        text().prop_map(|identifier| CommandRequest::RemoveApplication { identifier }),
        (option::of(vec(text(), 0..4)), option::of(any::<bool>())).prop_map(
            |(identifiers, managed_apps_only)| CommandRequest::InstalledApplicationList {
                identifiers,
                managed_apps_only
            }
        ),
        option::of(vec(text(), 0..4))
            .prop_map(|identifiers| CommandRequest::ManagedApplicationList { identifiers }),
        option::of(any::<bool>())
            .prop_map(|managed_only| CommandRequest::CertificateList { managed_only }),
        vec(text(), 0..6).prop_map(|queries| CommandRequest::DeviceInformation { queries }),
        Just(CommandRequest::SecurityInfo),
        vec(setting(), 0..4).prop_map(|settings| CommandRequest::Settings { settings }),
        Just(CommandRequest::LogOutUser),
        (
            option::of(text()),
            option::of(any::<bool>()),
            option::of(any::<bool>())
        )
            .prop_map(|(user_name, force_deletion, delete_all_users)| {
                CommandRequest::DeleteUser {
                    user_name,
                    force_deletion,
                    delete_all_users,
                }
            }),
        Just(CommandRequest::UserList),
        Just(CommandRequest::DeviceConfigured),
        Just(CommandRequest::UserConfigured),
        (raw_type, dictionary()).prop_map(|(request_type, mut keys)| {
            keys.remove("RequestType");
            CommandRequest::Raw { request_type, keys }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_is_identity(
        uuid in "[A-F0-9]{8}-[A-F0-9]{4}-[A-F0-9]{4}-[A-F0-9]{4}-[A-F0-9]{12}",
        request in request(),
    ) {
        let cmd = Command::new(CommandUuid::new(uuid).unwrap(), request);
        let bytes = cmd.encode().unwrap();
        let back = Command::decode(&bytes, &Limits::default()).unwrap();
        prop_assert_eq!(back.request_type(), cmd.request_type());
        prop_assert_eq!(back, cmd);
    }
}
