//! Decode and encode costs on the hot paths: a TokenUpdate check-in, a 200-app
//! InstalledApplicationList report, and an InstallProfile command carrying a 50 KB profile.
//!
//! Run with `cargo bench -p baton-proto`.

use std::hint::black_box;

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    CheckinMessage, Command, CommandReport, CommandRequest, CommandUuid, Enrollment,
    EnrollmentKeys, Limits, Status,
};
use criterion::{Criterion, criterion_group, criterion_main};

const TOKEN_UPDATE: &[u8] =
    include_bytes!("../../../fixtures/proto/checkin/token_update_device.plist");

fn installed_apps_report(n: usize) -> Vec<u8> {
    let enrollment = Enrollment::new(EnrollmentKeys::device("00008110-001C3D5E2A91801E"))
        .expect("valid fixture udid");
    let mut report = CommandReport::new(
        enrollment,
        Status::Acknowledged,
        Some(CommandUuid::new("D4E5F6A7-B8C9-4DAE-8F01-23456789ABCD").expect("valid uuid")),
    );
    let apps = (0..n)
        .map(|i| {
            let mut d = Dictionary::new();
            d.insert(
                "Identifier".into(),
                Value::from(format!("com.example.app{i}")),
            );
            d.insert("Name".into(), Value::from(format!("Example App {i}")));
            d.insert("Version".into(), Value::from("1234"));
            d.insert("ShortVersion".into(), Value::from("5.6.7"));
            d.insert("BundleSize".into(), Value::from(25_894_912_u64));
            d.insert("DynamicSize".into(), Value::from(409_600_u64));
            d.insert(
                "ExternalVersionIdentifier".into(),
                Value::from(866_282_061_i64),
            );
            d.insert("Installing".into(), Value::from(false));
            d.insert("IsValidated".into(), Value::from(true));
            Value::Dictionary(d)
        })
        .collect();
    report
        .response
        .insert("InstalledApplicationList".into(), Value::Array(apps));
    report.encode().expect("report encodes")
}

fn benches(c: &mut Criterion) {
    let limits = Limits::default();
    c.bench_function("decode TokenUpdate", |b| {
        b.iter(|| CheckinMessage::decode(black_box(TOKEN_UPDATE), &limits).expect("decodes"))
    });

    let report = installed_apps_report(200);
    c.bench_function(
        "decode InstalledApplicationList report (200 apps) + view",
        |b| {
            b.iter(|| {
                let r = CommandReport::decode(black_box(&report), &limits).expect("decodes");
                r.installed_application_list()
                    .expect("view")
                    .map(|v| v.len())
            })
        },
    );

    let payload: Vec<u8> = (0..50 * 1024)
        .map(|i| b"<plist>ABCDEFGHIJ"[i % 17])
        .collect();
    let cmd = Command::new(
        CommandUuid::new("8C9DAEBF-C0D1-42E3-84F5-A6B7C8D9EAFB").expect("valid uuid"),
        CommandRequest::InstallProfile { payload },
    );
    c.bench_function("encode InstallProfile (50 KB profile)", |b| {
        b.iter(|| black_box(&cmd).encode().expect("encodes"))
    });
}

criterion_group!(proto, benches);
criterion_main!(proto);
