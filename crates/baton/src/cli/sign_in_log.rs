//! `baton sign-in-log [--user U] [--device D] [--result R] [--reason R] [--since T]
//! [--until T] [--limit N] [--csv]`: the server's sign-in log, newest first, as JSON or
//! (with `--csv`) as the CSV the API exports.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use http::Method;

use baton_server::sign_in_log::{ReasonCode, SignInResult};

use super::admin_client::{AdminClient, Connection};

/// `baton sign-in-log` flags.
#[derive(Debug, Args)]
pub struct SignInLogArgs {
    #[command(flatten)]
    pub(crate) conn: Connection,
    #[command(flatten)]
    pub(crate) view: super::output::View,
    /// Only this username (case-insensitive).
    #[arg(long = "user")]
    user: Option<String>,
    /// Only this device (UDID or enrollment id).
    #[arg(long)]
    device: Option<String>,
    /// Only this result: success, failure, interrupted, signed_out.
    #[arg(long, value_parser = |s: &str| s.parse::<SignInResult>())]
    result: Option<SignInResult>,
    /// Only this reason: success, bad_credentials, locked_out, disabled_user, policy,
    /// interrupted, expired.
    #[arg(long, value_parser = |s: &str| s.parse::<ReasonCode>())]
    reason: Option<ReasonCode>,
    /// Entries at or after this time (RFC 3339, a date, Unix seconds, or a time ago: 30m,
    /// 1h, 2d, 1w).
    #[arg(long)]
    since: Option<String>,
    /// Entries before this time (RFC 3339, a date, Unix seconds, or a time ago).
    #[arg(long)]
    until: Option<String>,
    /// How many entries (1 to 10000; the server's default is 100).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    limit: Option<u64>,
    /// Print CSV instead of JSON.
    #[arg(long)]
    csv: bool,
}

impl SignInLogArgs {
    /// The API path (under `/api/v1`) with the query string.
    pub fn path(&self) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        let mut add = |name: &'static str, value: Option<String>| {
            if let Some(v) = value {
                params.push((name, v));
            }
        };
        add("username", self.user.clone());
        add("device", self.device.clone());
        add("result", self.result.map(|r| r.as_str().to_owned()));
        add("reason", self.reason.map(|r| r.as_str().to_owned()));
        add("since", self.since.clone());
        add("until", self.until.clone());
        add("limit", self.limit.map(|n| n.to_string()));
        if self.csv {
            add("format", Some("csv".to_owned()));
        }
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_component(v)))
            .collect();
        if query.is_empty() {
            "/sign-in-log".to_owned()
        } else {
            format!("/sign-in-log?{}", query.join("&"))
        }
    }

    /// True when `--csv` was given.
    pub fn wants_csv(&self) -> bool {
        self.csv
    }
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs `baton sign-in-log --csv`: prints the CSV body as it came. Exit 0 on 2xx, 1 on an
/// error answer (its JSON on stderr), 2 when the server cannot be reached.
pub fn run_csv(args: &SignInLogArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("baton: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let answer = runtime.block_on(async {
        let client = AdminClient::new(&args.conn)?;
        client.call(Method::GET, &args.path(), None).await
    });
    match answer {
        Ok(answer) if (200..300).contains(&answer.status) => {
            let mut out = std::io::stdout().lock();
            if out.write_all(&answer.body).is_err() {
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            eprintln!(
                "baton: the server answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body).trim()
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("baton: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: SignInLogArgs,
    }

    #[test]
    fn flags_become_an_encoded_query() {
        let t = T::parse_from(["baton", "--api-key", "k"]);
        assert_eq!(t.a.path(), "/sign-in-log");
        let t = T::parse_from([
            "baton",
            "--api-key",
            "k",
            "--user",
            "Anne Marie&x=1",
            "--result",
            "FAILURE",
            "--reason",
            "locked_out",
            "--since",
            "2024-05-01T08:00:00+02:00",
            "--limit",
            "50",
            "--csv",
        ]);
        assert_eq!(
            t.a.path(),
            "/sign-in-log?username=Anne%20Marie%26x%3D1&result=failure&reason=locked_out\
             &since=2024-05-01T08%3A00%3A00%2B02%3A00&limit=50&format=csv"
        );
        assert!(t.a.wants_csv());
    }

    #[test]
    fn bad_codes_and_limits_are_refused_before_any_request() {
        for args in [
            ["--result", "won"],
            ["--reason", "typo"],
            ["--limit", "0"],
            ["--limit", "10001"],
        ] {
            let parsed = T::try_parse_from(["baton", "--api-key", "k", args[0], args[1]]);
            assert!(parsed.is_err(), "{args:?}");
        }
    }
}
