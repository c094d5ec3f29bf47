//! The packaging files at the repository root: `Dockerfile` and `packaging/baton.service`.
//!
//! No container engine runs here, so the image is not built: the Dockerfile is linted by
//! `hadolint` when it is on the PATH, and its key properties (multi-stage, the pinned toolchain,
//! a slim runtime, a non-root user, the data volume) are checked in any case. The unit is
//! checked by `systemd-analyze verify` (with `ExecStart` pointing at the binary under test) when
//! systemd is installed, and its hardening options in any case. `BATON_REQUIRE_EXTERNAL=1`
//! turns a missing `systemd-analyze` into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn on_path(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// Instructions of a Dockerfile with continuation lines joined and comments dropped.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(t);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_small_and_runs_as_non_root() {
    let text = read("Dockerfile");
    let ins = instructions(&text);
    let froms: Vec<&String> = ins.iter().filter(|i| i.starts_with("FROM ")).collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .expect("pinned channel")
        .trim_matches('"');
    assert!(
        froms[0].starts_with(&format!("FROM rust:{channel}-")) && froms[0].ends_with(" AS build"),
        "the build stage uses the pinned toolchain {channel}: {}",
        froms[0]
    );
    assert!(
        froms[1].contains("-slim") && !froms[1].contains("rust:"),
        "the runtime stage is a slim image without the toolchain: {}",
        froms[1]
    );
    // Everything after the last FROM is the runtime image.
    let runtime_start = ins.iter().rposition(|i| i.starts_with("FROM ")).unwrap();
    let runtime = &ins[runtime_start..];
    assert!(
        runtime
            .iter()
            .any(|i| i.starts_with("COPY --from=build ") && i.contains("baton")),
        "only the binary comes from the build stage"
    );
    let user = runtime
        .iter()
        .rfind(|i| i.starts_with("USER "))
        .expect("a USER in the runtime stage");
    let uid = user["USER ".len()..].split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "runs as non-root: {user}");
    assert!(
        runtime
            .iter()
            .any(|i| i.starts_with("VOLUME ") && i.contains("/var/lib/baton")),
        "the data directory is a volume"
    );
    assert!(runtime.iter().any(|i| i == "EXPOSE 8443"));
    for i in runtime.iter().filter(|i| i.contains("apt-get install")) {
        assert!(i.contains("--no-install-recommends"), "{i}");
        assert!(i.contains("rm -rf /var/lib/apt/lists/*"), "{i}");
    }
    assert!(
        ins.iter()
            .any(|i| i.starts_with("RUN cargo build --release --locked")),
        "the build uses Cargo.lock"
    );
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target"));

    if on_path("hadolint") {
        let out = Command::new("hadolint")
            .arg(repo_root().join("Dockerfile"))
            .output()
            .expect("run hadolint");
        assert!(
            out.status.success(),
            "hadolint: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("hadolint is not installed: Dockerfile checked by this test's rules only");
    }
}

/// The settings of the `[Service]` section, in order (a key may repeat).
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let unit = read("packaging/baton.service");
    let settings = service_settings(&unit);
    let get = |key: &str| {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("StateDirectory", "baton"),
        ("StateDirectoryMode", "0700"),
        ("UMask", "0077"),
    ] {
        assert_eq!(get(key), [value], "{key}");
    }
    assert_eq!(
        get("CapabilityBoundingSet"),
        ["CAP_NET_BIND_SERVICE"],
        "no capability beyond binding a low port"
    );
    assert!(get("SystemCallFilter").contains(&"@system-service"));
    // The data directory the unit passes is the state directory, and every flag it passes
    // exists.
    let exec = get("ExecStart");
    assert_eq!(exec.len(), 1);
    assert!(
        exec[0].contains("serve --data ${STATE_DIRECTORY}"),
        "{}",
        exec[0]
    );
    let help = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["serve", "--help"])
        .output()
        .expect("baton serve --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in exec[0].split_whitespace().filter(|w| w.starts_with("--")) {
        assert!(help.contains(flag), "{flag} is not a flag of baton serve");
    }

    if !on_path("systemd-analyze") {
        assert!(
            std::env::var_os("BATON_REQUIRE_EXTERNAL").is_none(),
            "systemd-analyze is not installed and BATON_REQUIRE_EXTERNAL is set"
        );
        eprintln!("systemd-analyze is not installed: the unit is checked by this test only");
        return;
    }
    // verify needs the binary at ExecStart: point it at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/baton", env!("CARGO_BIN_EXE_baton")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // verify exits 0 on some warnings (unknown keys); none are allowed.
    let own: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("baton.service"))
        .collect();
    assert!(own.is_empty(), "systemd-analyze verify: {own:?}");
}
