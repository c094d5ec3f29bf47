//! Runs the built `baton inspect` over every fixture, every captured device sample (when
//! `../shared/device-samples` exists) and a set of hostile inputs, checking exit codes and output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn inspect(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("inspect")
        .arg("--json")
        .arg(path)
        .output()
        .expect("run baton")
}

fn decoded(path: &Path) -> Value {
    let out = inspect(path);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: stdout is not JSON: {e}", path.display()))
}

fn rejected(path: &Path) -> String {
    let out = inspect(path);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{} was not rejected",
        path.display()
    );
    assert!(
        out.stdout.is_empty(),
        "{}: stdout not empty",
        path.display()
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    err
}

#[test]
fn every_fixture_is_classified_by_its_directory() {
    let mut count = 0;
    for kind in ["checkin", "report", "command", "profile"] {
        let dir = repo_root().join("fixtures/proto").join(kind);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let doc = decoded(&path);
            assert_eq!(doc["kind"], kind, "{}", path.display());
            count += 1;
        }
    }
    assert!(count >= 30, "only {count} fixtures");
    let shared =
        decoded(&repo_root().join("fixtures/proto/checkin/token_update_shared_ipad_user.plist"));
    assert_eq!(shared["message_type"], "TokenUpdate");
    assert_eq!(shared["channel"], "shared-ipad-user");
    assert_eq!(
        shared["enrollment_id"],
        "00008103-000A1B2C3E4F001E:maria.lopez@school.example.org"
    );
    assert_eq!(shared["content"]["PushMagic"], "<redacted>");
    let error = decoded(&repo_root().join("fixtures/proto/report/error_install_profile.plist"));
    assert_eq!(error["status"], "Error");
    assert_eq!(error["error_chain"][0]["code"], 4001);
    let install = decoded(&repo_root().join("fixtures/proto/command/install_profile.plist"));
    assert_eq!(install["request_type"], "InstallProfile");
    assert_eq!(install["profile"]["identifier"], "org.example.baton.signin");
    let profile = decoded(&repo_root().join("fixtures/proto/profile/enrollment.mobileconfig"));
    assert_eq!(profile["identifier"], "org.example.baton.enroll");
    assert_eq!(profile["payloads"][2]["type"], "com.apple.mdm");
}

#[test]
fn every_device_sample_is_classified_when_present() {
    let dir = repo_root().join("../shared/device-samples");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("NOTICE: {} not found; skipped", dir.display());
        return;
    };
    for path in entries.map(|e| e.unwrap().path()) {
        if path.extension().and_then(|e| e.to_str()) != Some("plist") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let doc = decoded(&path);
        if name.contains("Authenticate") || name.contains("TokenUpdate") {
            assert_eq!(doc["kind"], "checkin", "{name}");
            let t = doc["message_type"].as_str().unwrap();
            assert!(name.contains(t), "{name} classified as {t}");
        } else {
            assert_eq!(doc["kind"], "report", "{name}");
            assert_eq!(doc["status"], "Acknowledged", "{name}");
            let k = doc["response_kind"].as_str().unwrap_or("none");
            assert!(name.contains(k), "{name} classified as {k}");
            assert!(!doc["view"].is_null(), "{name}: no typed view");
        }
    }
}

#[test]
fn bad_inputs_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let good = std::fs::read(repo_root().join("fixtures/proto/checkin/token_update_device.plist"))
        .unwrap();
    let truncated = write("truncated.plist", &good[..good.len() / 2]);
    assert!(rejected(&truncated).contains("plist"));
    rejected(&write("text.plist", b"hello, this is not a plist\n"));
    rejected(&write("png.plist", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"));
    rejected(&write("empty.plist", b""));
    let oversize = vec![b' '; 5 * 1024 * 1024];
    assert!(rejected(&write("oversize.plist", &oversize)).contains("oversize"));
    let deep = format!(
        "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>a</key>{}{}</dict></plist>",
        "<array>".repeat(100_000),
        "</array>".repeat(100_000)
    );
    assert!(rejected(&write("deep.plist", deep.as_bytes())).contains("depth"));
    assert!(rejected(&write("binary.plist", b"bplist00\xd0\x08")).contains("binary"));
    assert!(rejected(&write("signed.mobileconfig", &[0x30, 0x82, 0x10, 0x00])).contains("signed"));
    let unknown = String::from_utf8(good.clone())
        .unwrap()
        .replace(">TokenUpdate<", ">Teleport<");
    assert!(rejected(&write("unknown.plist", unknown.as_bytes())).contains("Teleport"));
    let array = b"<?xml version=\"1.0\"?><plist version=\"1.0\"><array/></plist>";
    rejected(&write("array.plist", array));
    let other = b"<plist version=\"1.0\"><dict><key>Hello</key><string>x</string></dict></plist>";
    rejected(&write("other.plist", other));
    rejected(&tmp.path().join("does-not-exist.plist"));
}
