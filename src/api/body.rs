//! Request bodies: JSON or YAML (µTask accepts both), size-limited, with errors that name the
//! problem and where (line and column for syntax errors, the field for type errors).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A parsed request body.
pub struct Body<T>(pub T);

fn is_yaml(content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        ct.as_str(),
        "application/x-yaml" | "application/yaml" | "text/yaml" | "text/x-yaml"
    )
}

fn is_json(content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct.is_empty() || ct == "application/json" || ct.ends_with("+json") || ct == "text/plain"
}

/// Parses bytes as JSON or YAML according to the content type.
pub fn parse_body<T: DeserializeOwned>(content_type: &str, bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::BadRequest("request body is empty".into()));
    }
    if is_yaml(content_type) {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ApiError::BadRequest("request body is not valid UTF-8".into()))?;
        return crate::yaml::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("invalid YAML body: {e}")));
    }
    if !is_json(content_type) {
        return Err(ApiError::UnsupportedMediaType(content_type.to_string()));
    }
    serde_json::from_slice::<T>(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::BadRequest(format!("invalid request body: {e}"))
        }
        _ => ApiError::BadRequest(format!("malformed JSON body: {e}")),
    })
}

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::BadRequest(format!("cannot read request body: {rejection}"))
            }
        })?;
        parse_body(&content_type, &bytes).map(Body)
    }
}

/// A raw request body (bytes), size-limited like [`Body`], with the same JSON errors.
pub struct RawBody(pub Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(0);
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(limit)
                } else {
                    ApiError::BadRequest(format!("cannot read request body: {rejection}"))
                }
            })
    }
}

/// The configured body limit, put in request extensions so errors can quote it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// True when an `Accept` header asks for YAML (µTask: `Accept: application/x-yaml`) before JSON.
pub fn accepts_yaml(accept: &str) -> bool {
    accept
        .split(',')
        .map(|part| part.split(';').next().unwrap_or("").trim())
        .find(|m| is_yaml(m) || *m == "application/json")
        .is_some_and(is_yaml)
}

/// Middleware: answers in YAML instead of JSON when the request's `Accept` asks for it. Only JSON
/// answers are converted (errors included); other answers pass through unchanged.
pub async fn yaml_answers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let wants_yaml = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_yaml);
    let response = next.run(req).await;
    let is_json_answer = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !wants_yaml || !is_json_answer {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // answers are built in memory by the handlers; the limit only guards against surprises
    let bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "reading an answer to convert it to YAML");
            return axum::response::IntoResponse::into_response(ApiError::internal(
                "answer unreadable",
            ));
        }
    };
    let yaml = serde_json::from_slice::<serde_json::Value>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_yaml::to_string(&v).map_err(|e| e.to_string()));
    match yaml {
        Ok(text) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/x-yaml"),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            axum::response::Response::from_parts(parts, axum::body::Body::from(text))
        }
        Err(e) => {
            tracing::error!(error = %e, "converting a JSON answer to YAML");
            axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
        }
    }
}

#[cfg(test)]
mod accept_tests {
    use super::accepts_yaml;

    #[test]
    fn yaml_only_when_asked_before_json() {
        assert!(accepts_yaml("application/x-yaml"));
        assert!(accepts_yaml("text/yaml; q=0.9, application/json"));
        assert!(!accepts_yaml("application/json, application/x-yaml"));
        assert!(!accepts_yaml("*/*"));
        assert!(!accepts_yaml("text/html"));
    }
}
