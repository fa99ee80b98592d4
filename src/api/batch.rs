//! `POST /batch`: many tasks from one template, one per element of `inputs` (each merged with
//! `common_input`), sharing a batch id that `GET /task?batch=<id>` filters on.
//!
//! All or nothing: every merged input is validated first (422 naming `inputs[i].<name>` for
//! every problem, or a key given both in `common_input` and in an element), and a creation that
//! fails half-way deletes the batch's tasks again. Each task is created exactly as `POST /task`
//! creates one (same auto-run rule, comment, watchers and tags).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::body::Body;
use super::error::ErrorBody;
use super::task::create_error;
use super::{ApiError, AppState, Caller, FieldError};
use crate::store;
use crate::tasks::{self, CreateError, CreateRequest, Requester};
use crate::template::input;

/// Body of `POST /batch` (µTask's fields).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"template_name": "hello-world", "inputs": [{"name": "a"}, {"name": "b"}]}))]
pub struct CreateBatch {
    /// The template of every task.
    pub template_name: String,
    /// One task per element (at least one), each merged with `common_input`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub inputs: Vec<Map<String, Value>>,
    /// Inputs shared by every task (a key may not also appear in an element of `inputs`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub common_input: Option<Map<String, Value>>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub watcher_usernames: Option<Vec<String>>,
    #[serde(default)]
    pub watcher_groups: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// The answer of `POST /batch` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct BatchCreated {
    /// The batch id (`GET /task?batch=<id>` lists its tasks).
    pub id: uuid::Uuid,
    /// The created tasks, in the order of `inputs`.
    pub tasks: Vec<uuid::Uuid>,
}

fn invalid(fields: Vec<FieldError>) -> ApiError {
    let message = fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::Invalid { message, fields }
}

/// Creates many tasks from one template, all or nothing.
///
/// Every merged input is validated first (422 naming `inputs[i].<name>` for every problem); a
/// creation that fails half-way deletes the batch's tasks again.
#[utoipa::path(
    post,
    path = "/batch",
    tag = "batch",
    operation_id = "create_batch",
    request_body(description = "The batch to create (JSON or YAML).", content((CreateBatch = "application/json"), (CreateBatch = "application/x-yaml"))),
    responses(
        (status = 201, description = "The batch and its tasks.", body = BatchCreated),
        (status = 400, description = "Malformed body, blocked template, or a title cannot be rendered.", body = ErrorBody),
        (status = 403, description = "The caller may not create tasks from this template.", body = ErrorBody),
        (status = 404, description = "No such template.", body = ErrorBody),
        (status = 422, description = "No inputs, conflicting keys, or invalid inputs (`fields` names each).", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateBatch>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (template, _) = tasks::load_template(&state.store, &req.template_name)
        .await
        .map_err(create_error)?;
    if template.blocked {
        return Err(create_error(CreateError::Blocked));
    }
    let common = req.common_input.unwrap_or_default();
    let mut fields = Vec::new();
    if req.inputs.is_empty() {
        fields.push(FieldError {
            field: "inputs".into(),
            message: "a batch needs at least one input".into(),
        });
    }
    let mut merged = Vec::with_capacity(req.inputs.len());
    for (i, particular) in req.inputs.into_iter().enumerate() {
        let mut m = particular;
        for (k, v) in &common {
            if m.contains_key(k) {
                fields.push(FieldError {
                    field: format!("inputs[{i}].{k}"),
                    message: "given both here and in common_input (conflicting keys)".into(),
                });
            } else {
                m.insert(k.clone(), v.clone());
            }
        }
        if let Err(errs) = input::validate(&template.inputs, &m, &format!("inputs[{i}]")) {
            fields.extend(errs.into_iter().map(|e| FieldError {
                field: e.field,
                message: e.message,
            }));
        }
        merged.push(m);
    }
    if !fields.is_empty() {
        return Err(invalid(fields));
    }

    let batch = store::task::create_batch(&state.store).await?;
    let who = Requester {
        username: caller.username.clone(),
        groups: caller.groups.clone(),
        is_admin: caller.is_admin,
    };
    let mut ids = Vec::with_capacity(merged.len());
    for (i, input) in merged.into_iter().enumerate() {
        let request = CreateRequest {
            template_name: template.name.clone(),
            input,
            comment: req.comment.clone(),
            watcher_usernames: req.watcher_usernames.clone().unwrap_or_default(),
            watcher_groups: req.watcher_groups.clone().unwrap_or_default(),
            resolver_usernames: None,
            resolver_groups: None,
            delay: None,
            tags: req.tags.clone().unwrap_or_default(),
            parent_task_id: None,
            batch_id: Some(batch),
            status_hook: None,
            ids: None,
            claim: None,
        };
        match tasks::create(&state.store, &state.renderer, &who, request).await {
            Ok((rec, _)) => ids.push(rec.id),
            Err(e) => {
                if let Err(undo) = store::control::delete_batch(&state.store, batch).await {
                    tracing::error!(%batch, error = %undo, "cannot undo a half-created batch");
                }
                let e = match e {
                    CreateError::Invalid(fields) => CreateError::Invalid(
                        fields
                            .into_iter()
                            .map(|f| FieldError {
                                field: if f.field.starts_with("input.") {
                                    format!("inputs[{i}].{}", &f.field["input.".len()..])
                                } else {
                                    f.field
                                },
                                message: f.message,
                            })
                            .collect(),
                    ),
                    other => other,
                };
                return Err(create_error(e));
            }
        }
    }
    tracing::info!(%batch, tasks = ids.len(), template = %template.name, requester = %caller.username, "batch created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": batch, "tasks": ids})),
    ))
}
