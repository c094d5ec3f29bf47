//! `baton serve` as a child process, for the binary's own tests.

#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `baton` with the serve-related variables of the caller's environment removed.
pub fn baton() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
    for var in [
        "BATON_API_KEY",
        "BATON_OPEN_ENROLLMENT",
        "BATON_DATA",
        "BATON_SERVER",
        "BATON_LOG_FORMAT",
        "BATON_CONFIG",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command
}

/// Runs a command line as printed (`baton ...`) with the test binary, in `dir`.
pub fn run_printed(line: &str, dir: &Path, envs: &[(&str, &str)]) -> Output {
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("baton"), "{line}");
    let mut command = baton();
    command.args(words).current_dir(dir);
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("run baton")
}

/// `baton serve`, killed (by its own pid) when dropped.
pub struct Serve {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `serve` arguments of a test server on `data` and `port`.
pub fn serve_args(data: &Path, port: u16) -> Vec<String> {
    vec![
        "serve".into(),
        "--data".into(),
        data.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--public-url".into(),
        format!("https://127.0.0.1:{port}"),
    ]
}

impl Serve {
    /// Starts `baton serve` with `args` and reads its banner (stderr goes to `<data>.log`).
    pub fn start(data: &Path, args: &[String]) -> (Self, Vec<String>) {
        let log = data.with_extension("log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = baton()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("run baton serve");
        let stdout = child.stdout.take().expect("stdout");
        let server = Serve { child, log };
        let banner = server.banner(stdout);
        (server, banner)
    }

    /// The banner's lines, up to the last one (`... Ctrl-C stops the server`).
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
                    self.stderr()
                ),
            }
        }
    }

    /// What the server logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (at most 60 s) for the exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("baton serve did not stop within 60 s of SIGTERM");
    }
}

/// The line after the one containing `marker`, trimmed.
pub fn line_after(banner: &[String], marker: &str) -> Option<String> {
    let at = banner.iter().position(|l| l.contains(marker))?;
    banner.get(at + 1).map(|l| l.trim().to_owned())
}

/// The first line containing `marker`, trimmed.
pub fn line_with(banner: &[String], marker: &str) -> Option<String> {
    banner
        .iter()
        .find(|l| l.contains(marker))
        .map(|l| l.trim().to_owned())
}
