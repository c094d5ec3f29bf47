//! APNs error reasons (the `reason` of an error response body) and how a response is classified:
//! delivered, permanent (token invalid, configuration problem, bad request) or retryable.

use std::fmt;

/// The `reason` string of an APNs error response (`{"reason":"BadDeviceToken"}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApnsReason {
    /// 400: the device token is malformed or for the other environment.
    BadDeviceToken,
    /// 400: the token does not belong to the request's topic.
    DeviceTokenNotForTopic,
    /// 400: the `apns-topic` header is invalid.
    BadTopic,
    /// 400: the certificate may not push to this topic.
    TopicDisallowed,
    /// 400: no `apns-topic` header, and the certificate covers several topics.
    MissingTopic,
    /// 400: the `apns-expiration` value is bad.
    BadExpirationDate,
    /// 400: the `apns-priority` value is bad.
    BadPriority,
    /// 400: the `apns-id` value is bad.
    BadMessageId,
    /// 400: the `apns-collapse-id` value is too long.
    BadCollapseId,
    /// 400: a header was repeated.
    DuplicateHeaders,
    /// 400: the `apns-push-type` value is invalid.
    InvalidPushType,
    /// 400: the path names no device token.
    MissingDeviceToken,
    /// 400: the payload is empty.
    PayloadEmpty,
    /// 400: the connection sat idle too long.
    IdleTimeout,
    /// 403: the client certificate is invalid.
    BadCertificate,
    /// 403: the client certificate is for the other environment (sandbox vs production).
    BadCertificateEnvironment,
    /// 403: the action is not allowed.
    Forbidden,
    /// 403: a provider token (JWT) problem; MDM uses certificates, so this means misconfiguration.
    ExpiredProviderToken,
    /// 403: the provider token is invalid.
    InvalidProviderToken,
    /// 403: no certificate and no provider token.
    MissingProviderToken,
    /// 403: the provider token's key id is not related to the team.
    UnrelatedKeyIdInToken,
    /// 404: the request path is wrong.
    BadPath,
    /// 405: only POST is allowed.
    MethodNotAllowed,
    /// 410: the device token has expired.
    ExpiredToken,
    /// 410: the device token is no longer active for the topic (app removed, device unenrolled).
    Unregistered,
    /// 413: the payload is too large.
    PayloadTooLarge,
    /// 429: the provider token was updated too often.
    TooManyProviderTokenUpdates,
    /// 429: too many requests to the same device token.
    TooManyRequests,
    /// 500: an internal server error.
    InternalServerError,
    /// 503: the service is unavailable.
    ServiceUnavailable,
    /// 503: the server is shutting down.
    Shutdown,
    /// A reason this crate does not know.
    Other(String),
}

impl ApnsReason {
    /// Parses a reason string; unknown strings become [`ApnsReason::Other`].
    pub fn parse(s: &str) -> Self {
        match s {
            "BadDeviceToken" => Self::BadDeviceToken,
            "DeviceTokenNotForTopic" => Self::DeviceTokenNotForTopic,
            "BadTopic" => Self::BadTopic,
            "TopicDisallowed" => Self::TopicDisallowed,
            "MissingTopic" => Self::MissingTopic,
            "BadExpirationDate" => Self::BadExpirationDate,
            "BadPriority" => Self::BadPriority,
            "BadMessageId" => Self::BadMessageId,
            "BadCollapseId" => Self::BadCollapseId,
            "DuplicateHeaders" => Self::DuplicateHeaders,
            "InvalidPushType" => Self::InvalidPushType,
            "MissingDeviceToken" => Self::MissingDeviceToken,
            "PayloadEmpty" => Self::PayloadEmpty,
            "IdleTimeout" => Self::IdleTimeout,
            "BadCertificate" => Self::BadCertificate,
            "BadCertificateEnvironment" => Self::BadCertificateEnvironment,
            "Forbidden" => Self::Forbidden,
            "ExpiredProviderToken" => Self::ExpiredProviderToken,
            "InvalidProviderToken" => Self::InvalidProviderToken,
            "MissingProviderToken" => Self::MissingProviderToken,
            "UnrelatedKeyIdInToken" => Self::UnrelatedKeyIdInToken,
            "BadPath" => Self::BadPath,
            "MethodNotAllowed" => Self::MethodNotAllowed,
            "ExpiredToken" => Self::ExpiredToken,
            "Unregistered" => Self::Unregistered,
            "PayloadTooLarge" => Self::PayloadTooLarge,
            "TooManyProviderTokenUpdates" => Self::TooManyProviderTokenUpdates,
            "TooManyRequests" => Self::TooManyRequests,
            "InternalServerError" => Self::InternalServerError,
            "ServiceUnavailable" => Self::ServiceUnavailable,
            "Shutdown" => Self::Shutdown,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Reads the reason from an error response body (`{"reason":"…","timestamp":…}`); `None` for
    /// an empty or unparsable body.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct ErrorBody<'a> {
            #[serde(borrow)]
            reason: Option<std::borrow::Cow<'a, str>>,
        }
        let parsed: ErrorBody<'_> = serde_json::from_slice(body).ok()?;
        parsed.reason.map(|r| Self::parse(&r))
    }

    /// The reason as APNs spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::BadDeviceToken => "BadDeviceToken",
            Self::DeviceTokenNotForTopic => "DeviceTokenNotForTopic",
            Self::BadTopic => "BadTopic",
            Self::TopicDisallowed => "TopicDisallowed",
            Self::MissingTopic => "MissingTopic",
            Self::BadExpirationDate => "BadExpirationDate",
            Self::BadPriority => "BadPriority",
            Self::BadMessageId => "BadMessageId",
            Self::BadCollapseId => "BadCollapseId",
            Self::DuplicateHeaders => "DuplicateHeaders",
            Self::InvalidPushType => "InvalidPushType",
            Self::MissingDeviceToken => "MissingDeviceToken",
            Self::PayloadEmpty => "PayloadEmpty",
            Self::IdleTimeout => "IdleTimeout",
            Self::BadCertificate => "BadCertificate",
            Self::BadCertificateEnvironment => "BadCertificateEnvironment",
            Self::Forbidden => "Forbidden",
            Self::ExpiredProviderToken => "ExpiredProviderToken",
            Self::InvalidProviderToken => "InvalidProviderToken",
            Self::MissingProviderToken => "MissingProviderToken",
            Self::UnrelatedKeyIdInToken => "UnrelatedKeyIdInToken",
            Self::BadPath => "BadPath",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::ExpiredToken => "ExpiredToken",
            Self::Unregistered => "Unregistered",
            Self::PayloadTooLarge => "PayloadTooLarge",
            Self::TooManyProviderTokenUpdates => "TooManyProviderTokenUpdates",
            Self::TooManyRequests => "TooManyRequests",
            Self::InternalServerError => "InternalServerError",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::Shutdown => "Shutdown",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ApnsReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a push will never succeed as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PermanentKind {
    /// The device token is dead (410, `BadDeviceToken`, `Unregistered`, `DeviceTokenNotForTopic`):
    /// stop pushing to it until the device sends a new TokenUpdate.
    TokenInvalid,
    /// The push certificate or topic is wrong (`BadCertificate`, `BadCertificateEnvironment`,
    /// `BadTopic`, `TopicDisallowed`, any 403): every push fails the same way, so the operator
    /// must fix the certificate. The token itself is not known to be bad.
    Configuration,
    /// APNs refused the request itself (another 4xx): a bug in the request, not the token.
    Rejected,
}

/// How one APNs response is to be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseClass {
    /// 200: accepted for delivery.
    Delivered,
    /// Never retry.
    Permanent(PermanentKind),
    /// 429, 5xx and the like: retry with backoff.
    Retryable,
}

/// Classifies a response by status and reason.
pub fn classify(status: u16, reason: Option<&ApnsReason>) -> ResponseClass {
    use ApnsReason as R;
    if status == 200 {
        return ResponseClass::Delivered;
    }
    match reason {
        Some(R::BadDeviceToken | R::Unregistered | R::ExpiredToken | R::DeviceTokenNotForTopic) => {
            return ResponseClass::Permanent(PermanentKind::TokenInvalid);
        }
        Some(
            R::BadCertificate
            | R::BadCertificateEnvironment
            | R::BadTopic
            | R::TopicDisallowed
            | R::MissingTopic
            | R::Forbidden
            | R::ExpiredProviderToken
            | R::InvalidProviderToken
            | R::MissingProviderToken
            | R::UnrelatedKeyIdInToken,
        ) => return ResponseClass::Permanent(PermanentKind::Configuration),
        Some(
            R::TooManyRequests
            | R::TooManyProviderTokenUpdates
            | R::InternalServerError
            | R::ServiceUnavailable
            | R::Shutdown
            | R::IdleTimeout,
        ) => return ResponseClass::Retryable,
        _ => {}
    }
    match status {
        410 => ResponseClass::Permanent(PermanentKind::TokenInvalid),
        403 => ResponseClass::Permanent(PermanentKind::Configuration),
        429 | 500..=599 => ResponseClass::Retryable,
        _ => ResponseClass::Permanent(PermanentKind::Rejected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_through_their_names() {
        for name in [
            "BadDeviceToken",
            "Unregistered",
            "DeviceTokenNotForTopic",
            "BadCertificate",
            "BadCertificateEnvironment",
            "BadTopic",
            "TopicDisallowed",
            "TooManyRequests",
            "Shutdown",
        ] {
            let r = ApnsReason::parse(name);
            assert!(!matches!(r, ApnsReason::Other(_)), "{name} unknown");
            assert_eq!(r.as_str(), name);
        }
        assert_eq!(
            ApnsReason::parse("SomethingNew"),
            ApnsReason::Other("SomethingNew".into())
        );
    }

    #[test]
    fn body_parsing_tolerates_garbage() {
        assert_eq!(
            ApnsReason::from_body(br#"{"reason":"Unregistered","timestamp":1700000000000}"#),
            Some(ApnsReason::Unregistered)
        );
        assert_eq!(ApnsReason::from_body(b""), None);
        assert_eq!(ApnsReason::from_body(b"<html>"), None);
        assert_eq!(ApnsReason::from_body(br#"{"other":1}"#), None);
    }

    #[test]
    fn classification_follows_apple_semantics() {
        let c = |s, r: Option<&str>| classify(s, r.map(ApnsReason::parse).as_ref());
        assert_eq!(c(200, None), ResponseClass::Delivered);
        let invalid = ResponseClass::Permanent(PermanentKind::TokenInvalid);
        assert_eq!(c(410, Some("Unregistered")), invalid);
        assert_eq!(c(410, None), invalid);
        assert_eq!(c(400, Some("BadDeviceToken")), invalid);
        assert_eq!(c(400, Some("DeviceTokenNotForTopic")), invalid);
        let config = ResponseClass::Permanent(PermanentKind::Configuration);
        assert_eq!(c(403, Some("BadCertificate")), config);
        assert_eq!(c(403, Some("BadCertificateEnvironment")), config);
        assert_eq!(c(400, Some("BadTopic")), config);
        assert_eq!(c(400, Some("TopicDisallowed")), config);
        assert_eq!(c(403, None), config);
        assert_eq!(c(429, Some("TooManyRequests")), ResponseClass::Retryable);
        assert_eq!(c(500, None), ResponseClass::Retryable);
        assert_eq!(c(503, Some("Shutdown")), ResponseClass::Retryable);
        assert_eq!(
            c(400, Some("BadPriority")),
            ResponseClass::Permanent(PermanentKind::Rejected)
        );
        assert_eq!(
            c(413, Some("PayloadTooLarge")),
            ResponseClass::Permanent(PermanentKind::Rejected)
        );
    }
}
