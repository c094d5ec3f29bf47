//! The operator CLI against a real `baton serve`: tables by default, JSON with `--output json`,
//! secrets redacted unless `--show-secrets`, the documented exit codes (0 ok, 2 usage, 3 not
//! found, 4 invalid or lint errors, 5 unreachable), and TLS failures explained.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const KEY: &str = "cli-test-key-0123456789";

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
    url: String,
    data: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts a server on `data`; waits (bounded) for its banner's last line.
    fn start(data: &Path, plain: bool) -> Self {
        let port = free_port();
        let scheme = if plain { "http" } else { "https" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
        command
            .arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--public-url")
            .arg(&url)
            .env("BATON_API_KEY", KEY)
            .env_remove("BATON_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if plain {
            command.arg("--plain-http");
        }
        let mut child = command.spawn().expect("run baton serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let server = Serve {
            child,
            url,
            data: data.to_owned(),
        };
        loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) if line.contains("Ctrl-C stops the server") => return server,
                Ok(_) => {}
                Err(e) => panic!("baton serve did not start: {e}"),
            }
        }
    }

    /// Runs `baton ARGS` against this server (key from the environment).
    fn cli(&self, args: &[&str]) -> Output {
        cli_with(args, &[("BATON_SERVER", &self.url), ("BATON_API_KEY", KEY)])
    }
}

fn cli_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
    command
        .args(args)
        .env_remove("BATON_SERVER")
        .env_remove("BATON_API_KEY")
        .env_remove("BATON_OUTPUT")
        .env_remove("BATON_CA_FILE")
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run baton")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

const WIFI: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PayloadContent</key><array><dict>
<key>PayloadType</key><string>com.apple.wifi.managed</string>
<key>PayloadIdentifier</key><string>ward.wifi</string>
<key>PayloadUUID</key><string>6F1E0B1A-2C3D-4E5F-8A9B-0C1D2E3F4A5B</string>
<key>PayloadVersion</key><integer>1</integer>
<key>SSID_STR</key><string>ward-b</string>
<key>EncryptionType</key><string>WPA2</string>
<key>Password</key><string>correct-horse-battery</string>
</dict></array>
<key>PayloadDisplayName</key><string>Ward Wi-Fi</string>
<key>PayloadIdentifier</key><string>ward</string>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadUUID</key><string>6F1E0B1A-2C3D-4E5F-8A9B-0C1D2E3F4A5C</string>
<key>PayloadVersion</key><integer>1</integer>
</dict></plist>"#;

#[test]
fn lists_are_tables_json_is_for_scripts_and_secrets_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(&dir.path().join("data"), true);

    let add = cli_with(
        &["user", "add", "alice", "--full-name", "Alice Example"],
        &[
            ("BATON_SERVER", &server.url),
            ("BATON_API_KEY", KEY),
            ("BATON_USER_PASSWORD", "a-long-password"),
        ],
    );
    assert_eq!(code(&add), 0, "{}", stderr(&add));

    // A table: a header, one line per user, no JSON.
    let list = server.cli(&["user", "list"]);
    assert_eq!(code(&list), 0, "{}", stderr(&list));
    let text = stdout(&list);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("USERNAME"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("alice") && l.contains("Alice Example")),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.starts_with("nobody")), "{text}");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(!text.contains('{'), "{text}");

    // JSON for scripts (also with -o).
    for flag in [["--output", "json"], ["-o", "json"]] {
        let json = server.cli(&["user", "list", flag[0], flag[1]]);
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
        assert_eq!(v["users"].as_array().map(Vec::len), Some(2));
    }

    // A Wi-Fi password inside a profile: hidden in tables and JSON, shown on request.
    let file = dir.path().join("ward-wifi.mobileconfig");
    std::fs::write(&file, WIFI).unwrap();
    let up = server.cli(&[
        "item",
        "add-profile",
        file.to_str().unwrap(),
        "--id",
        "wifi",
    ]);
    assert_eq!(code(&up), 0, "{}", stderr(&up));
    assert!(!stdout(&up).contains("correct-horse"), "{}", stdout(&up));
    for args in [
        &["item", "list"][..],
        &["item", "list", "-o", "json"],
        &["item", "show", "wifi"],
        &["item", "show", "wifi", "-o", "json"],
    ] {
        let out = server.cli(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert!(
            !stdout(&out).contains("correct-horse"),
            "{args:?}: {}",
            stdout(&out)
        );
    }
    let json = stdout(&server.cli(&["item", "show", "wifi", "-o", "json"]));
    assert!(json.contains("<redacted>"), "{json}");
    assert!(json.contains("ward-b"), "the SSID is not a secret: {json}");
    let shown = server.cli(&["item", "show", "wifi", "-o", "json", "--show-secrets"]);
    assert!(stdout(&shown).contains("correct-horse-battery"));

    // A new enrollment token is shown once, so its secret is printed.
    let token = server.cli(&[
        "enrollment-token",
        "create",
        "--label",
        "cart 3",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&token.stdout).expect("JSON");
    assert!(
        v["url"].as_str().is_some_and(|u| u.contains("token=")),
        "{v}"
    );

    // The everyday commands: web clip, app, certificate items; import; password; delete.
    let clip = server.cli(&[
        "item",
        "add-web-clip",
        "--label",
        "Intranet",
        "--url",
        "https://intranet.example",
        "--id",
        "intranet",
    ]);
    assert_eq!(code(&clip), 0, "{}", stderr(&clip));
    let app = server.cli(&[
        "item",
        "add-app",
        "--bundle-id",
        "com.example.ward",
        "--itunes-store-id",
        "123456",
        "--vpp",
        "--id",
        "ward-app",
    ]);
    assert_eq!(code(&app), 0, "{}", stderr(&app));
    let cert = server.cli(&[
        "item",
        "add-certificate",
        "--subject",
        "CN=$USER.username",
        "--id",
        "identity",
    ]);
    assert_eq!(code(&cert), 0, "{}", stderr(&cert));
    let items = stdout(&server.cli(&["item", "list"]));
    for (id, kind) in [
        ("intranet", "web_clip"),
        ("ward-app", "app"),
        ("identity", "certificate"),
    ] {
        assert!(
            items.lines().any(|l| l.starts_with(id) && l.contains(kind)),
            "{items}"
        );
    }
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "username,password\nbob,bobs-password-1\ncarol,carols-password\n",
    )
    .unwrap();
    let import = server.cli(&["user", "import", csv.to_str().unwrap()]);
    assert_eq!(code(&import), 0, "{}", stderr(&import));
    assert!(
        stdout(&import).contains("imported: 2"),
        "{}",
        stdout(&import)
    );
    let set = cli_with(
        &["user", "set-password", "bob"],
        &[
            ("BATON_SERVER", &server.url),
            ("BATON_API_KEY", KEY),
            ("BATON_USER_PASSWORD", "a-new-password"),
        ],
    );
    assert_eq!(code(&set), 0, "{}", stderr(&set));
    assert_eq!(code(&server.cli(&["item", "delete", "intranet"])), 0);
    let group = server.cli(&["group", "add", "nurses", "--member", "bob"]);
    assert_eq!(code(&group), 0, "{}", stderr(&group));
    let members = server.cli(&["group", "members", "nurses"]);
    assert_eq!(code(&members), 0, "{}", stderr(&members));
    let text = stdout(&members);
    assert!(text.lines().any(|l| l.starts_with("bob")), "{text}");
    assert!(!text.contains("carol"), "{text}");
    // Usernames are one name whatever their case and surrounding space.
    let shown = server.cli(&["user", "show", " ALICE "]);
    assert_eq!(code(&shown), 0, "{}", stderr(&shown));
    assert!(stdout(&shown).contains("alice"));
    let dist = server.cli(&["distribution", "add", "wifi", "--user", "Bob"]);
    assert_eq!(code(&dist), 0, "{}", stderr(&dist));
    assert!(stdout(&dist).contains("users (bob)") || stdout(&dist).contains("bob"));
    assert_eq!(code(&server.cli(&["group", "delete", "nurses"])), 0);
    let groups = stdout(&server.cli(&["group", "list"]));
    assert!(!groups.contains("nurses"), "{groups}");
}

#[test]
fn exit_codes_say_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(&dir.path().join("data"), true);

    // 3: not found, with the server's message on stderr.
    let missing = server.cli(&["user", "show", "carol"]);
    assert_eq!(code(&missing), 3, "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("not found"),
        "{}",
        stderr(&missing)
    );
    assert!(stdout(&missing).is_empty());
    assert_eq!(code(&server.cli(&["item", "delete", "no-such-item"])), 3);
    assert_eq!(
        code(&server.cli(&["device", "command", "NO-SUCH-UDID", "ProfileList"])),
        3
    );

    // 4: the server refused the input.
    let bad = cli_with(
        &["user", "add", "   "],
        &[
            ("BATON_SERVER", &server.url),
            ("BATON_API_KEY", KEY),
            ("BATON_USER_PASSWORD", "a-long-password"),
        ],
    );
    assert_eq!(code(&bad), 4, "{}", stderr(&bad));

    // 4: the password policy (at least 8 characters), with the rule in the message.
    let short = cli_with(
        &["user", "add", "dave"],
        &[
            ("BATON_SERVER", &server.url),
            ("BATON_API_KEY", KEY),
            ("BATON_USER_PASSWORD", "short"),
        ],
    );
    assert_eq!(code(&short), 4, "{}", stderr(&short));
    assert!(stderr(&short).contains("at least 8"), "{}", stderr(&short));
    // 4: an unknown group is refused like an unknown item.
    let unknown_group = server.cli(&["distribution", "add", "sign-in", "--group", "no-such-group"]);
    assert_eq!(code(&unknown_group), 4, "{}", stderr(&unknown_group));
    assert!(
        stderr(&unknown_group).contains("unknown group"),
        "{}",
        stderr(&unknown_group)
    );
    let unknown_item = server.cli(&["distribution", "add", "no-such-item", "--all"]);
    assert_eq!(code(&unknown_item), 4, "{}", stderr(&unknown_item));
    // 4: a file that is not a profile, with a sentence rather than a parser's debug dump.
    let junk = dir.path().join("junk.mobileconfig");
    std::fs::write(&junk, "hello, not a plist").unwrap();
    let upload = server.cli(&["item", "add-profile", junk.to_str().unwrap()]);
    assert_eq!(code(&upload), 4, "{}", stderr(&upload));
    assert!(
        stderr(&upload).contains("not a configuration profile"),
        "{}",
        stderr(&upload)
    );
    assert!(!stderr(&upload).contains("{ "), "{}", stderr(&upload));

    // 2: usage (clap), and local input that cannot be used.
    assert_eq!(code(&server.cli(&["user", "list", "--no-such-flag"])), 2);
    assert_eq!(
        code(&server.cli(&["item", "add-profile", "/nonexistent.mobileconfig"])),
        2
    );
    assert_eq!(
        code(&cli_with(
            &["user", "list"],
            &[("BATON_SERVER", &server.url)]
        )),
        2
    );

    // 1: a refused key, with what to do.
    let wrong = cli_with(
        &["user", "list"],
        &[
            ("BATON_SERVER", &server.url),
            ("BATON_API_KEY", "wrong-key-0123456789"),
        ],
    );
    assert_eq!(code(&wrong), 1);
    assert!(stderr(&wrong).contains("API key"), "{}", stderr(&wrong));

    // The key from a file, not the command line.
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let from_file = cli_with(
        &["user", "list", "--api-key-file", key_file.to_str().unwrap()],
        &[("BATON_SERVER", &server.url)],
    );
    assert_eq!(code(&from_file), 0, "{}", stderr(&from_file));

    // 0 then 4: `device lint` fails once an error-level lint appears.
    assert_eq!(code(&server.cli(&["device", "lint"])), 0);
    assert_eq!(
        code(&server.cli(&["distribution", "delete", "sign-in-to-nobody"])),
        0
    );
    let lint = server.cli(&["device", "lint"]);
    assert_eq!(code(&lint), 4, "{}", stdout(&lint));
    assert!(
        stdout(&lint).contains("sign_in_clip_not_for_nobody"),
        "{}",
        stdout(&lint)
    );

    // 5: nothing listens there.
    let port = free_port();
    let refused = cli_with(
        &["user", "list"],
        &[
            ("BATON_SERVER", &format!("http://127.0.0.1:{port}")),
            ("BATON_API_KEY", KEY),
        ],
    );
    assert_eq!(code(&refused), 5);
    assert!(
        stderr(&refused).contains("connection refused"),
        "{}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains("BATON_SERVER"),
        "{}",
        stderr(&refused)
    );

    // 5: HTTPS to a plain-HTTP server.
    let tls_to_plain = cli_with(
        &["user", "list"],
        &[
            ("BATON_SERVER", &server.url.replace("http://", "https://")),
            ("BATON_API_KEY", KEY),
        ],
    );
    assert_eq!(code(&tls_to_plain), 5);
    assert!(
        stderr(&tls_to_plain).contains("http://"),
        "{}",
        stderr(&tls_to_plain)
    );
}

#[test]
fn an_unknown_ca_is_explained_and_the_ca_file_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(&dir.path().join("data"), false);
    let unknown = server.cli(&["user", "list"]);
    assert_eq!(code(&unknown), 5);
    let message = stderr(&unknown);
    assert!(message.contains("--ca-file"), "{message}");
    assert!(!message.contains("client error (Connect)"), "{message}");
    let ca = server.data.join("ca").join("ca.pem");
    let ok = server.cli(&["user", "list", "--ca-file", ca.to_str().unwrap()]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
}
