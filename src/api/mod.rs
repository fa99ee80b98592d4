//! The HTTP API (axum): µTask's routes, JSON (or YAML) in, JSON out.
//!
//! Invariants: every handler authenticates through the [`auth::Caller`] extractor unless its path
//! starts with `/unsecured`; every failure is an [`error::ApiError`] (no 5xx for a client
//! mistake, and a 5xx body never carries the cause); bodies are limited to
//! `MUTASK_MAX_BODY_BYTES`.

pub mod auth;
pub mod body;
pub mod callback;
pub mod error;
pub mod health;
pub mod task;
pub mod template;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;

use crate::config::Config;
use crate::store::Store;
use crate::template::render::Renderer;

pub use auth::{Auth, Caller};
pub use error::{ApiError, FieldError};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub auth: Arc<Auth>,
    pub renderer: Arc<Renderer>,
    /// Set when the instance stops accepting work (readiness answers 503).
    pub draining: Arc<AtomicBool>,
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(s: &AppState) -> Arc<Auth> {
        s.auth.clone()
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn body_limit_ext(limit: usize, mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(body::BodyLimit(limit));
    next.run(req).await
}

/// The full router.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/unsecured/mon/ping", get(health::ping))
        .route("/unsecured/mon/ready", get(health::ready))
        .route("/template", get(template::list))
        .route("/template/{name}", get(template::get))
        .route("/task", axum::routing::post(task::create))
        .route("/task/{id}", get(task::get))
        .route(
            "/unsecured/callback/{id}",
            axum::routing::post(callback::call),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |req, next| {
            body_limit_ext(limit, req, next)
        }))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
