//! `GET /function`, `GET /function/{name}`: the functions loaded from `MUTASK_FUNCTIONS_DIR`.
//!
//! Functions are read-only definitions shared by every template (µTask's `functions` directory):
//! any authenticated caller may list and read them, as in µTask. They come from the files this
//! instance loaded at startup, not from the database.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::error::ErrorBody;
use super::{ApiError, AppState, Caller};
use crate::template::model::Function;

/// A function: an action type that wraps another action with preset configuration (OpenAPI
/// schema).
#[derive(utoipa::ToSchema)]
pub struct FunctionDoc {
    #[schema(example = "ovh::request")]
    pub name: String,
    pub description: String,
    /// The wrapped action (`type`, `configuration`, `output`…).
    #[schema(value_type = Object)]
    pub action: Value,
    /// Runs before the action; its output is available as `{{ pre_hook }}`.
    #[schema(value_type = Option<Object>)]
    pub pre_hook: Option<Value>,
    /// Prepended to the calling step's conditions.
    #[schema(value_type = Vec<Object>)]
    pub conditions: Vec<Value>,
    /// Merged into the calling step's custom states.
    pub custom_states: Vec<String>,
}

fn doc(f: &Function) -> Value {
    json!({
        "name": f.name,
        "description": f.description,
        "action": f.action,
        "pre_hook": f.pre_hook,
        "conditions": f.conditions,
        "custom_states": f.custom_states,
    })
}

/// The functions, in load order.
#[utoipa::path(
    get,
    path = "/function",
    tag = "template",
    operation_id = "list_functions",
    responses((status = 200, description = "Every loaded function.", body = Vec<FunctionDoc>)),
)]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Vec<Value>> {
    Json(state.functions.iter().map(doc).collect())
}

/// One function by name.
#[utoipa::path(
    get,
    path = "/function/{name}",
    tag = "template",
    operation_id = "get_function",
    params(("name" = String, Path, description = "Function name.", example = "ovh::request")),
    responses(
        (status = 200, description = "The function.", body = FunctionDoc),
        (status = 404, description = "No such function.", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .functions
        .get(name.trim())
        .map(|f| Json(doc(f)))
        .ok_or_else(|| ApiError::NotFound(format!("function `{}` not found", name.trim())))
}
