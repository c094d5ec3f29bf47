//! The operator CLI's exit codes, for scripts:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done (for `device lint`: no error-level lint) |
//! | 1 | the server refused or failed (401 wrong key, 409 conflict, 5xx, ...) |
//! | 2 | usage: bad flags or arguments, an unreadable input file, no API key |
//! | 3 | not found (404: unknown user, device, item, group, ...) |
//! | 4 | invalid: the server refused the input (400, 413, 415, 422), or `device lint` found errors |
//! | 5 | the server could not be reached (refused, TLS, DNS, timeout) |

use serde_json::Value;

/// An exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(pub u8);

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.0)
    }
}

/// Done.
pub const OK: Exit = Exit(0);
/// The server refused or failed.
pub const ERROR: Exit = Exit(1);
/// Bad flags, arguments or input files (clap also exits 2 on bad flags).
pub const USAGE: Exit = Exit(2);
/// Not found.
pub const NOT_FOUND: Exit = Exit(3);
/// Invalid input, or lint errors.
pub const INVALID: Exit = Exit(4);
/// The server could not be reached.
pub const UNREACHABLE: Exit = Exit(5);

/// The code for an error answer.
pub fn for_status(status: u16) -> Exit {
    match status {
        404 => NOT_FOUND,
        400 | 413 | 415 | 422 => INVALID,
        _ => ERROR,
    }
}

/// The code for a 2xx answer: `device lint` with error-level lints is [`INVALID`].
pub fn for_answer(is_lint: bool, answer: &Value) -> Exit {
    let errors = answer.get("errors").and_then(Value::as_u64).unwrap_or(0);
    if is_lint && errors > 0 { INVALID } else { OK }
}

/// One line for a person from an error answer (`{"error","message"}`), with a hint for a
/// refused key.
pub fn describe_error(status: u16, answer: &Value) -> String {
    let message = answer
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| answer.as_str())
        .unwrap_or("")
        .trim();
    let what = match status {
        400 | 422 => "refused",
        401 => {
            return format!(
                "the server refused the API key (401). Use the key `baton serve` printed at its \
                 first start, from BATON_API_KEY or --api-key-file{}",
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            );
        }
        404 => "not found",
        409 => "conflict",
        413 => "too large",
        415 => "wrong content type",
        s if s >= 500 => "server error",
        _ => "error",
    };
    if message.is_empty() {
        format!("{what} (HTTP {status})")
    } else {
        format!("{what}: {message} (HTTP {status})")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn statuses_map_to_documented_codes() {
        assert_eq!(for_status(404), NOT_FOUND);
        assert_eq!(for_status(400), INVALID);
        assert_eq!(for_status(409), ERROR);
        assert_eq!(for_status(500), ERROR);
        assert_eq!(
            for_answer(true, &json!({"errors": 2, "lints": []})),
            INVALID
        );
        assert_eq!(for_answer(true, &json!({"errors": 0, "lints": []})), OK);
        assert_eq!(for_answer(false, &json!({"errors": 2})), OK);
    }

    #[test]
    fn an_error_answer_reads_as_a_sentence() {
        let text = describe_error(
            404,
            &json!({"error": "not_found", "message": "unknown user \"carol\""}),
        );
        assert_eq!(text, "not found: unknown user \"carol\" (HTTP 404)");
        assert!(describe_error(401, &json!({})).contains("BATON_API_KEY"));
    }
}
