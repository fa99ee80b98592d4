//! `ApiError`: every failure of a handler, mapped to a status by one exhaustive match.
//!
//! Body: `{"error": {"code": "...", "message": "...", "fields": [{"field", "message"}]?}}`.
//! A 5xx answer says only "internal error"; the cause goes to the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

pub use crate::domain::FieldError;

/// What went wrong in a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized,
    /// 401 with the reason (a webhook signature): no `WWW-Authenticate: Basic`.
    #[error("{0}")]
    UnauthorizedBecause(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("unsupported content type `{0}`: send application/json or application/x-yaml")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Invalid {
        message: String,
        fields: Vec<FieldError>,
    },
    #[error("too many failed logins from this address: retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized | ApiError::UnauthorizedBecause(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// An internal error whose cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => ApiError::Conflict(what),
            e @ StoreError::TemplateChanged(_) => ApiError::Conflict(e.to_string()),
            // text PostgreSQL cannot store (a NUL character): the client's mistake
            StoreError::Db(sqlx::Error::Database(d))
                if matches!(d.code().as_deref(), Some("22021" | "22P05")) =>
            {
                ApiError::BadRequest(
                    "the request holds text PostgreSQL cannot store (a NUL character?)".into(),
                )
            }
            // a database restart or failover: the caller may retry shortly
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable, answering 503");
                ApiError::Unavailable("the database is unreachable; retry shortly".into())
            }
            other => ApiError::internal(other),
        }
    }
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "task 0190c3a4-7d1e-7c6a-9a51-3c2d1e0f4b5a not found"}}))]
pub struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Machine-readable kind of error; the HTTP status follows from it.
    #[schema(value_type = ErrorCode)]
    code: &'a str,
    /// Human-readable explanation naming what was wrong and where (5xx: only "internal error").
    message: String,
    /// With `invalid_input` (422): every field that failed validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldErrorSchema>>)]
    fields: Option<&'a [FieldError]>,
}

/// OpenAPI schema of [`FieldError`] (one invalid field of a request).
#[derive(utoipa::ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorSchema {
    /// Where: `input.name`, `inputs[2].count`, `tags.owner`, `body/answer`…
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every `error.code` (OpenAPI schema; [`ApiError`] maps each variant to one of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: malformed request, refused state change, bad parameter.
    BadRequest,
    /// 401: no or wrong credentials (with `WWW-Authenticate: Basic`).
    Unauthorized,
    /// 403: authenticated but not allowed.
    Forbidden,
    /// 404: no such route or object.
    NotFound,
    /// 409: conflicts with the current state (e.g. a resolution already exists).
    Conflict,
    /// 413: body larger than `MUTASK_MAX_BODY_BYTES`.
    PayloadTooLarge,
    /// 415: body neither JSON nor YAML.
    UnsupportedMediaType,
    /// 422: validation failed; `fields` lists every problem.
    InvalidInput,
    /// 429: too many failed logins from this address (with `Retry-After`).
    TooManyRequests,
    /// 503: the service cannot answer now.
    Unavailable,
    /// 500: the cause is logged, never sent.
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        let fields = match &self {
            ApiError::Invalid { fields, .. } => Some(fields.as_slice()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                fields,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mutask\""),
            );
        }
        if let ApiError::TooManyRequests { retry_after } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if matches!(self, ApiError::Unavailable(_)) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_is_documented() {
        let errors = [
            ApiError::BadRequest("x".into()),
            ApiError::Unauthorized,
            ApiError::UnauthorizedBecause("x".into()),
            ApiError::Forbidden("x".into()),
            ApiError::NotFound("x".into()),
            ApiError::Conflict("x".into()),
            ApiError::PayloadTooLarge(1),
            ApiError::UnsupportedMediaType("x".into()),
            ApiError::Invalid {
                message: "x".into(),
                fields: vec![],
            },
            ApiError::TooManyRequests { retry_after: 1 },
            ApiError::Unavailable("x".into()),
            ApiError::Internal("x".into()),
        ];
        let documented = [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::InvalidInput,
            ErrorCode::TooManyRequests,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ];
        for (e, doc) in errors.iter().zip(documented) {
            let (status, code) = e.status_and_code();
            assert_eq!(serde_json::to_value(doc).unwrap(), code, "{e:?}");
            assert!(status.as_u16() >= 400);
        }
    }

    #[test]
    fn an_unreachable_database_is_a_503_to_retry_not_a_500() {
        let gone = StoreError::Db(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(gone.is_unavailable());
        let resp = ApiError::from(gone).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let busy = ApiError::from(StoreError::Db(sqlx::Error::PoolTimedOut));
        assert!(matches!(busy, ApiError::Unavailable(_)), "{busy:?}");
        // anything else stays an internal error
        let other = ApiError::from(StoreError::Db(sqlx::Error::RowNotFound));
        assert!(matches!(other, ApiError::Internal(_)), "{other:?}");
    }
}
