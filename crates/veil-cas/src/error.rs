//! Every API error, with its stable code and HTTP status, turned into a
//! response in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An API error: a stable machine-readable code, an HTTP status, and a
/// message an operator can act on. Messages never contain secret values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// Stable code (`attestation_denied`, `stale_predecessor`, ...).
    pub code: &'static str,
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and what to do.
    pub message: String,
    /// For attestation denials: the policy's own code (`measurement_mismatch`, ...).
    pub reason: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            status,
            message: message.into(),
            reason: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: the call needs a client identity (mutual TLS).
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this call needs a client identity: create one with `veil identity create` and call over mutual TLS",
        )
    }

    /// 401 `unauthenticated` with a message naming the identity this call
    /// needs (e.g. a launcher's attested certificate).
    pub fn unauthenticated_as(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403: the caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403 with a more precise code than `forbidden` (`not_attested`).
    pub fn forbidden_as(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 403: attestation denied, with the policy's reason code.
    pub fn denied(reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            reason: Some(reason.to_owned()),
            ..Self::new(StatusCode::FORBIDDEN, "attestation_denied", message)
        }
    }

    /// 404: no such thing (or the caller may not know it exists).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 404 with a more precise code than `not_found` (`unknown_session`,
    /// `unknown_service`).
    pub fn not_found_as(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 409: a conflicting concurrent change.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: the content is well-formed but not acceptable (policy errors).
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 503: the CAS is sealed.
    pub fn sealed() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sealed",
            "the CAS is sealed: its sealing key is not available; unseal it with recovery shares",
        )
    }

    /// 500: something failed inside the CAS. The detail is logged, not sent.
    pub fn internal(context: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(%context, %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error while {context}; see the CAS log"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                reason: self.reason.as_deref(),
            },
        };
        (self.status, Json(body)).into_response()
    }
}
