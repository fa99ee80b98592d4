//! Maintenance mode (µTask's): while `MUTASK_MAINTENANCE_MODE` is on, every write route answers
//! 405 "Maintenance mode activated" (reads keep working) and the engine claims nothing. Key
//! rotation stays available (it does not need maintenance mode in mutask, but works in it too).

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// True for requests maintenance mode refuses.
pub fn is_refused(method: &Method, path: &str) -> bool {
    let write = matches!(
        *method,
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    );
    write && path != "/key-rotate"
}

/// The middleware (installed only when maintenance mode is on).
pub async fn guard(req: Request, next: Next) -> Response {
    if is_refused(req.method(), req.uri().path()) {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(
                json!({"error": {"code": "maintenance", "message": "Maintenance mode activated"}}),
            ),
        )
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_are_refused() {
        assert!(is_refused(&Method::POST, "/task"));
        assert!(is_refused(&Method::DELETE, "/task/x"));
        assert!(is_refused(&Method::POST, "/unsecured/callback/x"));
        assert!(!is_refused(&Method::GET, "/task"));
        assert!(!is_refused(&Method::POST, "/key-rotate"));
    }
}
