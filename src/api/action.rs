//! `GET /action`: the action types a template may use — builtins with the JSON schema of their
//! configuration, the loaded plugins with theirs, and the functions — for the editor's
//! completion and for people writing templates.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{AppState, Caller};

/// An action type (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct ActionType {
    #[schema(example = "http")]
    pub name: String,
    /// `builtin`, `plugin` or `function`.
    pub kind: String,
    pub description: String,
    /// JSON schema of the configuration (null for functions: see `GET /function/{name}`).
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    /// JSON schema of the metadata a plugin returns (its manifest's `metadata_schema`; null
    /// when it publishes none, and for builtins and functions).
    #[schema(value_type = Option<Object>)]
    pub metadata_schema: Option<Value>,
}

/// Every action type with its configuration schema.
#[utoipa::path(
    get,
    path = "/action",
    tag = "template",
    operation_id = "list_actions",
    responses((status = 200, description = "Builtins, plugins and functions, by name within each kind.", body = Vec<ActionType>)),
)]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let mut out = Vec::new();
    for name in crate::action::schema::BUILTINS {
        let schema = crate::action::schema::builtin(name);
        let description = schema
            .as_ref()
            .and_then(|s| s["description"].as_str())
            .unwrap_or_default()
            .to_string();
        out.push(
            json!({"name": name, "kind": "builtin", "description": description,
                        "schema": schema, "metadata_schema": null}),
        );
    }
    for (name, p) in state.plugin_schemas.iter() {
        out.push(
            json!({"name": name, "kind": "plugin", "description": p.description,
                        "schema": p.config_schema, "metadata_schema": p.metadata_schema}),
        );
    }
    for f in state.functions.names() {
        out.push(
            json!({"name": f, "kind": "function", "description": "", "schema": null,
                        "metadata_schema": null}),
        );
    }
    Json(Value::Array(out))
}
