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
use super::{AppState, ApiError, Caller, FieldError};
use crate::domain::{CommentId, ResolutionId, ResolutionState, TaskId, TaskState, duration};
use crate::store::{self, comment::NewComment, resolution::NewResolution, task::NewTask};
use crate::template::input;
use crate::template::dialect::{self, Dialect};
use crate::template::model::{Dialect as ModelDialect, TaskTemplate};
use crate::template::render::Renderer;

/// Tag key reserved for the parent task of a subtask.
pub const PARENT_TAG: &str = "_utask_parent_task_id";
/// Longest accepted comment.
const MAX_COMMENT_CHARS: usize = 10_000;

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

/// Loads a template's model from the store.
pub async fn load_template(state: &AppState, name: &str) -> Result<(TaskTemplate, i32), ApiError> {
    let normalized = name.trim().to_lowercase();
    let rec = store::template::get(&state.store, &normalized)
        .await?
        .filter(|r| !r.archived)
        .ok_or_else(|| ApiError::NotFound(format!("template `{normalized}` not found")))?;
    let t: TaskTemplate = serde_json::from_value(rec.definition)
        .map_err(|e| ApiError::internal(format!("stored template {normalized} is unreadable: {e}")))?;
    Ok((t, rec.version))
}

fn is_template_owner(caller: &Caller, t: &TaskTemplate) -> bool {
    caller.is_in(&t.allowed_resolver_usernames, &t.allowed_resolver_groups)
}

fn check_names(field: &str, names: &[String], errors: &mut Vec<FieldError>) {
    for (i, n) in names.iter().enumerate() {
        if n.trim().is_empty() || n.len() > 256 {
            errors.push(FieldError {
                field: format!("{field}[{i}]"),
                message: "must be a non-empty name of at most 256 characters".into(),
            });
        }
    }
}

/// `POST /task`
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateTask>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (template, version) = load_template(&state, &req.template_name).await?;
    if template.blocked {
        return Err(ApiError::BadRequest("Template not available (blocked)".into()));
    }
    let owner = caller.is_admin || is_template_owner(&caller, &template);
    if (req.resolver_usernames.is_some() || req.resolver_groups.is_some()) && !owner {
        return Err(ApiError::Forbidden(
            "only admins and template owners may set resolver_usernames / resolver_groups".into(),
        ));
    }

    let mut fields = Vec::new();
    let given = req.input.clone().unwrap_or_default();
    let inputs = match input::validate(&template.inputs, &given, "input") {
        Ok(v) => v,
        Err(errs) => {
            fields.extend(errs.into_iter().map(|e| FieldError { field: e.field, message: e.message }));
            Map::new()
        }
    };
    let watcher_usernames = req.watcher_usernames.clone().unwrap_or_default();
    let watcher_groups = req.watcher_groups.clone().unwrap_or_default();
    let resolver_usernames = req.resolver_usernames.clone().unwrap_or_default();
    let resolver_groups = req.resolver_groups.clone().unwrap_or_default();
    check_names("watcher_usernames", &watcher_usernames, &mut fields);
    check_names("watcher_groups", &watcher_groups, &mut fields);
    check_names("resolver_usernames", &resolver_usernames, &mut fields);
    check_names("resolver_groups", &resolver_groups, &mut fields);
    let delay = match &req.delay {
        Some(d) if !d.trim().is_empty() => match duration::parse(d) {
            Ok(d) => Some(d),
            Err(e) => {
                fields.push(FieldError { field: "delay".into(), message: e.to_string() });
                None
            }
        },
        _ => None,
    };
    let mut tags = Map::new();
    for (k, v) in template.tags.iter() {
        tags.insert(k.clone(), Value::String(v.clone()));
    }
    for (k, v) in req.tags.clone().unwrap_or_default() {
        if k == PARENT_TAG {
            fields.push(FieldError {
                field: format!("tags.{k}"),
                message: "this tag is reserved and set by mutask".into(),
            });
        } else if k.is_empty() || k.len() > 256 || v.len() > 4096 {
            fields.push(FieldError {
                field: format!("tags.{k}"),
                message: "tag keys must be 1-256 characters and values at most 4096".into(),
            });
        } else {
            tags.insert(k, Value::String(v));
        }
    }
    if let Some(c) = &req.comment
        && c.chars().count() > MAX_COMMENT_CHARS
    {
        fields.push(FieldError {
            field: "comment".into(),
            message: format!("longer than {MAX_COMMENT_CHARS} characters"),
        });
    }
    if !fields.is_empty() {
        let message = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ApiError::Invalid { message, fields });
    }

    let task_id = TaskId::new();
    // titles are shown to every reader of the task: password inputs are masked in them
    let masked = input::mask_passwords(&template.inputs, &Value::Object(inputs.clone()));
    let ctx = json!({
        "input": masked,
        "task": {
            "task_id": task_id.to_string(),
            "requester_username": caller.username,
            "requester_groups": caller.groups.join(","),
            "created": chrono::Utc::now().to_rfc3339(),
        },
    });
    let title = render_title(&state.renderer, &template, &ctx)
        .map_err(|e| ApiError::BadRequest(format!("cannot render the task title: {e}")))?;

    let steps = crate::engine::initial_steps(&template).map_err(ApiError::internal)?;
    let autorun = template.auto_runnable
        && (owner
            || template.allow_all_resolver_usernames
            || caller.is_in(&resolver_usernames, &resolver_groups));
    let now = chrono::Utc::now();
    let resolution = autorun.then(|| {
        let delayed = delay.filter(|d| !d.is_zero());
        NewResolution {
            id: ResolutionId::new(),
            state: if delayed.is_some() {
                ResolutionState::ToAutorunDelayed
            } else {
                ResolutionState::ToAutorun
            },
            resolver_username: None,
            run_max: template.retry_max().clamp(0, i32::MAX as i64) as i32,
            next_retry: delayed
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| now + d),
            resolver_input: Value::Object(Map::new()),
            steps,
        }
    });
    let task_state = match &resolution {
        Some(r) if r.state == ResolutionState::ToAutorunDelayed => TaskState::Delayed,
        _ => TaskState::Todo,
    };
    let new_task = NewTask {
        id: task_id,
        template_name: template.name.clone(),
        template_version: version,
        title,
        state: task_state,
        requester_username: caller.username.clone(),
        requester_groups: caller.groups.clone(),
        watcher_usernames,
        watcher_groups,
        resolver_usernames,
        resolver_groups,
        tags: Value::Object(tags),
        input: Value::Object(inputs),
        batch_id: None,
        parent_task_id: None,
    };
    let comment = req.comment.as_ref().filter(|c| !c.trim().is_empty()).map(|c| NewComment {
        id: CommentId::new(),
        task_id,
        username: caller.username.clone(),
        body: c.clone(),
    });
    store::task::create(&state.store, &new_task, resolution.as_ref(), comment.as_ref()).await?;
    tracing::info!(task = %task_id, template = %template.name, requester = %caller.username, autorun, "task created");
    let rec = store::task::get(&state.store, task_id)
        .await?
        .ok_or_else(|| ApiError::internal("task vanished after creation"))?;
    Ok((StatusCode::CREATED, Json(task_json(&rec, &template, &caller))))
}

/// Renders a template's `title_format` in the template's dialect.
fn render_title(r: &Renderer, t: &TaskTemplate, ctx: &Value) -> Result<String, String> {
    let d = match &t.dialect {
        Some(ModelDialect::Jinja) => Dialect::Jinja,
        Some(ModelDialect::Utask) => Dialect::Utask,
        None => dialect::detect([t.title_format.as_str()]),
    };
    r.render_dialect(d, &t.title_format, ctx, None).map_err(|e| e.to_string())
}

/// May `caller` read this task?
pub fn can_read(caller: &Caller, rec: &store::task::TaskRecord, t: &TaskTemplate) -> bool {
    caller.is_admin
        || rec.requester_username == caller.username
        || caller.is_in(&rec.watcher_usernames, &rec.watcher_groups)
        || caller.is_in(&rec.resolver_usernames, &rec.resolver_groups)
        || rec.resolver_username.as_deref() == Some(caller.username.as_str())
        || is_template_owner(caller, t)
}

/// The API view of a task.
pub fn task_json(rec: &store::task::TaskRecord, t: &TaskTemplate, caller: &Caller) -> Value {
    let input = if caller.is_admin { rec.input.clone() } else { input::mask_passwords(&t.inputs, &rec.input) };
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
    let (def, _) = store::template::get_version(&state.store, &rec.template_name, rec.template_version)
        .await?
        .ok_or_else(|| ApiError::internal(format!("template version of task {id} missing")))?;
    let t: TaskTemplate = serde_json::from_value(def)
        .map_err(|e| ApiError::internal(format!("stored template is unreadable: {e}")))?;
    if !can_read(&caller, &rec, &t) {
        return Err(ApiError::Forbidden("you may not read this task".into()));
    }
    Ok(Json(task_json(&rec, &t, &caller)))
}
