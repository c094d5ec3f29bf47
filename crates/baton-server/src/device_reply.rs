//! What the server answers a device on success: a status (200, or 410 for UserAuthenticate), an
//! optional content type and a body (empty, a command plist, or a check-in response).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A successful answer to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body's content type, when there is a body.
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: Vec<u8>,
}

impl DeviceReply {
    /// 200 with an empty body.
    pub fn empty() -> Self {
        Self {
            status: StatusCode::OK,
            content_type: None,
            body: Vec::new(),
        }
    }

    /// 200 with an XML plist body.
    pub fn plist(body: Vec<u8>) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: Some("application/xml"),
            body,
        }
    }

    /// 200 with a JSON body.
    pub fn json(body: Vec<u8>) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: Some("application/json"),
            body,
        }
    }
}

impl IntoResponse for DeviceReply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        if let Some(content_type) = self.content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        } else {
            response.headers_mut().remove(header::CONTENT_TYPE);
        }
        response
    }
}
