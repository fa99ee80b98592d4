//! The HTTP API (axum): µTask's routes, JSON (or YAML) in, JSON out.
//!
//! Invariants: every handler authenticates through the [`auth::Caller`] extractor unless its path
//! starts with `/unsecured` (or is Swagger UI's static `/docs`, or µTask's unauthenticated
//! `/metrics`, which carries counts only); every route is in the OpenAPI
//! document of [`openapi`]; every failure is an [`error::ApiError`] (no 5xx for a client
//! mistake, and a 5xx body never carries the cause); bodies are limited to
//! `MUTASK_MAX_BODY_BYTES`.

pub mod action;
pub mod auth;
pub mod batch;
pub mod body;
pub mod callback;
pub mod comment;
pub mod error;
pub mod function;
pub mod health;
pub mod keys;
pub mod listing;
pub mod maintenance;
pub mod meta;
pub mod metrics;
pub mod notification;
pub mod openapi;
pub mod resolution;
pub mod schedule;
pub mod step_log;
pub mod task;
pub mod task_wait;
pub mod template;
pub mod token;
pub mod ui;
pub mod webhook;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;

use crate::config::Config;
use crate::store::Store;
use crate::template::model::FunctionSet;
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
    /// The functions loaded at startup (`MUTASK_FUNCTIONS_DIR`).
    pub functions: Arc<FunctionSet>,
    /// Prometheus registry of this instance (`GET /metrics`).
    pub metrics: Arc<metrics::Metrics>,
    /// Set when the instance stops accepting work (readiness answers 503).
    pub draining: Arc<AtomicBool>,
    /// Worker processes rendering caller-written templates (plan mode).
    pub sandbox: Option<crate::sandbox::SandboxPool>,
    /// Action types of the loaded plugins and their configuration schemas (template validation).
    pub plugin_types: Arc<crate::template::validate::PluginTypes>,
    /// Plugin name → its description and schemas, for `GET /action`.
    pub plugin_schemas: Arc<std::collections::BTreeMap<String, PluginSchemas>>,
    /// Wakes this instance's claim loop (when it runs one): a task created here that can run at
    /// once is claimed without waiting for its NOTIFY to come back from the database.
    pub claim_hint: Option<Arc<crate::engine::runner::ClaimHint>>,
    /// Requests waiting for tasks to settle (`?wait=`), woken by `mutask_task_settled`.
    pub task_waits: Arc<crate::store::wake::TaskWaits>,
}

/// What `GET /action` tells about a loaded plugin.
#[derive(Debug, Clone)]
pub struct PluginSchemas {
    pub description: String,
    pub config_schema: Option<serde_json::Value>,
    pub metadata_schema: Option<serde_json::Value>,
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

/// The CORS layer of `MUTASK_CORS_ORIGINS` (`None`: CORS off, browsers refuse cross-site
/// calls). Listed origins may send credentials; `*` allows any origin without them.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static(ui::CLIENT_HEADER),
        ])
        .expose_headers([
            HeaderName::from_static("x-paging-pagesize"),
            header::LINK,
            header::RETRY_AFTER,
        ])
        .max_age(std::time::Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(AllowOrigin::any()));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(layer.allow_origin(list).allow_credentials(true))
}

/// The full router.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let maintenance = state.config.maintenance_mode;
    let app = Router::new()
        .route("/unsecured/mon/ping", get(health::ping))
        .route("/unsecured/mon/ready", get(health::ready))
        .route("/template", get(template::list))
        .route("/template/{name}", get(template::get).put(template::save))
        // `schema` is a reserved template name: saving one answers 422, not 405
        .route(
            "/template/schema",
            get(template::json_schema).put(template::save_reserved),
        )
        .route("/template/{name}/version", get(template::versions))
        .route(
            "/template/validate",
            axum::routing::post(template::validate),
        )
        .route("/template/plan", axum::routing::post(template::plan))
        .route("/function", get(function::list))
        .route("/action", get(action::list))
        .route("/function/{name}", get(function::get))
        .route("/task", axum::routing::post(task::create))
        .route("/task/{id}", get(task::get))
        .route("/task", get(listing::list))
        .route("/task/count", get(listing::count))
        .route("/task/{id}", axum::routing::put(task::update))
        .route("/task/{id}", axum::routing::delete(task::delete))
        .route("/task/{id}/wontfix", axum::routing::post(task::wontfix))
        .route("/task/{id}/comment", axum::routing::post(comment::create))
        .route("/task/{id}/comment", get(comment::list))
        .route("/task/{id}/comment/{commentid}", get(comment::get))
        .route(
            "/task/{id}/comment/{commentid}",
            axum::routing::put(comment::update),
        )
        .route(
            "/task/{id}/comment/{commentid}",
            axum::routing::delete(comment::delete),
        )
        .route("/batch", axum::routing::post(batch::create))
        .route("/resolution", axum::routing::post(resolution::create))
        .route(
            "/resolution/{id}",
            get(resolution::get).put(resolution::update),
        )
        .route("/resolution/{id}/run", axum::routing::post(resolution::run))
        .route(
            "/resolution/{id}/pause",
            axum::routing::post(resolution::pause),
        )
        .route(
            "/resolution/{id}/extend",
            axum::routing::post(resolution::extend),
        )
        .route(
            "/resolution/{id}/cancel",
            axum::routing::post(resolution::cancel),
        )
        .route(
            "/resolution/{id}/step/{name}",
            get(resolution::get_step).put(resolution::update_step),
        )
        .route(
            "/resolution/{id}/step/{name}/configuration",
            get(resolution::get_step_configuration),
        )
        .route(
            "/resolution/{id}/step/{name}/state",
            axum::routing::put(resolution::set_step_state),
        )
        .route("/", get(meta::root))
        .route("/meta", get(meta::meta))
        .route(
            "/key-rotate",
            axum::routing::post(keys::rotate).get(keys::get),
        )
        .route(
            "/token",
            axum::routing::post(token::create).get(token::list),
        )
        .route("/token/{id}", axum::routing::delete(token::revoke))
        .route("/notification", get(notification::list))
        .route(
            "/notification/{id}/retry",
            axum::routing::post(notification::retry),
        )
        .route(
            "/webhook",
            axum::routing::post(webhook::create).get(webhook::list),
        )
        .route(
            "/webhook/{name}",
            get(webhook::get)
                .post(webhook::deliver)
                .delete(webhook::delete),
        )
        .route(
            "/schedule",
            axum::routing::post(schedule::create).get(schedule::list),
        )
        .route(
            "/schedule/{name}",
            get(schedule::get)
                .put(schedule::update)
                .delete(schedule::delete),
        )
        .route(
            "/schedule/{name}/pause",
            axum::routing::post(schedule::pause),
        )
        .route(
            "/schedule/{name}/resume",
            axum::routing::post(schedule::resume),
        )
        .route("/unsecured/stats", get(meta::stats))
        .route(
            "/unsecured/callback/{id}",
            axum::routing::post(callback::call),
        )
        .route(openapi::SPEC_PATH, get(openapi::spec))
        .route(openapi::DOCS_PATH, get(openapi::docs_redirect))
        .route("/docs/", get(openapi::docs_index))
        .route("/docs/{*file}", get(openapi::docs_asset))
        .route("/metrics", get(metrics::metrics))
        .route("/resolution/{id}/step/{name}/log", get(step_log::get))
        .route("/ui", get(ui::redirect))
        .route("/ui/", get(ui::index))
        .route("/ui/{*path}", get(ui::file))
        .route_layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::record,
        ))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |req, next| {
            body_limit_ext(limit, req, next)
        }))
        .layer(middleware::from_fn(body::yaml_answers))
        .layer(middleware::from_fn(ui::no_browser_dialog))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    let app = if maintenance {
        app.layer(middleware::from_fn(maintenance::guard))
    } else {
        app
    };
    let app = match cors(&state.config.cors_origins) {
        Some(layer) => app.layer(layer),
        None => app,
    };
    app.with_state(state)
}
