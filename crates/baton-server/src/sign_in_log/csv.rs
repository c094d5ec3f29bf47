//! CSV export of sign-in log entries (RFC 4180): a header row, CRLF line ends, fields quoted
//! when they hold a comma, quote, CR or LF, quotes doubled. Text cells that a spreadsheet would
//! read as a formula (starting with `=`, `+`, `-`, `@`, tab or CR) get a leading `'`, so a
//! username typed as `=HYPERLINK(…)` stays text.

use super::entry::SignInEntry;

/// The column names, in order.
pub const CSV_COLUMNS: [&str; 13] = [
    "time",
    "time_ms",
    "username",
    "device",
    "source_address",
    "how",
    "result",
    "reason",
    "risk",
    "risk_reasons",
    "kmsi_shown",
    "kmsi_answer",
    "detail",
];

/// The entries as a CSV document with a header row.
pub fn to_csv(entries: &[SignInEntry]) -> String {
    let mut out = String::with_capacity(64 + entries.len() * 160);
    push_row(&mut out, CSV_COLUMNS.iter().map(|c| (*c).to_owned()));
    for e in entries {
        let kmsi_answer = match e.kmsi_answer {
            Some(true) => "yes",
            Some(false) => "no",
            None => "",
        };
        push_row(
            &mut out,
            [
                e.time.clone(),
                e.time_ms.to_string(),
                text_cell(&e.username),
                text_cell(&e.device),
                text_cell(e.source_address.as_deref().unwrap_or("")),
                e.how.as_str().to_owned(),
                e.result.as_str().to_owned(),
                e.reason.as_str().to_owned(),
                e.risk.as_str().to_owned(),
                text_cell(&e.risk_reasons.join(";")),
                e.kmsi_shown.to_string(),
                kmsi_answer.to_owned(),
                text_cell(e.detail.as_deref().unwrap_or("")),
            ],
        );
    }
    out
}

/// A free-text cell, defused against formula injection.
fn text_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

fn push_row(out: &mut String, cells: impl IntoIterator<Item = String>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if cell.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&cell);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::sign_in_log::{ReasonCode, SignInHow, SignInResult};

    fn entry(username: &str) -> SignInEntry {
        SignInEntry::new(
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            username,
            "UDID-1",
            SignInHow::Portal,
            SignInResult::Failure,
            ReasonCode::BadCredentials,
        )
    }

    /// A small RFC 4180 reader for the tests: rows of cells.
    fn parse(csv: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut cell = String::new();
        let mut quoted = false;
        let mut chars = csv.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => cell.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut cell)),
                (false, '\r') if chars.peek() == Some(&'\n') => {
                    chars.next();
                    row.push(std::mem::take(&mut cell));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => cell.push(c),
            }
        }
        rows
    }

    #[test]
    fn header_and_a_plain_row() {
        let csv = to_csv(&[entry("alice").with_kmsi(true, Some(false))]);
        let rows = parse(&csv);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], CSV_COLUMNS.map(str::to_owned).to_vec());
        assert_eq!(
            rows[1],
            [
                "2023-11-14T22:13:20.123Z",
                "1700000000123",
                "alice",
                "UDID-1",
                "",
                "portal",
                "failure",
                "bad_credentials",
                "low",
                "",
                "true",
                "no",
                ""
            ]
        );
        assert!(csv.ends_with("\r\n"));
        assert_eq!(to_csv(&[]).matches("\r\n").count(), 1);
    }

    #[test]
    fn commas_quotes_and_newlines_are_quoted_and_round_trip() {
        let nasty = "a,b \"c\"\r\nd";
        let csv = to_csv(&[entry(nasty).with_detail("x\ny")]);
        assert!(csv.contains("\"a,b \"\"c\"\"\r\nd\""), "{csv}");
        let rows = parse(&csv);
        assert_eq!(rows.len(), 2, "an embedded CRLF must not split the row");
        assert_eq!(rows[1][2], nasty);
        assert_eq!(rows[1][12], "x\ny");
    }

    #[test]
    fn formula_cells_are_defused() {
        for bad in ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tx"] {
            let rows = parse(&to_csv(&[entry(bad)]));
            assert_eq!(rows[1][2], format!("'{bad}"), "{bad:?}");
        }
        let rows = parse(&to_csv(&[entry("=HYPERLINK(\"http://x\",\"y\")")]));
        assert_eq!(rows[1][2], "'=HYPERLINK(\"http://x\",\"y\")");
        // Ordinary names are untouched, including a dash inside.
        let rows = parse(&to_csv(&[entry("anne-marie")]));
        assert_eq!(rows[1][2], "anne-marie");
    }
}
