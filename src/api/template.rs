//! `GET /template`, `GET /template/{name}`.
//!
//! The list omits steps, variables and base configurations (as µTask); hidden templates are
//! listed to admins only, but any caller may fetch one by name.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value};

use super::{ApiError, AppState, Caller};
use crate::store;

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

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Value>>, ApiError> {
    let rows = store::template::list(&state.store, caller.is_admin).await?;
    Ok(Json(rows.iter().map(summary).collect()))
}

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
