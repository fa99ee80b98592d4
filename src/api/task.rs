//! `POST /task` and `GET /task/{id}`.
//!
//! Creating a task validates the inputs against the template (422 with every field error at
//! once), renders the title, and stores the task — plus its resolution when the task auto-runs — in one
//! transaction. Reading a task is allowed to admins, the requester, watchers and resolvers;
//! password inputs are masked for callers who are not admins.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::body::Body;
use super::error::ErrorBody;
use super::openapi::{ResolutionStateSchema, TaskStateSchema};
use super::task_wait::{self, WaitQuery};
use super::{ApiError, AppState, Caller};
use crate::domain::{ResolutionId, TaskId};
use crate::store;
use crate::tasks::{self, CreateError, CreateRequest, Requester};
use crate::template::input;
use crate::template::model::TaskTemplate;

/// Body of `POST /task` (µTask's fields).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"template_name": "hello-world", "input": {"name": "world"}}))]
pub struct CreateTask {
    /// The template to create the task from.
    pub template_name: String,
    /// The template's inputs by name (validated: 422 lists every problem).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Map<String, Value>>,
    /// A first comment on the task.
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub watcher_usernames: Option<Vec<String>>,
    #[serde(default)]
    pub watcher_groups: Option<Vec<String>>,
    /// Users who may resolve this task (besides the template's allowed resolvers).
    #[serde(default)]
    pub resolver_usernames: Option<Vec<String>>,
    #[serde(default)]
    pub resolver_groups: Option<Vec<String>>,
    /// Go duration before the task runs (`10m`).
    #[serde(default)]
    pub delay: Option<String>,
    /// mutask: when the task runs (RFC 3339; not with `delay`; a past time runs it now).
    #[serde(default)]
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    /// mutask: an idempotency key (also accepted as the `Idempotency-Key` header): a repeated
    /// create with the same key by the same user, within `idempotency_ttl`, answers the first
    /// task (200) instead of creating another.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// How long the key is remembered (Go duration, default `24h`, at most `720h`).
    #[serde(default)]
    pub idempotency_ttl: Option<String>,
    /// mutask: a URL that receives every state change of this task (Harbor's status hook).
    #[serde(default)]
    pub status_hook: Option<StatusHook>,
}

/// A task's status hook: every state change of the task is POSTed there as JSON (the
/// notification webhook's payload), signed with `secret` when given
/// (`X-Mutask-Signature: sha256=<hex>`), retried with backoff.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusHook {
    /// `http://` or `https://`; refused when the network policy of the actions refuses it.
    #[schema(example = "https://ci.example.com/hooks/mutask")]
    pub url: String,
    /// HMAC-SHA256 key signing each body.
    #[serde(default)]
    pub secret: Option<String>,
}

/// Checks a status hook: an http(s) URL of at most 2000 characters whose host the network
/// policy allows (names are checked again when the hook is called).
fn check_status_hook(
    hook: &StatusHook,
    config: &crate::config::Config,
    fields: &mut Vec<crate::domain::FieldError>,
) -> Option<Value> {
    let mut bad = |m: String| {
        fields.push(crate::domain::FieldError {
            field: "status_hook.url".into(),
            message: m,
        })
    };
    if hook.url.chars().count() > 2000 {
        bad("at most 2000 characters".into());
        return None;
    }
    let url = match url::Url::parse(hook.url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        Ok(_) => {
            bad("must be an http:// or https:// URL".into());
            return None;
        }
        Err(e) => {
            bad(format!("not a URL ({e})"));
            return None;
        }
    };
    let policy = crate::action::http::NetworkPolicy::with_allow_list(&config.network_allow)
        .ok()?
        .deny_private(config.network_deny_private);
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    if let Ok(ip) = host.parse::<std::net::IpAddr>()
        && let Err(d) = policy.check(host, ip)
    {
        bad(d.to_string());
        return None;
    }
    if hook
        .secret
        .as_deref()
        .is_some_and(|s| s.is_empty() || s.len() > 1000)
    {
        fields.push(crate::domain::FieldError {
            field: "status_hook.secret".into(),
            message: "1 to 1000 characters".into(),
        });
        return None;
    }
    Some(json!({"url": url.as_str(), "secret": hook.secret}))
}

/// Default lifetime of an idempotency key.
const IDEMPOTENCY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A task as answered by `POST /task`, `GET /task/{id}` and `PUT /task/{id}` (OpenAPI schema of
/// [`task_json`]).
#[derive(utoipa::ToSchema)]
pub struct Task {
    #[schema(value_type = uuid::Uuid)]
    pub id: TaskId,
    pub title: String,
    pub template_name: String,
    pub template_version: i32,
    #[schema(value_type = TaskStateSchema)]
    pub state: String,
    pub requester_username: String,
    pub requester_groups: Vec<String>,
    pub watcher_usernames: Vec<String>,
    pub watcher_groups: Vec<String>,
    pub resolver_usernames: Vec<String>,
    pub resolver_groups: Vec<String>,
    /// Who runs (ran) the resolution.
    #[schema(required = true)]
    pub resolver_username: Option<String>,
    /// The inputs; `password` inputs are masked for callers who are not admins.
    #[schema(value_type = Object)]
    pub input: Value,
    /// The task's result (the template's `result_format`), once DONE.
    #[schema(required = true)]
    pub result: Option<Value>,
    pub tags: BTreeMap<String, String>,
    pub created: chrono::DateTime<chrono::Utc>,
    pub last_activity: chrono::DateTime<chrono::Utc>,
    pub steps_done: i32,
    pub steps_total: i32,
    /// Id of the task's resolution.
    #[schema(required = true)]
    pub resolution: Option<uuid::Uuid>,
    #[schema(required = true, value_type = Option<ResolutionStateSchema>)]
    pub resolution_state: Option<String>,
    /// Id of the batch the task belongs to.
    #[schema(required = true)]
    pub batch: Option<uuid::Uuid>,
    /// The task that created this one (`subtask` action).
    #[schema(required = true)]
    pub parent_task_id: Option<uuid::Uuid>,
}

/// Creates a task from a template.
///
/// Validates the inputs (422 with every field error at once), renders the title, and stores the
/// task — plus its resolution when the template auto-runs — in one transaction. An auto-run
/// task is answered `RUNNING` when this instance has a free execution slot (it is created
/// claimed by this instance, which starts it at once), otherwise `TODO` with its resolution
/// `TO_AUTORUN` (the first instance with room claims it), or `DELAYED` with a delay.
#[utoipa::path(
    post,
    path = "/task",
    tag = "task",
    operation_id = "create_task",
    request_body(description = "The task to create (JSON or YAML).", content((CreateTask = "application/json"), (CreateTask = "application/x-yaml"))),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Same as the body's `idempotency_key`."),
        WaitQuery,
    ),
    responses(
        (status = 201, description = "The task (with `wait`: once it has settled, or as it is when the wait ends).", body = Task),
        (status = 200, description = "The task created earlier with the same idempotency key (header `Idempotent-Replayed: true`).", body = Task),
        (status = 400, description = "Malformed body or `wait`, blocked template, or the title cannot be rendered.", body = ErrorBody),
        (status = 403, description = "The caller may not create tasks from this template.", body = ErrorBody),
        (status = 404, description = "No such template.", body = ErrorBody),
        (status = 422, description = "Invalid inputs (`fields` names each).", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Query(wait): Query<WaitQuery>,
    Body(req): Body<CreateTask>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let wait = wait.duration()?;
    let mut fields = Vec::new();
    let header_key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        Some(Ok(k)) => Some(k.trim().to_string()),
        Some(Err(_)) => {
            return Err(ApiError::BadRequest(
                "the Idempotency-Key header is not text".into(),
            ));
        }
        None => None,
    };
    let key = req.idempotency_key.clone().or(header_key);
    if let Some(k) = &key
        && (k.trim().is_empty() || k.chars().count() > 200 || k.chars().any(char::is_control))
    {
        fields.push(crate::domain::FieldError {
            field: "idempotency_key".into(),
            message: "1 to 200 printable characters".into(),
        });
    }
    let ttl = match req.idempotency_ttl.as_deref() {
        None => IDEMPOTENCY_TTL,
        Some(t) => match crate::domain::duration::parse(t) {
            Ok(d)
                if d >= std::time::Duration::from_secs(1)
                    && d <= std::time::Duration::from_secs(720 * 3600) =>
            {
                d
            }
            Ok(_) => {
                fields.push(crate::domain::FieldError {
                    field: "idempotency_ttl".into(),
                    message: "between 1s and 720h".into(),
                });
                IDEMPOTENCY_TTL
            }
            Err(e) => {
                fields.push(crate::domain::FieldError {
                    field: "idempotency_ttl".into(),
                    message: e.to_string(),
                });
                IDEMPOTENCY_TTL
            }
        },
    };
    let delay = match (req.run_at, req.delay) {
        (Some(_), Some(_)) => {
            fields.push(crate::domain::FieldError {
                field: "run_at".into(),
                message: "give `run_at` or `delay`, not both".into(),
            });
            None
        }
        (Some(at), None) => {
            let secs = (at - chrono::Utc::now()).num_seconds();
            (secs > 0).then(|| format!("{secs}s"))
        }
        (None, d) => d,
    };
    let status_hook = req
        .status_hook
        .as_ref()
        .and_then(|h| check_status_hook(h, &state.config, &mut fields));
    if !fields.is_empty() {
        return Err(create_error(CreateError::Invalid(fields)));
    }
    let who = Requester {
        username: caller.username.clone(),
        groups: caller.groups.clone(),
        is_admin: caller.is_admin,
    };
    let ids = (TaskId::new(), ResolutionId::new());
    let slot = claim_here(&state, ids.1);
    let request = CreateRequest {
        template_name: req.template_name,
        input: req.input.unwrap_or_default(),
        comment: req.comment,
        watcher_usernames: req.watcher_usernames.unwrap_or_default(),
        watcher_groups: req.watcher_groups.unwrap_or_default(),
        resolver_usernames: req.resolver_usernames,
        resolver_groups: req.resolver_groups,
        delay,
        tags: req.tags.unwrap_or_default(),
        parent_task_id: None,
        batch_id: None,
        status_hook,
        ids: Some(ids),
        claim: slot.as_ref().map(|s| s.claim()),
    };
    let Some(key) = key else {
        // watched before it is written: its settlement cannot come unheard
        let watch = wait.map(|_| state.task_waits.watch(ids.0));
        let created = tasks::create_claimed(&state.store, &state.renderer, &who, request).await;
        let created = started(&state, ids.1, slot, created)?;
        let (rec, template) = (created.task, created.template);
        let rec = match wait {
            Some(w) => task_wait::until_settled(&state, rec, w, watch).await?,
            None => rec,
        };
        return Ok((
            StatusCode::CREATED,
            Json(task_json(&rec, &template, &caller)),
        )
            .into_response());
    };
    let outcome =
        tasks::create_idempotent(&state.store, &state.renderer, &who, request, &key, ttl).await;
    let (outcome, created) = match outcome {
        Ok((c, created)) => (Ok(c), created),
        Err(e) => (Err(e), false),
    };
    let task = started(&state, ids.1, slot.filter(|_| created), outcome)?;
    let (rec, template) = (task.task, task.template);
    let rec = match wait {
        Some(w) => task_wait::until_settled(&state, rec, w, None).await?,
        None => rec,
    };
    let body = Json(task_json(&rec, &template, &caller));
    Ok(if created {
        (StatusCode::CREATED, body).into_response()
    } else {
        (StatusCode::OK, [("idempotent-replayed", "true")], body).into_response()
    })
}

/// Before a create: with a free slot in this instance's claim loop, a task that runs at once is
/// created claimed by this instance and its cycle started here (no claim statement, no NOTIFY):
/// the slot, to pass to the create and then to [`started`]. Without one, `resolution` is
/// announced: the creation's NOTIFY wakes every instance, [`started`] wakes this one's loop at
/// once, and the loop skips the NOTIFY when it comes back.
pub(super) fn claim_here(
    state: &AppState,
    resolution: ResolutionId,
) -> Option<crate::engine::runner::LocalSlot> {
    let hint = state.claim_hint.as_ref()?;
    let slot = hint.take_slot();
    if slot.is_none() {
        hint.expect(resolution);
    }
    slot
}

/// After a create: a task created claimed in `slot` starts its cycle there (the slot is freed
/// otherwise). Without a slot, `resolution` was announced to this instance's claim loop (if it
/// runs one): a task written here that can run at once wakes the loop at once, ahead of the
/// NOTIFY that wakes every instance; otherwise no NOTIFY comes for it, and the announcement is
/// withdrawn (a later NOTIFY for that resolution, say a wake-up from a child, must not be
/// skipped).
pub(super) fn started(
    state: &AppState,
    resolution: ResolutionId,
    slot: Option<crate::engine::runner::LocalSlot>,
    created: Result<tasks::Created, CreateError>,
) -> Result<tasks::Created, ApiError> {
    let mut created = created.map_err(create_error);
    let Some(hint) = &state.claim_hint else {
        return created;
    };
    match (slot, created.as_mut()) {
        (Some(slot), Ok(c)) => {
            if let Some((claim, loaded)) = c.claimed.take() {
                slot.start(claim, loaded);
            }
        }
        (Some(_), Err(_)) => {}
        (None, Ok(c))
            if c.task.resolution_id == Some(resolution)
                && c.task.resolution_state == Some(crate::domain::ResolutionState::ToAutorun) =>
        {
            hint.wake()
        }
        (None, _) => hint.withdraw(resolution),
    }
    created
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

/// Reads a task (admins, requester, watchers and resolvers; passwords masked for non-admins).
#[utoipa::path(
    get,
    path = "/task/{id}",
    tag = "task",
    operation_id = "get_task",
    params(("id" = uuid::Uuid, Path, description = "Task id."), WaitQuery),
    responses(
        (status = 200, description = "The task (with `wait`: once it has settled, or as it is when the wait ends).", body = Task),
        (status = 400, description = "The id is not a UUID, or `wait` is malformed.", body = ErrorBody),
        (status = 403, description = "The caller may not read this task.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(wait): Query<WaitQuery>,
) -> Result<Json<Value>, ApiError> {
    let id: TaskId = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not a valid task id (a UUID)")))?;
    let wait = wait.duration()?;
    let rec = store::task::get(&state.store, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {id} not found")))?;
    let t = store::template::version_model(&state.store, &rec.template_name, rec.template_version)
        .await?
        .ok_or_else(|| ApiError::internal(format!("template version of task {id} missing")))?;
    if !can_read(&caller, &rec, &t) {
        return Err(ApiError::Forbidden("you may not read this task".into()));
    }
    let rec = match wait {
        Some(w) => {
            let rec = task_wait::until_settled(&state, rec, w, None).await?;
            // its watchers may have changed meanwhile
            if !can_read(&caller, &rec, &t) {
                return Err(ApiError::Forbidden("you may not read this task".into()));
            }
            rec
        }
        None => rec,
    };
    Ok(Json(task_json(&rec, &t, &caller)))
}

/// Body of `PUT /task/{id}`: the fields to replace (absent ones are kept).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateTask {
    /// Every input (re-validated; a masked password sent back keeps the stored one).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Map<String, Value>>,
    #[serde(default)]
    pub watcher_usernames: Option<Vec<String>>,
    #[serde(default)]
    pub watcher_groups: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// Keeps stored secrets that a client sends back masked (µTask's de-obfuscation).
fn unmask_input(
    declared: &[crate::template::model::Input],
    old: &Value,
    mut new: Map<String, Value>,
) -> Map<String, Value> {
    for name in input::password_names(declared) {
        let masked = match new.get(name) {
            Some(Value::String(s)) => s == input::SECRET_MASK,
            Some(Value::Array(items)) => {
                !items.is_empty() && items.iter().all(|i| i.as_str() == Some(input::SECRET_MASK))
            }
            _ => false,
        };
        if masked && let Some(previous) = old.get(name) {
            new.insert(name.to_string(), previous.clone());
        }
    }
    new
}

/// Edits a task's inputs, watchers and tags.
///
/// Allowed while no resolution exists or it is PAUSED; to admins and template owners always, to
/// the requester only before a resolution exists. Inputs are re-validated (422) and the title
/// re-rendered; the parent tag is read-only.
#[utoipa::path(
    put,
    path = "/task/{id}",
    tag = "task",
    operation_id = "update_task",
    params(("id" = uuid::Uuid, Path, description = "Task id.")),
    request_body(description = "The fields to replace (JSON or YAML).", content((UpdateTask = "application/json"), (UpdateTask = "application/x-yaml"))),
    responses(
        (status = 200, description = "The updated task.", body = Task),
        (status = 400, description = "Malformed id or body, the resolution is not PAUSED, or the title cannot be rendered.", body = ErrorBody),
        (status = 403, description = "The caller may not update this task.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 422, description = "Invalid inputs, watchers or tags (`fields` names each).", body = ErrorBody),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<UpdateTask>,
) -> Result<Json<Value>, ApiError> {
    use super::FieldError;
    use crate::store::control::{TaskUpdate, UpdateRefused};

    let id: TaskId = super::resolution::parse_id(&id, "task")?;
    let (rec, t) = super::resolution::load_task(&state, id).await?;
    let owner = caller.is_admin || super::resolution::is_template_owner(&caller, &t);
    let requester = rec.requester_username == caller.username;
    let may_edit = owner || (requester && rec.resolution_id.is_none());
    if !may_edit {
        return Err(ApiError::Forbidden("Can't update task".into()));
    }
    if let Some(s) = rec.resolution_state
        && s != crate::domain::ResolutionState::Paused
    {
        return Err(ApiError::BadRequest(format!(
            "Cannot update a task which resolution is not in state 'PAUSED' (it is {s})"
        )));
    }
    let mut fields = Vec::new();
    let new_input = match req.input {
        Some(given) => {
            let given = unmask_input(&t.inputs, &rec.input, given);
            match input::validate(&t.inputs, &given, "input") {
                Ok(v) => Some(v),
                Err(errs) => {
                    fields.extend(errs.into_iter().map(|e| FieldError {
                        field: e.field,
                        message: e.message,
                    }));
                    None
                }
            }
        }
        None => None,
    };
    for (field, names) in [
        ("watcher_usernames", &req.watcher_usernames),
        ("watcher_groups", &req.watcher_groups),
    ] {
        for (i, n) in names.iter().flatten().enumerate() {
            if n.trim().is_empty() || n.len() > 256 || n.contains('\0') {
                fields.push(crate::domain::FieldError {
                    field: format!("{field}[{i}]"),
                    message: "must be a non-empty name of at most 256 characters".into(),
                });
            }
        }
    }
    let parent_tag = rec.tags.get(tasks::PARENT_TAG).cloned();
    let tags = match req.tags {
        None => None,
        Some(given) => {
            let mut m = Map::new();
            for (k, v) in given {
                if k == tasks::PARENT_TAG {
                    if parent_tag.as_ref().and_then(Value::as_str) != Some(v.as_str()) {
                        fields.push(FieldError {
                            field: format!("tags.{k}"),
                            message: "this tag is read-only (set by mutask)".into(),
                        });
                    }
                } else if k.is_empty()
                    || k.len() > 256
                    || v.len() > 4096
                    || k.contains('\0')
                    || v.contains('\0')
                {
                    fields.push(FieldError {
                        field: format!("tags.{k}"),
                        message: "tag keys must be 1-256 characters and values at most 4096".into(),
                    });
                } else {
                    m.insert(k, Value::String(v));
                }
            }
            if let Some(p) = &parent_tag {
                m.insert(tasks::PARENT_TAG.into(), p.clone());
            }
            Some(Value::Object(m))
        }
    };
    if !fields.is_empty() {
        let message = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ApiError::Invalid { message, fields });
    }
    let title =
        match &new_input {
            Some(inputs) => {
                let masked = input::mask_passwords(&t.inputs, &Value::Object(inputs.clone()));
                let ctx = json!({
                    "input": masked,
                    "task": {
                        "task_id": rec.id.to_string(),
                        "requester_username": rec.requester_username,
                        "requester_groups": rec.requester_groups.join(","),
                        "created": rec.created.to_rfc3339(),
                    },
                });
                Some(tasks::render_title(&state.renderer, &t, &ctx).map_err(|e| {
                    ApiError::BadRequest(format!("cannot render the task title: {e}"))
                })?)
            }
            None => None,
        };
    let update = TaskUpdate {
        id,
        input: new_input.map(Value::Object),
        title,
        watcher_usernames: req.watcher_usernames,
        watcher_groups: req.watcher_groups,
        tags,
        only_without_resolution: !owner,
        username: caller.username.clone(),
    };
    match store::control::update_task(&state.store, &update).await? {
        Ok(()) => {}
        Err(UpdateRefused::NotFound) => {
            return Err(ApiError::NotFound(format!("task {id} not found")));
        }
        Err(UpdateRefused::Resolution(s)) if !owner => {
            return Err(ApiError::Forbidden(format!(
                "Can't update task: it has a resolution ({s})"
            )));
        }
        Err(UpdateRefused::Resolution(s)) => {
            return Err(ApiError::BadRequest(format!(
                "Cannot update a task which resolution is not in state 'PAUSED' (it is {s})"
            )));
        }
    }
    tracing::info!(task = %id, by = %caller.username, "task updated");
    let rec = store::task::get(&state.store, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {id} not found")))?;
    Ok(Json(task_json(&rec, &t, &caller)))
}

/// Marks a TODO task WONTFIX (admin, requester, resolution manager).
#[utoipa::path(
    post,
    path = "/task/{id}/wontfix",
    tag = "task",
    operation_id = "wontfix_task",
    params(("id" = uuid::Uuid, Path, description = "Task id.")),
    responses(
        (status = 204, description = "The task is WONTFIX."),
        (status = 400, description = "Malformed id, or the task (or its resolution) is in a state that forbids it.", body = ErrorBody),
        (status = 403, description = "The caller may not do this.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
    ),
)]
pub async fn wontfix(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    use crate::store::control::WontfixRefused;

    let id: TaskId = super::resolution::parse_id(&id, "task")?;
    let (rec, t) = super::resolution::load_task(&state, id).await?;
    if !caller.is_admin
        && rec.requester_username != caller.username
        && !super::resolution::may_resolve(&caller, &rec, &t)
    {
        return Err(ApiError::Forbidden(
            "Can't set task's state to WONTFIX".into(),
        ));
    }
    match store::control::wontfix(&state.store, id, &caller.username).await? {
        Ok(()) => {}
        Err(WontfixRefused::NotFound) => {
            return Err(ApiError::NotFound(format!("task {id} not found")));
        }
        Err(WontfixRefused::TaskState(s)) => {
            return Err(ApiError::BadRequest(format!(
                "Can't set task's state to WONTFIX: task is in state {s}"
            )));
        }
        Err(WontfixRefused::Resolution(s)) => {
            return Err(ApiError::BadRequest(format!(
                "Can't set task's state to WONTFIX: its resolution is {s} (cancel it instead)"
            )));
        }
    }
    tracing::info!(task = %id, by = %caller.username, "task marked WONTFIX");
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a task (admins only; not while it is RUNNING or BLOCKED).
#[utoipa::path(
    delete,
    path = "/task/{id}",
    tag = "task",
    operation_id = "delete_task",
    params(("id" = uuid::Uuid, Path, description = "Task id.")),
    responses(
        (status = 204, description = "Deleted with its resolution and comments."),
        (status = 400, description = "Malformed id, or the task is RUNNING or BLOCKED.", body = ErrorBody),
        (status = 403, description = "Only admins may delete a task.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    use crate::store::control::Refused;

    let id: TaskId = super::resolution::parse_id(&id, "task")?;
    if !caller.is_admin {
        return Err(ApiError::Forbidden("only admins may delete a task".into()));
    }
    match store::control::delete_task(&state.store, id).await? {
        Ok(()) => {}
        Err(Refused::NotFound) => {
            return Err(ApiError::NotFound(format!("task {id} not found")));
        }
        Err(Refused::State(s)) => {
            return Err(ApiError::BadRequest(format!(
                "Task can't be deleted while in state \"{s}\""
            )));
        }
    }
    tracing::info!(task = %id, by = %caller.username, "task deleted");
    Ok(StatusCode::NO_CONTENT)
}
