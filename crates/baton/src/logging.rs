//! Logging of `baton serve`: the subscriber (text or JSON lines on stderr, colour only on a
//! terminal) and error chains printed once.

use std::io::IsTerminal;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One human-readable line per event; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`), never coloured.
    Json,
}

/// Installs the subscriber: stderr, filtered by `RUST_LOG` (default `info`). Only the binary
/// installs one.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// An error and its causes as one line, leaving out a cause whose text the message before it
/// already contains (many errors print their source inside their own message).
pub fn cause_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || previous.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
        previous = text;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_repeated_in_its_parent_is_printed_once() {
        let io = std::io::Error::other("Address already in use (os error 98)");
        let inner = anyhow::Error::new(io)
            .context("cannot listen on 127.0.0.1:1: Address already in use (os error 98)");
        let outer = inner.context("cannot start the server");
        assert_eq!(
            cause_chain(&outer),
            "cannot start the server: cannot listen on 127.0.0.1:1: Address already in use (os error 98)"
        );
        let plain = anyhow::anyhow!("a").context("b");
        assert_eq!(cause_chain(&plain), "b: a");
    }
}
