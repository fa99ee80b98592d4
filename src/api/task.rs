//! `POST /task` and `GET /task/{id}`.
//!
//! Creating a task validates the inputs against the template (422 with every field error at
//! once), renders the title, and stores the task — plus its resolution when the task auto-runs — in one
//! transaction. Reading a task is allowed to admins, the requester, watchers and resolvers;
//! password inputs are masked for callers who are not admins.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::body::Body;
use super::{ApiError, AppState, Caller};
use crate::domain::TaskId;
use crate::store;
use crate::tasks::{self, CreateError, CreateRequest, Requester};
use crate::template::input;
use crate::template::model::TaskTemplate;

/// Body of `POST /task` (µTask's fields).
#[derive(Debug, Deserialize)]
pub struct CreateTask {
    pub template_name: String,
    #[serde(default)]
    pub input: Option<Map<String, Value>>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub watcher_usernames: Option<Vec<String>>,
    #[serde(default)]
    pub watcher_groups: Option<Vec<String>>,
    #[serde(default)]
    pub resolver_usernames: Option<Vec<String>>,
    #[serde(default)]
    pub resolver_groups: Option<Vec<String>>,
    /// Go duration before the task runs (`10m`).
    #[serde(default)]
    pub delay: Option<String>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// `POST /task`
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateTask>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = Requester {
        username: caller.username.clone(),
        groups: caller.groups.clone(),
        is_admin: caller.is_admin,
    };
    let request = CreateRequest {
        template_name: req.template_name,
        input: req.input.unwrap_or_default(),
        comment: req.comment,
        watcher_usernames: req.watcher_usernames.unwrap_or_default(),
        watcher_groups: req.watcher_groups.unwrap_or_default(),
        resolver_usernames: req.resolver_usernames,
        resolver_groups: req.resolver_groups,
        delay: req.delay,
        tags: req.tags.unwrap_or_default(),
        parent_task_id: None,
        batch_id: None,
    };
    let (rec, template) = tasks::create(&state.store, &state.renderer, &who, request)
        .await
        .map_err(create_error)?;
    Ok((
        StatusCode::CREATED,
        Json(task_json(&rec, &template, &caller)),
    ))
}

/// Maps a task creation failure to its HTTP answer.
pub fn create_error(e: CreateError) -> ApiError {
    match e {
        CreateError::TemplateNotFound(_) => ApiError::NotFound(e.to_string()),
        CreateError::Blocked | CreateError::Title(_) => ApiError::BadRequest(e.to_string()),
        CreateError::Forbidden(m) => ApiError::Forbidden(m),
        CreateError::Invalid(fields) => {
            let message = fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            ApiError::Invalid { message, fields }
        }
        CreateError::Store(s) => ApiError::from(s),
        CreateError::Internal(m) => ApiError::internal(m),
    }
}

/// May `caller` read this task?
pub fn can_read(caller: &Caller, rec: &store::task::TaskRecord, t: &TaskTemplate) -> bool {
    caller.is_admin
        || rec.requester_username == caller.username
        || caller.is_in(&rec.watcher_usernames, &rec.watcher_groups)
        || caller.is_in(&rec.resolver_usernames, &rec.resolver_groups)
        || rec.resolver_username.as_deref() == Some(caller.username.as_str())
        || caller.is_in(&t.allowed_resolver_usernames, &t.allowed_resolver_groups)
}

/// The API view of a task.
pub fn task_json(rec: &store::task::TaskRecord, t: &TaskTemplate, caller: &Caller) -> Value {
    let input = if caller.is_admin {
        rec.input.clone()
    } else {
        input::mask_passwords(&t.inputs, &rec.input)
    };
    json!({
        "id": rec.id,
        "title": rec.title,
        "template_name": rec.template_name,
        "template_version": rec.template_version,
        "state": rec.state,
        "requester_username": rec.requester_username,
        "requester_groups": rec.requester_groups,
        "watcher_usernames": rec.watcher_usernames,
        "watcher_groups": rec.watcher_groups,
        "resolver_usernames": rec.resolver_usernames,
        "resolver_groups": rec.resolver_groups,
        "resolver_username": rec.resolver_username,
        "input": input,
        "result": rec.result,
        "tags": rec.tags,
        "created": rec.created,
        "last_activity": rec.last_activity,
        "steps_done": rec.steps_done,
        "steps_total": rec.steps_total,
        "resolution": rec.resolution_id,
        "resolution_state": rec.resolution_state.map(|s| s.as_str()),
        "batch": rec.batch_id,
        "parent_task_id": rec.parent_task_id,
    })
}

/// `GET /task/{id}`
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: TaskId = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not a valid task id (a UUID)")))?;
    let rec = store::task::get(&state.store, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {id} not found")))?;
    let (def, _) =
        store::template::get_version(&state.store, &rec.template_name, rec.template_version)
            .await?
            .ok_or_else(|| ApiError::internal(format!("template version of task {id} missing")))?;
    let t: TaskTemplate = serde_json::from_value(def)
        .map_err(|e| ApiError::internal(format!("stored template is unreadable: {e}")))?;
    if !can_read(&caller, &rec, &t) {
        return Err(ApiError::Forbidden("you may not read this task".into()));
    }
    Ok(Json(task_json(&rec, &t, &caller)))
}
