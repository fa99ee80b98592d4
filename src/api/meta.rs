//! `GET /meta` (who am I, which mutask), `GET /` (301 to `/meta`, as µTask) and the
//! unauthenticated `GET /unsecured/stats` (`{task_states: {STATE: count}}`, every task state
//! present, optionally restricted to tasks carrying every `tag=key=value` given).
//!
//! The commit is the `MUTASK_COMMIT` environment variable seen at build time (`unknown` when
//! unset); stats count tasks only and never reveal a title, input or name.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use std::collections::BTreeMap;

use super::error::ErrorBody;
use super::{ApiError, AppState, Caller};
use crate::domain::TaskState;
use crate::store;

/// The answer of `GET /meta` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct Meta {
    #[schema(example = "mutask")]
    pub application_name: String,
    pub user_is_admin: bool,
    pub username: String,
    pub user_groups: Vec<String>,
    /// mutask's version.
    pub version: String,
    /// The commit mutask was built from (`unknown` when not recorded).
    pub commit: String,
}

/// The answer of `GET /unsecured/stats` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct Stats {
    /// Number of tasks per state; every task state is present.
    #[schema(example = json!({"TODO": 2, "RUNNING": 0, "DONE": 10, "BLOCKED": 0, "DELAYED": 0, "CANCELLED": 1, "WONTFIX": 0, "WAITING": 0}))]
    pub task_states: BTreeMap<String, i64>,
}

/// Who am I, which mutask.
#[utoipa::path(
    get,
    path = "/meta",
    tag = "meta",
    operation_id = "meta",
    responses((status = 200, description = "The caller and the server.", body = Meta)),
)]
pub async fn meta(caller: Caller) -> Json<Value> {
    Json(json!({
        "application_name": "mutask",
        "user_is_admin": caller.is_admin,
        "username": caller.username,
        "user_groups": caller.groups,
        "version": env!("CARGO_PKG_VERSION"),
        "commit": option_env!("MUTASK_COMMIT").unwrap_or("unknown"),
    }))
}

/// Redirects browsers (`Accept: text/html`) to the dashboard at `/ui/`, API clients to `/meta`
/// (as µTask).
#[utoipa::path(
    get,
    path = "/",
    tag = "meta",
    operation_id = "root",
    responses(
        (status = 301, description = "To `/meta` (API clients; authenticated).", headers(("location" = String, description = "`/meta`"))),
        (status = 302, description = "To `/ui/` (browsers).", headers(("location" = String, description = "`/ui/`"))),
    ),
)]
pub async fn root(headers: axum::http::HeaderMap, caller: Result<Caller, ApiError>) -> Response {
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if browser {
        return (StatusCode::FOUND, [(header::LOCATION, "/ui/")]).into_response();
    }
    match caller {
        Ok(_) => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/meta")]).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Parses repeated `tag=key=value` query parameters into a JSON object (400 on a malformed one).
pub fn tag_filter(query: Option<&str>) -> Result<Option<Value>, ApiError> {
    let mut tags = Map::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k != "tag" {
            continue;
        }
        if v.contains('\0') {
            return Err(ApiError::BadRequest(
                "invalid tag: NUL characters are not allowed".into(),
            ));
        }
        match v.split_once('=') {
            Some((key, value)) if !key.is_empty() && !value.is_empty() => {
                tags.insert(key.to_string(), Value::String(value.to_string()));
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "invalid tag `{v}`: expected tag=key=value"
                )));
            }
        }
    }
    Ok((!tags.is_empty()).then_some(Value::Object(tags)))
}

/// Task counts per state (unauthenticated; counts only, never a title, input or name).
#[utoipa::path(
    get,
    path = "/unsecured/stats",
    tag = "meta",
    operation_id = "stats",
    params(("tag" = Option<Vec<String>>, Query, explode = true, description = "`key=value`; repeatable, only tasks carrying every tag are counted.")),
    responses(
        (status = 200, description = "Counts per task state.", body = Stats),
        (status = 400, description = "A malformed `tag`.", body = ErrorBody),
    ),
)]
pub async fn stats(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let tags = tag_filter(query.as_deref())?;
    let counts = store::listing::state_counts(&state.store, tags.as_ref()).await?;
    let mut states = Map::new();
    for s in TaskState::ALL {
        states.insert(s.as_str().to_string(), Value::from(0));
    }
    for (s, n) in counts {
        states.insert(s, Value::from(n));
    }
    Ok(Json(json!({ "task_states": states })))
}
