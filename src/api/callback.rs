//! `POST /unsecured/callback/{id}?t=<token>` — the URL handed out by the `callback` action.
//!
//! Unauthenticated by design (the token is the credential, compared in constant time). The JSON
//! body must match the schema given at creation (422 lists every violation); a callback is
//! accepted once (409 afterwards); the waiting resolution is woken in the same transaction.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::body::Body;
use super::error::ErrorBody;
use super::{ApiError, AppState, FieldError};
use crate::store;

/// The answer of an accepted callback (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct CallbackAccepted {
    pub id: uuid::Uuid,
    /// Always true.
    pub called: bool,
}

/// Calls back a waiting step (the URL handed out by the `callback` action).
///
/// Unauthenticated: the token `t` is the credential. The body must match the schema given when
/// the callback was created; a callback is accepted once.
#[utoipa::path(
    post,
    path = "/unsecured/callback/{id}",
    tag = "callback",
    operation_id = "call_callback",
    params(
        ("id" = uuid::Uuid, Path, description = "Callback id."),
        ("t" = String, Query, description = "The callback's secret token."),
    ),
    request_body(description = "Any JSON (or YAML) value matching the callback's schema; it becomes the step's output.", content((Value = "application/json"), (Value = "application/x-yaml"))),
    responses(
        (status = 200, description = "Accepted; the waiting resolution is woken.", body = CallbackAccepted),
        (status = 400, description = "Malformed id or body.", body = ErrorBody),
        (status = 401, description = "Missing or wrong token.", body = ErrorBody),
        (status = 404, description = "No such callback.", body = ErrorBody),
        (status = 409, description = "Already called.", body = ErrorBody),
        (status = 422, description = "The body does not match the callback's schema (`fields` names each violation).", body = ErrorBody),
    ),
)]
pub async fn call(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    let id: uuid::Uuid = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not a valid callback id")))?;
    let cb = store::callback::get(&state.store, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("callback {id} not found")))?;
    let token = query.get("t").map(String::as_str).unwrap_or_default();
    let ok =
        token.len() == cb.secret.len() && bool::from(token.as_bytes().ct_eq(cb.secret.as_bytes()));
    if !ok {
        return Err(ApiError::Unauthorized);
    }
    if cb.called.is_some() {
        return Err(ApiError::Conflict(format!(
            "callback {id} was already called"
        )));
    }
    if let Some(schema) = &cb.schema {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| ApiError::internal(format!("stored callback schema is invalid: {e}")))?;
        let fields: Vec<FieldError> = validator
            .iter_errors(&body)
            .take(50)
            .map(|e| FieldError {
                field: format!("body{}", e.instance_path()),
                message: e.to_string(),
            })
            .collect();
        if !fields.is_empty() {
            let message = fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ApiError::Invalid { message, fields });
        }
    }
    if !store::callback::record_call(&state.store, id, &body).await? {
        return Err(ApiError::Conflict(format!(
            "callback {id} was already called"
        )));
    }
    tracing::info!(callback = %id, task = %cb.task_id, "callback called");
    Ok(Json(json!({"id": id.to_string(), "called": true})))
}
