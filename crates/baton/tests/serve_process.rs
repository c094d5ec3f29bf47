//! `baton serve` as a process: one server per data directory, log formats, start and shutdown
//! lines, and nothing left behind by a start that fails.

mod common;

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Serve, baton, free_port, serve_args};

#[test]
fn a_second_server_on_the_same_data_directory_exits_within_5_seconds_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = serve_args(&data, free_port());
    args.push("--plain-http".into());
    let (_first, _) = Serve::start(&data, &args);

    let started = Instant::now();
    let mut second = baton()
        .args(serve_args(&data, free_port()))
        .arg("--plain-http")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(5) {
            let _ = second.kill();
            panic!("the second server was still running after 5 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(
        stderr.contains("is in use by another Baton process")
            && stderr.contains("baton serve, pid"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no banner: {out:?}");
}

#[test]
fn json_logs_have_start_and_shutdown_lines_and_text_logs_to_a_file_have_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = serve_args(&data, free_port());
    args.extend(["--plain-http".into(), "--log-format".into(), "json".into()]);
    let (mut server, _) = Serve::start(&data, &args);
    assert!(server.terminate(), "a clean shutdown exits 0");
    let log = server.stderr();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|e| e["fields"]["message"].as_str())
        .collect();
    let first = messages.first().copied();
    assert_eq!(first, Some("baton starting"), "{messages:#?}");
    assert!(
        messages.contains(&"baton server listening"),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("shutting down")),
        "{messages:#?}"
    );
    assert_eq!(
        messages.last().copied(),
        Some("baton stopped"),
        "{messages:#?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["level"].is_string() && e["timestamp"].is_string())
    );
    drop(server);

    // Text (the default) into a file: no terminal, so no colour codes.
    let (mut server, _) = Serve::start(&data, &serve_args(&data, free_port()));
    assert!(server.terminate());
    let log = server.stderr();
    assert!(
        log.contains("baton starting") && log.contains("baton stopped"),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "colour codes in a file: {log:?}");
    // An unknown format is refused by name.
    let out = baton()
        .args(serve_args(&data, free_port()))
        .args(["--log-format", "xml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-format"));
}

#[test]
fn a_failed_start_leaves_no_data_directory_and_says_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new-data");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = baton()
        .args(serve_args(&data, port))
        .arg("--plain-http")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot start the server"), "{stderr}");
    let cause = "Address already in use";
    assert_eq!(stderr.matches(cause).count(), 1, "the cause once: {stderr}");
    assert!(!data.exists(), "half-made data directory left: {stderr}");

    // An existing directory keeps what was there before and loses what the start added.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("operator-notes.txt"), "mine").unwrap();
    let out = baton()
        .args(serve_args(&data, port))
        .arg("--plain-http")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let mut left: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["operator-notes.txt"]);
    drop(taken);
}
