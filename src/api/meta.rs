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

use super::{ApiError, AppState, Caller};
use crate::domain::TaskState;
use crate::store;

/// `GET /meta`
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

/// `GET /`: 301 to `/meta`.
pub async fn root(_caller: Caller) -> Response {
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/meta")]).into_response()
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

/// `GET /unsecured/stats`
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
