//! The SCEP HTTP endpoint (`/scep`): GetCACaps, GetCACert and PKIOperation over GET and POST.
//!
//! Query parameters are read from the raw query string in any order, percent-decoded without
//! turning `+` into a space (base64 uses `+`; a space is taken back as `+` for clients that did
//! not escape it). A PKIOperation message is accepted as standard or URL-safe base64, padded or
//! not, in the `message` parameter (GET, and POST from clients that put it there), or as the DER
//! body of a POST. The CPU-bound work runs on the blocking pool.

use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::ScepState;
use super::service::{CA_CAPS, PkiOperationError};

/// Largest accepted POST body (a PKCSReq with an RSA-4096 key is under 10 KB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Content type of a PKIOperation reply.
pub const PKI_MESSAGE_CONTENT_TYPE: &str = "application/x-pki-message";
/// Content type of the GetCACert reply (a single CA certificate).
pub const CA_CERT_CONTENT_TYPE: &str = "application/x-x509-ca-cert";

const INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, INDIFFERENT);
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, INDIFFERENT);

/// The SCEP routes (`/scep`, and `/scep/pkiclient.exe` for clients that append it).
pub fn router(state: ScepState) -> Router {
    Router::new()
        .route("/scep", get(scep_get).post(scep_post))
        .route("/scep/pkiclient.exe", get(scep_get).post(scep_post))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The parameters SCEP uses.
#[derive(Debug, Default, PartialEq, Eq)]
struct ScepQuery {
    operation: Option<String>,
    message: Option<String>,
}

fn parse_query(raw: Option<&str>) -> ScepQuery {
    let mut query = ScepQuery::default();
    for pair in raw.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match percent_decode(key).as_str() {
            "operation" => query.operation = Some(value),
            "message" => query.message = Some(value),
            _ => {}
        }
    }
    query
}

fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(text) = std::str::from_utf8(hex)
            && let Ok(byte) = u8::from_str_radix(text, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes a base64 or base64url message, tolerating line breaks, missing padding and `+`
/// that became a space.
fn decode_message(text: &str) -> Option<Vec<u8>> {
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\t'))
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    STANDARD_ANY_PAD
        .decode(&cleaned)
        .or_else(|_| URL_SAFE_ANY_PAD.decode(&cleaned))
        .ok()
}

async fn scep_get(State(state): State<ScepState>, RawQuery(raw): RawQuery) -> Response {
    handle(state, parse_query(raw.as_deref()), Bytes::new()).await
}

async fn scep_post(
    State(state): State<ScepState>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    handle(state, parse_query(raw.as_deref()), body).await
}

async fn handle(state: ScepState, query: ScepQuery, body: Bytes) -> Response {
    match query.operation.as_deref() {
        Some("GetCACaps") => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            CA_CAPS,
        )
            .into_response(),
        Some("GetCACert") => (
            [(header::CONTENT_TYPE, CA_CERT_CONTENT_TYPE)],
            state.service().ca().certificate_der().to_vec(),
        )
            .into_response(),
        Some("PKIOperation") => {
            let message = if body.is_empty() {
                query.message.as_deref().and_then(decode_message)
            } else if body.first() == Some(&0x30) {
                Some(body.to_vec())
            } else {
                std::str::from_utf8(&body).ok().and_then(decode_message)
            };
            let Some(message) = message else {
                tracing::warn!("SCEP PKIOperation without a decodable message");
                return bad_request("PKIOperation needs a message");
            };
            pki_operation(state, message).await
        }
        Some(other) => {
            tracing::warn!(operation = %other, "unsupported SCEP operation");
            bad_request("unsupported operation")
        }
        None => bad_request("operation parameter missing"),
    }
}

async fn pki_operation(state: ScepState, message: Vec<u8>) -> Response {
    let joined = tokio::task::spawn_blocking(move || {
        state.service().pki_operation(&message, SystemTime::now())
    })
    .await;
    match joined {
        Ok(Ok(reply)) => (
            [(header::CONTENT_TYPE, PKI_MESSAGE_CONTENT_TYPE)],
            reply.der,
        )
            .into_response(),
        Ok(Err(PkiOperationError::Malformed(reason))) => {
            tracing::warn!(%reason, "undecodable SCEP PKIOperation");
            bad_request("undecodable PKIOperation message")
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "SCEP PKIOperation failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "SCEP PKIOperation task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

fn bad_request(text: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_in_any_order_with_escapes() {
        let q = parse_query(Some("message=ab%2Bc%2F%3D&operation=PKIOperation"));
        assert_eq!(q.operation.as_deref(), Some("PKIOperation"));
        assert_eq!(q.message.as_deref(), Some("ab+c/="));
        let q = parse_query(Some("operation=GetCACaps&message=CAIdentifier&extra"));
        assert_eq!(q.operation.as_deref(), Some("GetCACaps"));
        assert_eq!(parse_query(None), ScepQuery::default());
        // A bad escape is kept literally rather than failing.
        assert_eq!(percent_decode("a%zzb%4"), "a%zzb%4");
    }

    #[test]
    fn message_decoding_accepts_the_variants_clients_send() {
        let data: Vec<u8> = (0u8..=255).collect();
        let std = base64::engine::general_purpose::STANDARD.encode(&data);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&data);
        assert!(std.contains('+') && std.contains('/'));
        assert_eq!(decode_message(&std).unwrap(), data);
        assert_eq!(decode_message(&url).unwrap(), data);
        assert_eq!(decode_message(&std.replace('+', " ")).unwrap(), data);
        let wrapped: String = std
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        assert_eq!(decode_message(&wrapped).unwrap(), data);
        assert_eq!(decode_message("%%%not base64"), None);
    }
}
