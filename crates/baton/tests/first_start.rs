//! The README's quick start: `baton serve` on an empty data directory prints, next to the admin
//! API key, an enrollment URL that works. A simulated iPhone (baton-sim) enrolls with it; the
//! URL is good for that one device, and a second start prints no new one.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use baton_sim::{ServerTrust, SimDevice, SimOptions, Transport};

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `baton serve`, killed (by its own pid) when dropped.
struct Serve {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(data: &Path, port: u16) -> (Self, Vec<String>) {
        let log = data.with_extension("log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--public-url")
            .arg(format!("https://127.0.0.1:{port}"))
            .arg("--enrollment-push-topic")
            .arg("com.apple.mgmt.External.first-start-test")
            .env_remove("BATON_API_KEY")
            .env_remove("BATON_OPEN_ENROLLMENT")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("run baton serve");
        let stdout = child.stdout.take().expect("stdout");
        let server = Serve { child, log };
        let banner = server.banner(stdout);
        (server, banner)
    }

    /// The banner's lines, up to the last one (`see docs/api.md ...`).
    fn banner(&self, stdout: ChildStdout) -> Vec<String> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut lines = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    let last = line.contains("Ctrl-C stops the server");
                    lines.push(line);
                    if last {
                        return lines;
                    }
                }
                Err(_) => panic!(
                    "no complete banner; stdout so far: {lines:#?}\nstderr:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
        }
    }
}

/// The line after the one containing `marker`, trimmed.
fn line_after(banner: &[String], marker: &str) -> Option<String> {
    let at = banner.iter().position(|l| l.contains(marker))?;
    banner.get(at + 1).map(|l| l.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_prints_an_enrollment_url_that_enrolls_one_device() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let port = free_port();
    let (server, banner) = Serve::start(&data, port);
    let key = line_after(&banner, "Admin API key").expect("the API key is printed");
    assert!(key.len() >= 20, "{banner:#?}");
    let url = line_after(&banner, "enroll a device: open this URL").unwrap_or_else(|| {
        panic!("no enrollment URL in the banner: {banner:#?}");
    });
    assert!(
        url.starts_with(&format!("https://127.0.0.1:{port}/mdm/enroll?token=")),
        "{url}"
    );

    let transport = Transport::new(&ServerTrust::AcceptAny).expect("transport");
    let device = SimDevice::enroll_from_profile_url(&url, SimOptions::default(), transport.clone())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "enrolling with {url}: {e}\nstderr:\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            )
        });
    // Enrolled, and the device names the token it came with.
    let authorization = format!("Bearer {key}");
    let reply = transport
        .send(
            http::Method::GET,
            &format!("https://127.0.0.1:{port}/api/v1/devices/{}", device.udid()),
            &[("Authorization", authorization.as_str())],
            bytes::Bytes::new(),
        )
        .await
        .expect("device view");
    assert_eq!(reply.status, 200);
    let view: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!(view["enabled"], true, "{view}");
    assert_eq!(view["enrollment_token"]["label"], "first device", "{view}");
    // The URL was for one device.
    let again = transport
        .send(http::Method::GET, &url, &[], bytes::Bytes::new())
        .await
        .expect("second download");
    assert_eq!(again.status, 403);
    drop(server);

    // A second start on the same data prints no new URL (and no key), and says how to get one.
    let (_server, banner) = Serve::start(&data, free_port());
    assert!(
        line_after(&banner, "enroll a device: open this URL").is_none(),
        "{banner:#?}"
    );
    assert!(
        banner
            .iter()
            .any(|l| l.contains("baton enrollment-token create")),
        "{banner:#?}"
    );
    assert!(
        !banner.iter().any(|l| l.contains("Admin API key")),
        "{banner:#?}"
    );
}
