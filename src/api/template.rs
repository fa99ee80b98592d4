//! `GET /template`, `GET /template/{name}`.
//!
//! The list omits steps, variables and base configurations (as µTask); hidden templates are
//! listed to admins only, but any caller may fetch one by name.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value};

use super::error::ErrorBody;
use super::{ApiError, AppState, Caller};
use crate::store;

/// A template input (requester or resolver) as declared by the template (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct TemplateInput {
    pub name: String,
    pub description: String,
    /// `string` (default), `password` (masked for non-admins), `bool` or `number`.
    #[schema(example = "string")]
    pub r#type: String,
    /// Go regexp the stringified value must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The only accepted values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Option<Vec<Value>>)]
    pub legal_values: Vec<Value>,
    /// The value is a list.
    pub collection: bool,
    pub optional: bool,
    /// Applied when the value is missing, null or `""`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// UI only: the form field is hidden.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// A template as listed by `GET /template`: its definition without `steps`, `variables`,
/// `base_configurations` and `result_format` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct TemplateSummary {
    /// Unique id (lower case).
    #[schema(example = "hello-world")]
    pub name: String,
    /// Version of the definition (a changed file gets a new version).
    pub version: i32,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_link: Option<String>,
    /// Task title, templated at task creation.
    pub title_format: String,
    pub allowed_resolver_usernames: Vec<String>,
    pub allowed_resolver_groups: Vec<String>,
    pub allow_all_resolver_usernames: bool,
    /// Tasks run as soon as they are created (when there are no resolver inputs).
    pub auto_runnable: bool,
    /// No task can be created from it.
    pub blocked: bool,
    /// Listed to admins only.
    pub hidden: bool,
    /// Max resolution runs (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_max: Option<i64>,
    pub allow_task_start_over: bool,
    pub inputs: Vec<TemplateInput>,
    pub resolver_inputs: Vec<TemplateInput>,
    /// Tags given to every task (values templated).
    pub tags: BTreeMap<String, String>,
    /// Template string syntax: `utask` (Go templates, translated) or `jinja`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "jinja")]
    pub dialect: Option<String>,
    /// Expected duration of a task (Go duration, e.g. `15m`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_duration: Option<String>,
}

/// A variable of a template: a fixed (templated) value or a JS expression (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct TemplateVariable {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Go duration (default 10s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_timeout: Option<String>,
}

/// A whole template definition as answered by `GET /template/{name}` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct Template {
    #[serde(flatten)]
    pub summary: TemplateSummary,
    /// Task result: keys and templated values, rendered when the resolution is DONE.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result_format: Option<Map<String, Value>>,
    pub variables: Vec<TemplateVariable>,
    /// Steps by name, in file order (µTask's step definition: `action`, `dependencies`,
    /// `conditions`, `foreach`, `retry_pattern`, `custom_states`…).
    #[schema(value_type = BTreeMap<String, Object>)]
    pub steps: Map<String, Value>,
    /// Named raw configurations referenced by `action.base_configuration`.
    #[schema(value_type = BTreeMap<String, Object>)]
    pub base_configurations: Map<String, Value>,
}

fn summary(rec: &store::template::TemplateRecord) -> Value {
    let mut m = match &rec.definition {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for k in ["steps", "variables", "base_configurations", "result_format"] {
        m.remove(k);
    }
    m.insert("name".into(), Value::String(rec.name.clone()));
    m.insert("version".into(), Value::from(rec.version));
    Value::Object(m)
}

/// The templates (hidden ones are listed to admins only).
#[utoipa::path(
    get,
    path = "/template",
    tag = "template",
    operation_id = "list_templates",
    responses((status = 200, description = "Every template the caller may list, without steps.", body = Vec<TemplateSummary>)),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Value>>, ApiError> {
    let rows = store::template::list(&state.store, caller.is_admin).await?;
    Ok(Json(rows.iter().map(summary).collect()))
}

/// One template, in full (any caller may fetch a hidden one by name).
#[utoipa::path(
    get,
    path = "/template/{name}",
    tag = "template",
    operation_id = "get_template",
    params(("name" = String, Path, description = "Template name (case-insensitive).", example = "hello-world")),
    responses(
        (status = 200, description = "The template.", body = Template),
        (status = 404, description = "No such template.", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = name.trim().to_lowercase();
    let rec = store::template::get(&state.store, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("template `{name}` not found")))?;
    let mut def = match rec.definition {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    def.insert("name".into(), Value::String(rec.name));
    def.insert("version".into(), Value::from(rec.version));
    Ok(Json(Value::Object(def)))
}
