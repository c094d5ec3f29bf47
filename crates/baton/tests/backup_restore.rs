//! `baton backup` and `baton restore` against real `baton serve` processes: a backup of a
//! running server (which pauses to write it) or a stopped one restores into a directory a new
//! server runs on with the same data; a running server's directory is never overwritten; a
//! damaged backup changes nothing.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Serve, baton, free_port, serve_args};

const KEY: &str = "backup-test-key-0123456789abcdef";

fn start(data: &Path) -> (Serve, String) {
    let port = free_port();
    let mut args = serve_args(data, port);
    args.extend(["--plain-http".into(), "--api-key".into(), KEY.into()]);
    let (server, _) = Serve::start(data, &args);
    (server, format!("http://127.0.0.1:{port}"))
}

fn cli(server: &str, args: &[&str]) -> Output {
    baton()
        .args(args)
        .args(["--server", server, "--api-key", KEY])
        .output()
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    baton().args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn backups_of_running_and_stopped_servers_restore_and_a_running_server_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = dir.path().join("backup");
    let (mut server, url) = start(&data);
    let out = cli(
        &url,
        &["user", "add", "alice", "--password", "correct horse 1"],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Running: the server pauses, writes the backup and serves again on the same address.
    let data_s = data.to_str().unwrap();
    let online = dir.path().join("online");
    let online_s = online.to_str().unwrap();
    let out = run(&["backup", "--data", data_s, "--out", online_s]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(online.join("store.jsonl").is_file() && online.join("ca/ca-key.pem").is_file());
    let out = cli(&url, &["user", "show", "alice"]);
    assert!(out.status.success(), "serving again: {}", text(&out));
    let log = server.stderr();
    assert!(
        log.contains("backup requested: pausing service") && log.contains("serving again"),
        "{log}"
    );
    // Changes after the backup are not in it.
    let out = cli(
        &url,
        &["user", "add", "bob", "--password", "correct horse 2"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(server.terminate());
    drop(server);

    let backup_s = backup.to_str().unwrap();
    let out = run(&["backup", "--data", data_s, "--out", backup_s]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(backup.join("store.jsonl").is_file() && backup.join("ca/ca-key.pem").is_file());
    let out = run(&[
        "restore",
        "--from",
        online_s,
        "--data",
        dir.path().join("from-online").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let (mut server, url) = start(&dir.path().join("from-online"));
    assert!(cli(&url, &["user", "show", "alice"]).status.success());
    assert!(
        !cli(&url, &["user", "show", "bob"]).status.success(),
        "bob came after the backup"
    );
    assert!(server.terminate());
    drop(server);
    // An existing target is never written over.
    let out = run(&["backup", "--data", data_s, "--out", backup_s]);
    assert!(!out.status.success() && text(&out).contains("exists"));

    // Restore over a running server's directory: refused.
    let (mut server, url) = start(&data);
    let out = run(&["restore", "--from", backup_s, "--data", data_s, "--replace"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("running Baton process"),
        "{}",
        text(&out)
    );
    let out = cli(&url, &["user", "show", "alice"]);
    assert!(out.status.success(), "still serving: {}", text(&out));
    assert!(server.terminate());
    drop(server);

    // Into a new directory: a server on it has alice and the same CA.
    let restored = dir.path().join("restored");
    let restored_s = restored.to_str().unwrap();
    let out = run(&["restore", "--from", backup_s, "--data", restored_s]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(restored.join("ca/ca.pem")).unwrap(),
        std::fs::read(data.join("ca/ca.pem")).unwrap()
    );
    let (mut server, url) = start(&restored);
    let out = cli(&url, &["user", "show", "alice"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice"));
    assert!(server.terminate());
    drop(server);

    // Over a directory with data: only with --replace, which keeps the old one aside.
    let out = run(&["restore", "--from", backup_s, "--data", data_s]);
    assert!(
        !out.status.success() && text(&out).contains("--replace"),
        "{}",
        text(&out)
    );
    let out = run(&["restore", "--from", backup_s, "--data", data_s, "--replace"]);
    assert!(out.status.success(), "{}", text(&out));
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("data.replaced-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");

    // A damaged backup: refused, the target untouched and no staging left behind.
    let store = std::fs::read_to_string(backup.join("store.jsonl")).unwrap();
    let cut: Vec<&str> = store.lines().collect();
    std::fs::write(backup.join("store.jsonl"), cut[..cut.len() - 1].join("\n")).unwrap();
    let fresh = dir.path().join("fresh");
    let out = run(&[
        "restore",
        "--from",
        backup_s,
        "--data",
        fresh.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("incomplete"), "{}", text(&out));
    assert!(!fresh.exists());
    let staging_left = std::fs::read_dir(dir.path()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".restoring-")
    });
    assert!(!staging_left);
}
