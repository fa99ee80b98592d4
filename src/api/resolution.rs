//! Resolutions: `POST /resolution`, `GET|PUT /resolution/{id}`, `POST /resolution/{id}/run|pause|
//! extend|cancel`, `GET|PUT /resolution/{id}/step/{name}`,
//! `GET /resolution/{id}/step/{name}/configuration` (rendered, secrets masked) and
//! `PUT /resolution/{id}/step/{name}/state`.
//!
//! Roles (µTask's): a **manager** is named by the template's `allowed_resolver_usernames/groups`,
//! the task's `resolver_usernames/groups`, or is the resolution's resolver. Creating and acting on
//! a resolution takes an admin or a manager; reading it also suits the requester and watchers,
//! who see steps without their outputs, metadata, children or foreach items, and no resolver
//! inputs (managers who are not admins see password resolver inputs masked). Setting a step
//! state takes an admin or a template owner and a PAUSED resolution; editing the steps or the
//! resolver inputs of a PAUSED resolution (`PUT`) takes an admin, and the new steps are validated
//! like a template's.
//!
//! Invariants: the API never runs a cycle itself — `run` and `extend` make the resolution
//! claimable (TO_AUTORUN, or ERROR due now) and notify the runners; every state change is one
//! guarded statement in [`store::control`] that also writes µTask's automatic task comment, and a
//! refused change answers 400 with µTask's message naming the current state.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::body::Body;
use super::error::ErrorBody;
use super::openapi::ResolutionStateSchema;
use super::{ApiError, AppState, Caller, FieldError};
use crate::domain::{ResolutionId, ResolutionState, TaskId};
use crate::store::{
    self,
    control::{self, CreateRefused, Refused, StepRefused},
    resolution::{NewResolution, ResolutionRecord, StepRecord},
    task::TaskRecord,
};
use crate::template::input;
use crate::template::model::{BUILTIN_STEP_STATES, TaskTemplate};

/// Parses a path or body id (a UUID) naming what it is in the error.
pub fn parse_id<T: FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.trim()
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`{raw}` is not a valid {what} id (a UUID)")))
}

/// The template version a task was created from.
pub async fn task_template(state: &AppState, task: &TaskRecord) -> Result<TaskTemplate, ApiError> {
    store::template::version_model(&state.store, &task.template_name, task.template_version)
        .await?
        .map(|t| TaskTemplate::clone(&t))
        .ok_or_else(|| {
            ApiError::internal(format!(
                "template {} version {} of task {} is missing",
                task.template_name, task.template_version, task.id
            ))
        })
}

/// A task and its template version (404 when the task does not exist).
pub async fn load_task(
    state: &AppState,
    id: TaskId,
) -> Result<(TaskRecord, TaskTemplate), ApiError> {
    let task = store::task::get(&state.store, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {id} not found")))?;
    let template = task_template(state, &task).await?;
    Ok((task, template))
}

/// Template owner: named by the template's allowed resolvers.
pub fn is_template_owner(caller: &Caller, t: &TaskTemplate) -> bool {
    caller.is_in(&t.allowed_resolver_usernames, &t.allowed_resolver_groups)
}

/// Resolution manager before a resolution exists: template owner or task resolver.
pub fn may_resolve(caller: &Caller, task: &TaskRecord, t: &TaskTemplate) -> bool {
    is_template_owner(caller, t) || caller.is_in(&task.resolver_usernames, &task.resolver_groups)
}

/// Resolution manager: template owner, task resolver, or the resolution's resolver.
pub fn is_manager(caller: &Caller, task: &TaskRecord, t: &TaskTemplate) -> bool {
    may_resolve(caller, task, t) || task.resolver_username.as_deref() == Some(&caller.username)
}

/// Requester or watcher of a task.
pub fn is_requester_or_watcher(caller: &Caller, task: &TaskRecord) -> bool {
    task.requester_username == caller.username
        || caller.is_in(&task.watcher_usernames, &task.watcher_groups)
}

/// What a caller may see of a resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// Admin: everything.
    Admin,
    /// Manager: everything, password resolver inputs masked.
    Manager,
    /// Requester or watcher: no outputs, no resolver inputs.
    Reader,
}

fn view_of(caller: &Caller, task: &TaskRecord, t: &TaskTemplate) -> Result<View, ApiError> {
    if caller.is_admin {
        Ok(View::Admin)
    } else if is_manager(caller, task, t) {
        Ok(View::Manager)
    } else if is_requester_or_watcher(caller, task) {
        Ok(View::Reader)
    } else {
        Err(ApiError::Forbidden(
            "Can't display resolution details".into(),
        ))
    }
}

/// A step of a resolution (OpenAPI schema of what the handlers answer): the template's step
/// definition (`description`, `action`, `dependencies`, `conditions`, `foreach`,
/// `custom_states`…) plus its run state. Requesters and watchers who are not managers get
/// `output`, `metadata`, `children` and `item` as null.
#[derive(utoipa::ToSchema)]
pub struct ResolutionStep {
    pub name: String,
    /// A builtin step state (`TODO`, `RUNNING`, `DONE`, `CLIENT_ERROR`, `SERVER_ERROR`,
    /// `FATAL_ERROR`, `CRASHED`, `PRUNE`, `TO_RETRY`, `RETRY_NOW`, `AFTERRUN_ERROR`, `WAITING`,
    /// `EXPANDED`, `TIMEOUT`) or one of the step's `custom_states`.
    #[schema(example = "DONE")]
    pub state: String,
    pub try_count: i32,
    #[schema(required = true)]
    pub last_run: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(required = true)]
    pub error: Option<String>,
    /// The foreach step this step was expanded from.
    #[schema(required = true)]
    pub parent: Option<String>,
    #[schema(required = true)]
    pub output: Option<Value>,
    #[schema(required = true)]
    pub metadata: Option<Value>,
    /// Names of the steps expanded from this foreach step.
    #[schema(required = true)]
    pub children: Option<Value>,
    /// The foreach item of an expanded step.
    #[schema(required = true)]
    pub item: Option<Value>,
    /// The rest of the template's step definition.
    #[serde(flatten)]
    #[schema(value_type = BTreeMap<String, Value>)]
    pub definition: Map<String, Value>,
}

/// A resolution as answered by `POST /resolution` and `GET /resolution/{id}` (OpenAPI schema of
/// the handlers' answer).
#[derive(utoipa::ToSchema)]
pub struct Resolution {
    pub id: uuid::Uuid,
    pub task_id: uuid::Uuid,
    pub task_title: String,
    pub template_name: String,
    #[schema(value_type = ResolutionStateSchema)]
    pub state: String,
    #[schema(required = true)]
    pub resolver_username: Option<String>,
    /// The mutask instance running (or that last ran) it.
    #[schema(required = true)]
    pub instance_id: Option<uuid::Uuid>,
    pub created: chrono::DateTime<chrono::Utc>,
    #[schema(required = true)]
    pub last_start: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(required = true)]
    pub last_stop: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(required = true)]
    pub next_retry: Option<chrono::DateTime<chrono::Utc>>,
    pub run_count: i32,
    pub run_max: i32,
    /// The resolver inputs: null for requesters and watchers, passwords masked for managers who
    /// are not admins.
    #[schema(required = true, value_type = Option<Object>)]
    pub resolver_inputs: Option<Value>,
    /// Steps by name.
    pub steps: BTreeMap<String, ResolutionStep>,
}

/// The answer of `PUT /resolution/{id}/step/{name}/state` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct StepStateChanged {
    pub name: String,
    pub state: String,
    pub previous_state: String,
}

/// The API view of one step.
fn step_json(s: &StepRecord, view: View) -> Value {
    let full = view != View::Reader;
    let mut out = match s.definition.get("step") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let def = |k: &str| s.definition.get(k).cloned().unwrap_or(Value::Null);
    out.insert("name".into(), Value::String(s.name.clone()));
    out.insert("state".into(), Value::String(s.state.as_str().to_string()));
    out.insert("try_count".into(), Value::from(s.try_count));
    out.insert("last_run".into(), json!(s.last_run));
    out.insert("error".into(), json!(s.error));
    out.insert("parent".into(), def("parent"));
    let runtime = [
        ("output", s.output.clone()),
        ("metadata", s.metadata.clone()),
        ("children", s.children.clone()),
        ("item", s.definition.get("item").cloned()),
    ];
    for (k, v) in runtime {
        let v = if full {
            v.unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        out.insert(k.into(), v);
    }
    Value::Object(out)
}

fn resolution_json(
    r: &ResolutionRecord,
    task: &TaskRecord,
    t: &TaskTemplate,
    steps: &[StepRecord],
    view: View,
) -> Value {
    let resolver_inputs = match view {
        View::Admin => r.resolver_input.clone(),
        View::Manager => input::mask_passwords(&t.resolver_inputs, &r.resolver_input),
        View::Reader => Value::Null,
    };
    let steps: Map<String, Value> = steps
        .iter()
        .map(|s| (s.name.clone(), step_json(s, view)))
        .collect();
    json!({
        "id": r.id,
        "task_id": r.task_id,
        "task_title": task.title,
        "template_name": task.template_name,
        "state": r.state,
        "resolver_username": r.resolver_username,
        "instance_id": r.owner_instance,
        "created": r.created,
        "last_start": r.last_start,
        "last_stop": r.last_stop,
        "next_retry": r.next_retry,
        "run_count": r.run_count,
        "run_max": r.run_max,
        "resolver_inputs": resolver_inputs,
        "steps": steps,
    })
}

/// A resolution with its task and template (404 when the resolution does not exist).
async fn load_resolution(
    state: &AppState,
    raw: &str,
) -> Result<(ResolutionRecord, TaskRecord, TaskTemplate), ApiError> {
    let id: ResolutionId = parse_id(raw, "resolution")?;
    let r = store::resolution::get(&state.store, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("resolution {id} not found")))?;
    let (task, template) = load_task(state, r.task_id).await?;
    Ok((r, task, template))
}

/// Body of `POST /resolution`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = CreateResolution)]
pub struct CreateResolutionBody {
    /// The task to resolve.
    #[schema(format = Uuid)]
    pub task_id: String,
    /// The template's resolver inputs by name (validated: 422 lists every problem).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub resolver_inputs: Option<Map<String, Value>>,
    /// Replace a PAUSED, BLOCKED_BADREQUEST or CANCELLED resolution (admins, or when the template
    /// has `allow_task_start_over`).
    #[serde(default)]
    pub start_over: Option<bool>,
}

/// Creates the resolution of a task (admin or manager).
///
/// Validates the resolver inputs (422 with every field) and creates the resolution in
/// TO_AUTORUN: a runner claims it at once.
#[utoipa::path(
    post,
    path = "/resolution",
    tag = "resolution",
    operation_id = "create_resolution",
    request_body(description = "The resolution to create (JSON or YAML).", content((CreateResolutionBody = "application/json"), (CreateResolutionBody = "application/x-yaml"))),
    responses(
        (status = 201, description = "The resolution.", body = Resolution),
        (status = 400, description = "Malformed body or task id, or the task's state forbids it.", body = ErrorBody),
        (status = 403, description = "The caller may not resolve (or start over) this task.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 409, description = "The task already has a resolution (see `start_over`).", body = ErrorBody),
        (status = 422, description = "Invalid resolver inputs (`fields` names each).", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateResolutionBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let task_id: TaskId = parse_id(&req.task_id, "task")?;
    let (task, template) = load_task(&state, task_id).await?;
    let manager = may_resolve(&caller, &task, &template);
    if !caller.is_admin && !manager {
        return Err(ApiError::Forbidden(
            "You are not allowed to resolve this task".into(),
        ));
    }
    let start_over = req.start_over.unwrap_or(false);
    if start_over && !caller.is_admin && !template.allow_task_start_over {
        return Err(ApiError::Forbidden(
            "You are not allowed to start over this task".into(),
        ));
    }
    let given = req.resolver_inputs.unwrap_or_default();
    let resolver_input = input::validate(&template.resolver_inputs, &given, "resolver_inputs")
        .map_err(|errs| {
            let fields: Vec<FieldError> = errs
                .into_iter()
                .map(|e| FieldError {
                    field: e.field,
                    message: e.message,
                })
                .collect();
            let message = fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            ApiError::Invalid { message, fields }
        })?;
    let steps = crate::engine::initial_steps(&template)
        .map_err(|e| ApiError::internal(format!("cannot build the steps: {e}")))?;
    let rid = ResolutionId::new();
    let req = control::CreateResolution {
        task: task_id,
        resolution: NewResolution {
            id: rid,
            state: ResolutionState::ToAutorun,
            resolver_username: Some(caller.username.clone()),
            run_max: template.retry_max().clamp(0, i64::from(i32::MAX)) as i32,
            next_retry: None,
            resolver_input: Value::Object(resolver_input),
            steps,
        },
        start_over,
        add_resolver: caller.is_admin.then(|| caller.username.clone()),
    };
    match control::create_resolution(&state.store, &req).await? {
        Ok(()) => {}
        Err(CreateRefused::TaskNotFound) => {
            return Err(ApiError::NotFound(format!("task {task_id} not found")));
        }
        Err(CreateRefused::TaskState(s)) => {
            return Err(ApiError::BadRequest(format!(
                "Can't create a resolution for a task in state {s}"
            )));
        }
        Err(CreateRefused::Exists(existing)) => {
            return Err(ApiError::Conflict(format!(
                "task {task_id} already has resolution {existing} (use start_over to replace a PAUSED, BLOCKED_BADREQUEST or CANCELLED one)"
            )));
        }
        Err(CreateRefused::NothingToStartOver) => {
            return Err(ApiError::BadRequest(
                "can't start over a task that hasn't been resolved at least once".into(),
            ));
        }
        Err(CreateRefused::NotStartable(s)) => {
            return Err(ApiError::BadRequest(format!(
                "can't start over a task that isn't in status \"PAUSED\", \"BLOCKED_BADREQUEST\" or \"CANCELLED\" (it is {s})"
            )));
        }
    }
    tracing::info!(resolution = %rid, task = %task_id, resolver = %caller.username, start_over, "resolution created");
    let (r, task, template) = load_resolution(&state, &rid.to_string()).await?;
    let steps = store::resolution::steps(&state.store, rid).await?;
    let view = if caller.is_admin {
        View::Admin
    } else {
        View::Manager
    };
    Ok((
        StatusCode::CREATED,
        Json(resolution_json(&r, &task, &template, &steps, view)),
    ))
}

/// Reads a resolution and its steps (admins and managers; requesters and watchers without step
/// outputs or resolver inputs).
#[utoipa::path(
    get,
    path = "/resolution/{id}",
    tag = "resolution",
    operation_id = "get_resolution",
    params(("id" = uuid::Uuid, Path, description = "Resolution id.")),
    responses(
        (status = 200, description = "The resolution.", body = Resolution),
        (status = 400, description = "Malformed id.", body = ErrorBody),
        (status = 403, description = "The caller may not read this resolution.", body = ErrorBody),
        (status = 404, description = "No such resolution.", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (r, task, template) = load_resolution(&state, &id).await?;
    let view = view_of(&caller, &task, &template)?;
    let steps = store::resolution::steps(&state.store, r.id).await?;
    Ok(Json(resolution_json(&r, &task, &template, &steps, view)))
}

/// Reads one step of a resolution (same visibility as the resolution).
#[utoipa::path(
    get,
    path = "/resolution/{id}/step/{name}",
    tag = "resolution",
    operation_id = "get_resolution_step",
    params(
        ("id" = uuid::Uuid, Path, description = "Resolution id."),
        ("name" = String, Path, description = "Step name."),
    ),
    responses(
        (status = 200, description = "The step.", body = ResolutionStep),
        (status = 400, description = "Malformed id.", body = ErrorBody),
        (status = 403, description = "The caller may not read this resolution.", body = ErrorBody),
        (status = 404, description = "No such resolution or step.", body = ErrorBody),
    ),
)]
pub async fn get_step(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (r, task, template) = load_resolution(&state, &id).await?;
    let view = view_of(&caller, &task, &template)?;
    let steps = store::resolution::steps(&state.store, r.id).await?;
    let step = steps.iter().find(|s| s.name == name).ok_or_else(|| {
        ApiError::NotFound(format!("step `{name}` not found in resolution {}", r.id))
    })?;
    Ok(Json(step_json(step, view)))
}

/// The answer of `GET /resolution/{id}/step/{name}/configuration` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct StepConfiguration {
    pub name: String,
    /// Rendered with the resolution's current values: password inputs and password resolver
    /// inputs masked; instance configuration values, pre-hook and function values, a foreach
    /// parent's iterator and JavaScript variables left as written — and, for requesters and
    /// watchers, whatever reads step outputs or resolver inputs.
    #[schema(value_type = Object)]
    pub configuration: Value,
    /// As written in the template (base configuration merged).
    #[schema(value_type = Object)]
    pub as_written: Value,
    /// Some values were left as written.
    pub runtime_values: bool,
    /// Rendering problems.
    pub errors: Vec<String>,
    /// A foreach parent: one rendering per element (absent otherwise).
    #[schema(value_type = Option<Vec<Object>>)]
    pub children: Option<Vec<Value>>,
}

/// Renders one step's configuration with the resolution's current values (same visibility as
/// the resolution; secrets masked). Foreach children render with their own item, and a foreach
/// parent answers one rendering per element (`children`).
#[utoipa::path(
    get,
    path = "/resolution/{id}/step/{name}/configuration",
    tag = "resolution",
    operation_id = "get_resolution_step_configuration",
    params(
        ("id" = uuid::Uuid, Path, description = "Resolution id."),
        ("name" = String, Path, description = "Step name (a foreach child's own name renders with its item)."),
    ),
    responses(
        (status = 200, description = "The rendered configuration.", body = StepConfiguration),
        (status = 400, description = "Malformed id.", body = ErrorBody),
        (status = 403, description = "The caller may not read this resolution.", body = ErrorBody),
        (status = 404, description = "No such resolution or step.", body = ErrorBody),
    ),
)]
pub async fn get_step_configuration(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    use crate::engine::model::{RunResolution, RunStep};
    use crate::engine::plan::{ResolutionValues, render_resolution_step};
    let (r, task, template) = load_resolution(&state, &id).await?;
    let view = view_of(&caller, &task, &template)?;
    let records = store::resolution::steps(&state.store, r.id).await?;
    if !records.iter().any(|s| s.name == name) {
        return Err(ApiError::NotFound(format!(
            "step `{name}` not found in resolution {}",
            r.id
        )));
    }
    let mut steps = indexmap::IndexMap::new();
    for s in &records {
        steps.insert(
            s.name.clone(),
            RunStep {
                name: s.name.clone(),
                def: step_def(s)?,
                state: s.state.clone(),
                try_count: s.try_count,
                last_run: s.last_run,
                output: s.output.clone(),
                metadata: s.metadata.clone(),
                children: s.children.clone(),
                error: s.error.clone(),
            },
        );
    }
    let run = RunResolution {
        id: r.id,
        task_id: r.task_id,
        state: r.state,
        run_count: r.run_count,
        run_max: r.run_max,
        next_retry: r.next_retry,
        steps,
    };
    let task_values = json!({
        "task_id": task.id.to_string(),
        "created": task.created.to_rfc3339(),
        "requester_username": task.requester_username,
        "requester_groups": task.requester_groups.join(","),
        "resolver_username": r.resolver_username.clone().unwrap_or_default(),
        "resolver_groups": task.resolver_groups.join(","),
        "watcher_usernames": task.watcher_usernames.join(","),
        "watcher_groups": task.watcher_groups.join(","),
        "last_activity": task.last_activity.to_rfc3339(),
        "region": "default",
        "resolution_id": r.id.to_string(),
    });
    let renderer = state.renderer.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        render_resolution_step(
            &ResolutionValues {
                template: &template,
                resolution: &run,
                input: &task.input,
                resolver_input: &r.resolver_input,
                task: task_values,
                outputs_visible: view != View::Reader,
            },
            &name,
            renderer,
        )
    })
    .await
    .map_err(|e| ApiError::internal(format!("rendering a step configuration: {e}")))?
    .ok_or_else(|| ApiError::internal("the step vanished while rendering".to_string()))?;
    serde_json::to_value(rendered)
        .map(Json)
        .map_err(|e| ApiError::internal(format!("encoding a step configuration: {e}")))
}

/// Checks that the caller sees step outputs of resolution `raw` (admins and managers; not
/// requesters and watchers only); returns its id.
pub(crate) async fn check_output_reader(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<ResolutionId, ApiError> {
    let (r, task, template) = load_resolution(state, raw).await?;
    match view_of(caller, &task, &template)? {
        View::Reader => Err(ApiError::Forbidden(
            "step logs are shown to the task's resolvers and to admins".into(),
        )),
        _ => Ok(r.id),
    }
}

async fn manager_only(
    state: &AppState,
    caller: &Caller,
    id: &str,
    forbidden: &str,
) -> Result<ResolutionRecord, ApiError> {
    let (r, task, template) = load_resolution(state, id).await?;
    if !caller.is_admin && !is_manager(caller, &task, &template) {
        return Err(ApiError::Forbidden(forbidden.into()));
    }
    Ok(r)
}

fn refused(id: ResolutionId, r: Refused, message: impl FnOnce(&str) -> String) -> ApiError {
    match r {
        Refused::NotFound => ApiError::NotFound(format!("resolution {id} not found")),
        Refused::State(s) => ApiError::BadRequest(message(&s)),
    }
}

/// Runs a resolution: makes it claimable now, a runner picks it up (admin or manager).
#[utoipa::path(
    post,
    path = "/resolution/{id}/run",
    tag = "resolution",
    operation_id = "run_resolution",
    params(("id" = uuid::Uuid, Path, description = "Resolution id.")),
    responses(
        (status = 204, description = "Queued for a runner."),
        (status = 400, description = "Malformed id, or already running, done or cancelled.", body = ErrorBody),
        (status = 403, description = "The caller may not resolve this task.", body = ErrorBody),
        (status = 404, description = "No such resolution.", body = ErrorBody),
    ),
)]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let r = manager_only(
        &state,
        &caller,
        &id,
        "You are not allowed to resolve this task",
    )
    .await?;
    control::run(&state.store, r.id, &caller.username)
        .await?
        .map_err(|e| {
            refused(r.id, e, |s| {
                let why = match s {
                    "RUNNING" => "already running",
                    "DONE" => "already done",
                    "CANCELLED" => "cancelled",
                    _ => "its task is finished",
                };
                format!("Can't run resolution: {why}")
            })
        })?;
    tracing::info!(resolution = %r.id, by = %caller.username, "resolution run requested");
    Ok(StatusCode::NO_CONTENT)
}

/// Pauses a resolution (admin or manager; `force`: admins only, from any state).
#[utoipa::path(
    post,
    path = "/resolution/{id}/pause",
    tag = "resolution",
    operation_id = "pause_resolution",
    params(
        ("id" = uuid::Uuid, Path, description = "Resolution id."),
        ("force" = Option<bool>, Query, description = "Pause from any state (admins only); `true`/`1` or `false`/`0`."),
    ),
    responses(
        (status = 204, description = "Paused."),
        (status = 400, description = "Malformed id or `force`, or the state forbids a pause.", body = ErrorBody),
        (status = 403, description = "The caller may not pause this task (or force a pause).", body = ErrorBody),
        (status = 404, description = "No such resolution.", body = ErrorBody),
    ),
)]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let force = match query.get("force").map(|v| v.trim().to_ascii_lowercase()) {
        None => false,
        Some(v) if v == "true" || v == "1" => true,
        Some(v) if v == "false" || v == "0" || v.is_empty() => false,
        Some(v) => {
            return Err(ApiError::BadRequest(format!(
                "`force` must be true or false, not `{v}`"
            )));
        }
    };
    let r = manager_only(
        &state,
        &caller,
        &id,
        "You are not allowed to pause this task",
    )
    .await?;
    if force && !caller.is_admin {
        return Err(ApiError::Forbidden("only admins may force a pause".into()));
    }
    control::pause(&state.store, r.id, force, &caller.username)
        .await?
        .map_err(|e| {
            refused(r.id, e, |s| {
                format!("Can't pause resolution while in state {s}")
            })
        })?;
    tracing::info!(resolution = %r.id, by = %caller.username, force, "resolution paused");
    Ok(StatusCode::NO_CONTENT)
}

/// Extends a BLOCKED_MAXRETRIES resolution: ERROR, due now, `run_max += retry_max`.
#[utoipa::path(
    post,
    path = "/resolution/{id}/extend",
    tag = "resolution",
    operation_id = "extend_resolution",
    params(("id" = uuid::Uuid, Path, description = "Resolution id.")),
    responses(
        (status = 204, description = "Extended and queued for a runner."),
        (status = 400, description = "Malformed id, or not BLOCKED_MAXRETRIES.", body = ErrorBody),
        (status = 403, description = "The caller may not extend this resolution.", body = ErrorBody),
        (status = 404, description = "No such resolution.", body = ErrorBody),
    ),
)]
pub async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (r, task, template) = load_resolution(&state, &id).await?;
    if !caller.is_admin && !is_manager(&caller, &task, &template) {
        return Err(ApiError::Forbidden(
            "Not allowed to extend resolution".into(),
        ));
    }
    let extra = template.retry_max().clamp(1, i64::from(i32::MAX)) as i32;
    control::extend(&state.store, r.id, extra, &caller.username)
        .await?
        .map_err(|e| {
            refused(r.id, e, |s| {
                format!(
                    "Cannot extend a resolution which is not in state 'BLOCKED_MAXRETRIES' (it is {s})"
                )
            })
        })?;
    tracing::info!(resolution = %r.id, by = %caller.username, extra, "resolution extended");
    Ok(StatusCode::NO_CONTENT)
}

/// Cancels a resolution and its task (admin or manager).
#[utoipa::path(
    post,
    path = "/resolution/{id}/cancel",
    tag = "resolution",
    operation_id = "cancel_resolution",
    params(("id" = uuid::Uuid, Path, description = "Resolution id.")),
    responses(
        (status = 204, description = "Resolution and task CANCELLED."),
        (status = 400, description = "Malformed id, or CANCELLED, RUNNING or DONE.", body = ErrorBody),
        (status = 403, description = "The caller may not cancel this task.", body = ErrorBody),
        (status = 404, description = "No such resolution.", body = ErrorBody),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let r = manager_only(
        &state,
        &caller,
        &id,
        "You are not allowed to cancel this task",
    )
    .await?;
    control::cancel(&state.store, r.id, &caller.username)
        .await?
        .map_err(|e| refused(r.id, e, |s| format!("Can't cancel resolution: state {s}")))?;
    tracing::info!(resolution = %r.id, by = %caller.username, "resolution cancelled");
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `PUT /resolution/{id}/step/{name}/state`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StepStateBody {
    /// A builtin step state or one of the step's `custom_states`.
    #[schema(example = "TODO")]
    pub state: String,
}

/// Sets the state of a step (admin or template owner; the resolution must be PAUSED).
///
/// The state is a builtin step state or one of the step's custom states (422 otherwise).
#[utoipa::path(
    put,
    path = "/resolution/{id}/step/{name}/state",
    tag = "resolution",
    operation_id = "set_step_state",
    params(
        ("id" = uuid::Uuid, Path, description = "Resolution id."),
        ("name" = String, Path, description = "Step name."),
    ),
    request_body(description = "The new state (JSON or YAML).", content((StepStateBody = "application/json"), (StepStateBody = "application/x-yaml"))),
    responses(
        (status = 200, description = "The step's new and previous state.", body = StepStateChanged),
        (status = 400, description = "Malformed id or body, or the resolution is not PAUSED.", body = ErrorBody),
        (status = 403, description = "The caller may not set step states.", body = ErrorBody),
        (status = 404, description = "No such resolution or step.", body = ErrorBody),
        (status = 422, description = "A state the step does not allow.", body = ErrorBody),
    ),
)]
pub async fn set_step_state(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    Body(body): Body<StepStateBody>,
) -> Result<Json<Value>, ApiError> {
    let (r, _task, template) = load_resolution(&state, &id).await?;
    if !caller.is_admin && !is_template_owner(&caller, &template) {
        return Err(ApiError::Forbidden(
            "Can't update resolution step state".into(),
        ));
    }
    let steps = store::resolution::steps(&state.store, r.id).await?;
    let step = steps.iter().find(|s| s.name == name).ok_or_else(|| {
        ApiError::NotFound(format!("step `{name}` not found in resolution {}", r.id))
    })?;
    let wanted = body.state.trim();
    let custom: Vec<&str> = step
        .definition
        .pointer("/step/custom_states")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !BUILTIN_STEP_STATES.contains(&wanted) && !custom.contains(&wanted) {
        let mut allowed: Vec<&str> = BUILTIN_STEP_STATES.to_vec();
        allowed.extend(custom.iter().copied());
        let message = format!(
            "invalid state provided: {wanted:?} is not allowed (one of {})",
            allowed.join(", ")
        );
        return Err(ApiError::Invalid {
            message: message.clone(),
            fields: vec![FieldError {
                field: "state".into(),
                message,
            }],
        });
    }
    let old = control::set_step_state(&state.store, r.id, &name, wanted, &caller.username)
        .await?
        .map_err(|e| match e {
            StepRefused::ResolutionNotFound => {
                ApiError::NotFound(format!("resolution {} not found", r.id))
            }
            StepRefused::StepNotFound => {
                ApiError::NotFound(format!("step `{name}` not found in resolution {}", r.id))
            }
            StepRefused::NotPaused(s) => ApiError::BadRequest(format!(
                "Cannot update a resolution which is not in state 'PAUSED' (it is {s})"
            )),
        })?;
    tracing::info!(resolution = %r.id, step = %name, from = %old, to = %wanted, by = %caller.username, "step state set");
    Ok(Json(
        json!({"name": name, "state": wanted, "previous_state": old}),
    ))
}

/// Body of `PUT /resolution/{id}` (µTask: replace the steps and/or the resolver inputs).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateResolutionBody {
    /// The whole new step set, by name (template step definitions). Steps kept by name keep
    /// their state, tries and output; new ones start TODO; missing ones are removed (a removed
    /// foreach step takes its children with it).
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, Object>>)]
    pub steps: Option<Map<String, Value>>,
    /// New resolver inputs (validated against the template: 422 lists every problem).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub resolver_inputs: Option<Map<String, Value>>,
}

/// Parses step definitions, naming the step of each problem.
fn parse_steps(
    given: &Map<String, Value>,
) -> Result<indexmap::IndexMap<String, crate::template::model::Step>, ApiError> {
    let mut out = indexmap::IndexMap::new();
    let mut fields = Vec::new();
    for (name, def) in given {
        let name_ok = !name.trim().is_empty() && name.chars().count() <= 1000;
        if !name_ok {
            fields.push(FieldError {
                field: format!("steps.{name}"),
                message: "a step name is 1 to 1000 characters".into(),
            });
            continue;
        }
        match serde_json::from_value::<crate::template::model::Step>(def.clone()) {
            Ok(mut step) => {
                step.normalize();
                out.insert(name.clone(), step);
            }
            Err(e) => fields.push(FieldError {
                field: format!("steps.{name}"),
                message: format!("not a valid step definition: {e}"),
            }),
        }
    }
    invalid(fields).map(|()| out)
}

fn invalid(fields: Vec<FieldError>) -> Result<(), ApiError> {
    if fields.is_empty() {
        return Ok(());
    }
    let message = fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ");
    Err(ApiError::Invalid { message, fields })
}

/// Validates a step set as the steps of the task's template (dependencies, cycles, action
/// types, conditions…): 422 with every error.
fn validate_steps(
    state: &AppState,
    template: &TaskTemplate,
    steps: indexmap::IndexMap<String, crate::template::model::Step>,
) -> Result<(), ApiError> {
    use crate::template::validate::{ValidationContext, validate_template};
    let mut t = template.clone();
    t.steps = steps;
    let fields: Vec<FieldError> = validate_template(&t, &ValidationContext::new(&state.functions))
        .into_iter()
        .filter(|p| p.is_error())
        .map(|p| FieldError {
            field: p.path,
            message: p.message,
        })
        .collect();
    invalid(fields)
}

fn validate_resolver_inputs(
    template: &TaskTemplate,
    given: &Map<String, Value>,
) -> Result<Value, ApiError> {
    input::validate(&template.resolver_inputs, given, "resolver_inputs")
        .map(Value::Object)
        .map_err(|errs| {
            let fields = errs
                .into_iter()
                .map(|e| FieldError {
                    field: e.field,
                    message: e.message,
                })
                .collect();
            invalid(fields).unwrap_err()
        })
}

/// The stored definition of a step, parsed.
fn step_def(s: &StepRecord) -> Result<crate::engine::model::StepDef, ApiError> {
    serde_json::from_value(s.definition.clone()).map_err(|e| {
        ApiError::internal(format!(
            "stored definition of step {} is unreadable: {e}",
            s.name
        ))
    })
}

fn edit_refused(id: ResolutionId, e: Refused) -> ApiError {
    refused(id, e, |s| {
        format!("Cannot update a resolution which is not in state 'PAUSED' (it is {s})")
    })
}

/// Replaces the steps and/or resolver inputs of a PAUSED resolution (admin).
///
/// The new steps are validated as the template's steps would be (dependencies, cycles, action
/// types…), the resolver inputs as at creation; an automatic comment records the edit.
#[utoipa::path(
    put,
    path = "/resolution/{id}",
    tag = "resolution",
    operation_id = "update_resolution",
    params(("id" = uuid::Uuid, Path, description = "Resolution id.")),
    request_body(description = "New steps and/or resolver inputs (JSON or YAML).", content((UpdateResolutionBody = "application/json"), (UpdateResolutionBody = "application/x-yaml"))),
    responses(
        (status = 200, description = "The updated resolution.", body = Resolution),
        (status = 400, description = "Malformed id or body, nothing to change, or the resolution is not PAUSED.", body = ErrorBody),
        (status = 403, description = "Not an admin.", body = ErrorBody),
        (status = 404, description = "No such resolution.", body = ErrorBody),
        (status = 422, description = "Invalid steps or resolver inputs (every problem listed).", body = ErrorBody),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<UpdateResolutionBody>,
) -> Result<Json<Value>, ApiError> {
    if !caller.is_admin {
        return Err(ApiError::Forbidden(
            "only admins may edit a resolution".into(),
        ));
    }
    let (r, _task, template) = load_resolution(&state, &id).await?;
    if body.steps.is_none() && body.resolver_inputs.is_none() {
        return Err(ApiError::BadRequest(
            "nothing to update: give `steps` and/or `resolver_inputs`".into(),
        ));
    }
    if r.state != ResolutionState::Paused {
        return Err(edit_refused(r.id, Refused::State(r.state.as_str().into())));
    }
    let resolver_input = body
        .resolver_inputs
        .as_ref()
        .map(|given| validate_resolver_inputs(&template, given))
        .transpose()?;
    let mut edit = control::EditResolution {
        resolver_input,
        ..Default::default()
    };
    let mut what = Vec::new();
    if let Some(given) = &body.steps {
        let new_steps = parse_steps(given)?;
        validate_steps(&state, &template, new_steps.clone())?;
        let current = store::resolution::steps(&state.store, r.id).await?;
        let mut defs = HashMap::new();
        for s in &current {
            defs.insert(s.name.clone(), step_def(s)?);
        }
        let removed: std::collections::HashSet<&str> = defs
            .iter()
            .filter(|(name, d)| d.parent.is_none() && !new_steps.contains_key(name.as_str()))
            .map(|(name, _)| name.as_str())
            .collect();
        for (name, d) in &defs {
            let orphan = d.parent.as_deref().is_some_and(|p| removed.contains(p));
            if removed.contains(name.as_str()) || orphan {
                edit.remove.push(name.clone());
            }
        }
        for (name, step) in new_steps {
            let mut def = crate::engine::model::StepDef::new(step);
            let target = match defs.get(&name) {
                Some(old) if old.parent.is_some() => {
                    return Err(ApiError::BadRequest(format!(
                        "`{name}` is a foreach child of `{}` in this resolution: edit it with PUT /resolution/{}/step/{name}",
                        old.parent.as_deref().unwrap_or_default(),
                        r.id
                    )));
                }
                Some(old) => {
                    def.children_steps = old.children_steps.clone();
                    &mut edit.replace
                }
                None => &mut edit.add,
            };
            let value = serde_json::to_value(&def).map_err(ApiError::internal)?;
            target.push((name, value));
        }
        edit.remove.sort();
        what.push(format!(
            "steps ({} replaced, {} added, {} removed)",
            edit.replace.len(),
            edit.add.len(),
            edit.remove.len()
        ));
    }
    if edit.resolver_input.is_some() {
        what.push("resolver inputs".into());
    }
    edit.comment = format!("manually updated resolution: {}", what.join(", "));
    control::edit_resolution(&state.store, r.id, &edit, &caller.username)
        .await?
        .map_err(|e| edit_refused(r.id, e))?;
    tracing::info!(resolution = %r.id, by = %caller.username, "resolution edited");
    let (r, task, template) = load_resolution(&state, &id).await?;
    let steps = store::resolution::steps(&state.store, r.id).await?;
    Ok(Json(resolution_json(
        &r,
        &task,
        &template,
        &steps,
        View::Admin,
    )))
}

/// Replaces the definition of one step of a PAUSED resolution (admin); its state, tries and
/// output are kept (set the state with `PUT /resolution/{id}/step/{name}/state`).
#[utoipa::path(
    put,
    path = "/resolution/{id}/step/{name}",
    tag = "resolution",
    operation_id = "update_resolution_step",
    params(
        ("id" = uuid::Uuid, Path, description = "Resolution id."),
        ("name" = String, Path, description = "Step name."),
    ),
    request_body(description = "The step definition (as in a template; JSON or YAML).", content((Object = "application/json"), (Object = "application/x-yaml"))),
    responses(
        (status = 200, description = "The updated step.", body = ResolutionStep),
        (status = 400, description = "Malformed id or body, or the resolution is not PAUSED.", body = ErrorBody),
        (status = 403, description = "Not an admin.", body = ErrorBody),
        (status = 404, description = "No such resolution or step.", body = ErrorBody),
        (status = 422, description = "Invalid step definition (every problem listed).", body = ErrorBody),
    ),
)]
pub async fn update_step(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    if !caller.is_admin {
        return Err(ApiError::Forbidden(
            "only admins may edit a resolution step".into(),
        ));
    }
    let (r, _task, template) = load_resolution(&state, &id).await?;
    if r.state != ResolutionState::Paused {
        return Err(edit_refused(r.id, Refused::State(r.state.as_str().into())));
    }
    let current = store::resolution::steps(&state.store, r.id).await?;
    let target = current.iter().find(|s| s.name == name).ok_or_else(|| {
        ApiError::NotFound(format!("step `{name}` not found in resolution {}", r.id))
    })?;
    let mut given = Map::new();
    given.insert(name.clone(), Value::Object(body));
    let mut parsed = parse_steps(&given)?;
    let step = parsed
        .shift_remove(&name)
        .ok_or_else(|| ApiError::internal("parsed step vanished"))?;
    // validate within the resolution's top-level steps (and this one, if it is a foreach child)
    let mut set = indexmap::IndexMap::new();
    for s in &current {
        let d = step_def(s)?;
        if s.name == name {
            set.insert(name.clone(), step.clone());
        } else if d.parent.is_none() {
            set.insert(s.name.clone(), d.step);
        }
    }
    validate_steps(&state, &template, set)?;
    let mut def = step_def(target)?;
    def.step = step;
    let value = serde_json::to_value(&def).map_err(ApiError::internal)?;
    let edit = control::EditResolution {
        replace: vec![(name.clone(), value)],
        comment: format!("manually updated resolution step {name}"),
        ..Default::default()
    };
    control::edit_resolution(&state.store, r.id, &edit, &caller.username)
        .await?
        .map_err(|e| edit_refused(r.id, e))?;
    tracing::info!(resolution = %r.id, step = %name, by = %caller.username, "resolution step edited");
    let steps = store::resolution::steps(&state.store, r.id).await?;
    let step = steps.iter().find(|s| s.name == name).ok_or_else(|| {
        ApiError::NotFound(format!("step `{name}` not found in resolution {}", r.id))
    })?;
    Ok(Json(step_json(step, View::Admin)))
}
