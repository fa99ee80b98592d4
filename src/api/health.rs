//! Liveness and readiness.
//!
//! `GET /unsecured/mon/ping` answers `pong` while the process serves HTTP (µTask's path; it does
//! not touch the database, so a database outage does not get healthy instances killed).
//! `GET /unsecured/mon/ready` touches the database and checks that every migration is applied;
//! it answers 503 while the instance starts or drains.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::store;

/// Liveness: `pong` while the process serves HTTP (does not touch the database).
#[utoipa::path(
    get,
    path = "/unsecured/mon/ping",
    tag = "health",
    operation_id = "ping",
    responses((status = 200, description = "Alive.", content_type = "text/plain", body = String, example = "pong")),
)]
pub async fn ping() -> &'static str {
    "pong"
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(
    get,
    path = "/unsecured/mon/ready",
    tag = "health",
    operation_id = "ready",
    responses(
        (status = 200, description = "Ready.", content_type = "text/plain", body = String, example = "ready"),
        (status = 503, description = "Not ready: `draining`, `migrations pending`, `database unavailable` or `database timeout`.", content_type = "text/plain", body = String, example = "database unavailable"),
    ),
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    let check = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        store::db::ping(&state.store.pool).await?;
        store::db::migrations_applied(&state.store.pool).await
    })
    .await;
    match check {
        Ok(Ok(true)) => (StatusCode::OK, "ready").into_response(),
        Ok(Ok(false)) => (StatusCode::SERVICE_UNAVAILABLE, "migrations pending").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timeout").into_response(),
    }
}
