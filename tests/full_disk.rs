//! A data directory on a small tmpfs filled up by something else: below the free-space floor
//! device check-ins get a quick 503 (never a hang, never a 401), admin writes a 507 with a reason,
//! `/healthz` and `/readyz` say why; once the space is freed the same server process serves
//! again and nothing written before was lost.
//!
//! Needs root (to mount the tmpfs): skipped with a notice otherwise, unless
//! `BATON_REQUIRE_EXTERNAL` is set, which turns the skip into a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_server::disk_floor::MinFreeDisk;
use http::Method;

const UDID: &str = "00008030-001A2B3C4D5EF00D";
const MIB: u64 = 1024 * 1024;
/// The floor the server runs with in this test.
const FLOOR: u64 = 4 * MIB;
/// Longer than the floor's cached reading (1 s).
const READING_AGE: Duration = Duration::from_millis(1300);

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    _parent: tempfile::TempDir,
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `24m`), or None (with a notice) when that is not possible.
    fn mount(test: &str, size: &str) -> Option<Self> {
        let skip = |why: &str| {
            assert!(
                std::env::var_os("BATON_REQUIRE_EXTERNAL").is_none(),
                "{test}: {why} and BATON_REQUIRE_EXTERNAL is set"
            );
            eprintln!("NOTICE: {why}; {test} skipped");
            None
        };
        if !rustix::process::geteuid().is_root() {
            return skip("not running as root, cannot mount a tmpfs");
        }
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status();
        match status {
            Ok(s) if s.success() => Some(Self {
                _parent: parent,
                dir,
            }),
            Ok(s) => skip(&format!("mount -t tmpfs failed ({s})")),
            Err(e) => skip(&format!("cannot run mount: {e}")),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a file still open (a leaked handle after a failed assertion) must not keep
        // the mount around.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let s = rustix::fs::statvfs(dir).unwrap();
    s.f_bavail * s.f_frsize
}

/// Writes a ballast file until free space is `leave` bytes.
fn fill_until(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        let free = free_bytes(dir);
        if free <= leave {
            break;
        }
        let n = usize::try_from((free - leave).min(chunk.len() as u64)).unwrap();
        file.write_all(&chunk[..n]).unwrap();
        file.sync_data().unwrap();
    }
    path
}

#[tokio::test]
async fn below_the_floor_writes_fail_fast_and_the_server_heals_when_space_returns() {
    let test = "full_disk";
    let Some(tmpfs) = Tmpfs::mount(test, "24m") else {
        return;
    };
    let pki = Pki::generate();
    let device = pki.device(UDID);
    let mut server = TestServer::start(
        &pki,
        ServerOptions {
            data_dir: Some(tmpfs.dir.join("data")),
            min_free_disk: MinFreeDisk::Bytes(FLOOR),
            ..ServerOptions::default()
        },
    )
    .await;
    server.enroll(&device).await;
    let before = server
        .queue(UDID, serde_json::json!({"request_type": "ProfileList"}))
        .await;
    server.assert_healthy().await;
    let r = server.client.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "ready\n");

    // Something else fills the disk to below the floor (but not to the last byte).
    let ballast = fill_until(&tmpfs.dir, FLOOR / 2);
    tokio::time::sleep(READING_AGE).await;

    // A device gets a quick 503 (never 401: iOS would unenroll), on both device routes.
    let started = Instant::now();
    let r = server.connect(&device, device.idle()).await;
    assert_eq!(r.status, 503, "{}", r.text());
    let r = server.checkin(&device, device.token_update()).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refusals took {:?}",
        started.elapsed()
    );

    // An admin write gets 507 with a reason; reads still work.
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/commands"),
            Some(serde_json::json!({"request_type": "DeviceInformation"})),
        )
        .await;
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(r.json()["error"], "insufficient_storage");
    assert!(
        r.json()["message"].as_str().unwrap().contains("floor"),
        "{}",
        r.text()
    );
    assert_eq!(server.operator_commands(UDID).await.len(), 1);

    // Health and readiness say why.
    for path in ["/healthz", "/readyz"] {
        let r = server.client.get(path).await;
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert!(r.text().contains("below the floor"), "{path}: {}", r.text());
    }

    // Space returns: the same process serves again without a restart.
    std::fs::remove_file(&ballast).unwrap();
    tokio::time::sleep(READING_AGE).await;
    server.assert_healthy().await;
    let r = server.client.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = server.checkin(&device, device.token_update()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = server.connect(&device, device.idle()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        String::from_utf8_lossy(&r.body).contains(&before),
        "the command queued before the disk filled is delivered"
    );
    let after = server
        .queue(
            UDID,
            serde_json::json!({"request_type": "DeviceInformation"}),
        )
        .await;

    // Nothing was lost, also across a restart.
    server.restart().await;
    let commands = server.commands(UDID).await;
    let uuids: Vec<&str> = commands
        .iter()
        .filter_map(|c| c["command_uuid"].as_str())
        .collect();
    assert!(
        uuids.contains(&before.as_str()) && uuids.contains(&after.as_str()),
        "{commands:?}"
    );
    server.stop().await;
    drop(tmpfs);
}
