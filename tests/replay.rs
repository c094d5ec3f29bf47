//! Replays every recorded conversation in `fixtures/replay/*.yaml` against a live server. New
//! device behaviours are added as fixtures, not as test code (format: `support/replay.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_fixtures() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/replay");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        let started = std::time::Instant::now();
        if let Err(e) = baton_e2e::replay::run_file(file).await {
            failures.push(e);
        }
        eprintln!("{}: {:?}", file.display(), started.elapsed());
    }
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
