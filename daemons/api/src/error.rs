//! The one error every route returns, and how it becomes an HTTP response:
//! a status code and a JSON body `{"error": {"code", "message", …}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use beacon_page::config::ConfigError;
use serde::Serialize;

use crate::keys::Refused;

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// A stable code for programs, e.g. `invalid`, `forbidden`.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// Every problem with the input, each with its field.
    pub errors: Vec<ConfigError>,
    /// For a conflict: the current state.
    pub current: Option<serde_json::Value>,
    /// Seconds to wait before trying again (429, 503).
    pub retry_after: Option<u64>,
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
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [ConfigError],
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<&'a serde_json::Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
            current: None,
            retry_after: None,
        }
    }

    /// 400: the request cannot be read at all.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 422: the request is readable but a field is wrong.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::invalid_all(vec![ConfigError {
            location: field.to_owned(),
            message,
        }])
    }

    /// 422 with every problem.
    pub fn invalid_all(errors: Vec<ConfigError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("{}: {}", one.location, one.message),
            many => format!("{} problems with the request", many.len()),
        };
        Self {
            errors,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 with the current state.
    pub fn conflict(message: impl Into<String>, current: Option<serde_json::Value>) -> Self {
        Self {
            current,
            ..Self::new(StatusCode::CONFLICT, "conflict", message)
        }
    }

    /// 429.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; slow down and retry after the given time",
            )
        }
    }

    /// 503: the owner of the data cannot be reached.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    /// 502: the owner answered that it failed.
    pub fn owner_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "owner_failed", message)
    }

    /// 401 or 403 for a refused key.
    pub fn refused(refused: Refused) -> Self {
        let status = if refused.is_forbidden() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        let code = if refused.is_forbidden() {
            "forbidden"
        } else {
            "unauthorized"
        };
        Self::new(status, code, refused.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.errors.first().map(|e| e.location.as_str()),
                errors: &self.errors,
                current: self.current.as_ref(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"beacon\""),
            );
        }
        response
    }
}

impl ApiError {
    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is over {limit} bytes"),
        )
    }
}
