//! [`AdminJson`]: the admin API's JSON body extractor. Every admin request body type refuses
//! unknown fields (`#[serde(deny_unknown_fields)]`: a misspelt or unsupported field must not
//! be dropped silently, e.g. `{"disabled":true}` creating an enabled user), and a body that
//! does not decode is answered like every other admin error: JSON, status 400, with serde's
//! message naming the field and where it is (`unknown field `disabled`, expected one of …`).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error_response::ApiError;

/// A decoded JSON request body; refusals are [`ApiError`]s: 400 for a body that is not valid
/// JSON or does not fit the type (unknown, missing or mistyped fields), 413 over the body
/// limit, 415 without a JSON content type.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminJson<T>(pub T);

impl<S, T> FromRequest<S> for AdminJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(AdminJson(value)),
            Err(rejection) => Err(refusal(&rejection)),
        }
    }
}

/// The admin error for a refused JSON body.
fn refusal(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::BadRequest(e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(e.body_text()),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("expected application/json".into())
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        other => ApiError::BadRequest(other.body_text()),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::header;
    use axum::response::IntoResponse;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body1 {
        name: String,
    }

    async fn extract(content_type: Option<&str>, body: &str) -> Result<String, (u16, String)> {
        let mut request = Request::builder().method("POST").uri("/");
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let request = request.body(Body::from(body.to_owned())).unwrap();
        match AdminJson::<Body1>::from_request(request, &()).await {
            Ok(AdminJson(b)) => Ok(b.name),
            Err(e) => {
                let message = e.to_string();
                Err((e.into_response().status().as_u16(), message))
            }
        }
    }

    #[tokio::test]
    async fn unknown_fields_are_a_400_naming_them() {
        let json = Some("application/json");
        assert_eq!(extract(json, r#"{"name":"a"}"#).await, Ok("a".into()));
        let (status, message) = extract(json, r#"{"name":"a","disabled":true}"#)
            .await
            .unwrap_err();
        assert_eq!(status, 400);
        assert!(message.contains("unknown field `disabled`"), "{message}");
        let (status, message) = extract(json, r#"{"nam":"a"}"#).await.unwrap_err();
        assert_eq!(status, 400);
        assert!(message.contains("nam"), "{message}");
        assert_eq!(extract(json, "{").await.unwrap_err().0, 400);
        assert_eq!(extract(None, r#"{"name":"a"}"#).await.unwrap_err().0, 415);
    }
}
