//! Schedules: `POST/GET /schedule`, `GET/PUT/DELETE /schedule/{name}`,
//! `POST /schedule/{name}/pause|resume`.
//!
//! A schedule creates tasks from a template with fixed inputs on a cron expression, a karajo
//! calendar (`daily@06:00`) or an interval (`every 15m`), as its creator — so only admins and
//! the template's owners (allowed resolvers) may create, change or delete one, and only they
//! (and its creator) see it. Inputs are validated like `POST /task` when the schedule is saved,
//! and sealed. Answers show the next five runs (suspend windows applied) and, for one schedule,
//! its latest handled occurrences. See docs/schedules.md.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::body::Body;
use super::error::ErrorBody;
use super::{ApiError, AppState, Caller, FieldError};
use crate::schedule::{When, Window, spec::next_runs};
use crate::store::{self, schedule::ScheduleDef, schedule::ScheduleRecord};
use crate::tasks::{self, Requester};
use crate::template::input;

/// Body of `POST /schedule` and `PUT /schedule/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "nightly-report", "template_name": "hello-world", "when": "daily@02:00", "input": {"name": "night"}, "suspend": ["2026-12-24T00:00:00Z/2026-12-27T00:00:00Z"], "missed": "run_once", "overlap": "skip"}))]
pub struct ScheduleBody {
    /// Unique name: lower-case letters, digits, `.`, `_`, `-` (at most 100). In a PUT it may be
    /// omitted; it cannot change.
    #[serde(default)]
    pub name: Option<String>,
    pub template_name: String,
    /// `*/15 * * * *` (cron, UTC), `minutely`, `hourly@0,30`, `daily@06:00,18:00`,
    /// `weekly@Monday,Friday@09:00`, `monthly@1,15@18:00` (karajo calendar, UTC) or `every 90s`.
    pub when: String,
    /// The template's inputs (validated like `POST /task`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Map<String, Value>>,
    /// Windows when runs are suppressed: `HH:MM-HH:MM` daily (UTC) or `<RFC 3339>/<RFC 3339>`.
    #[serde(default)]
    pub suspend: Vec<String>,
    /// After downtime: `skip` the missed runs (default) or `run_once` for all of them.
    #[serde(default)]
    pub missed: Option<String>,
    /// `allow` a run while the previous one is unfinished (default) or `skip` it.
    #[serde(default)]
    pub overlap: Option<String>,
    /// Created paused.
    #[serde(default)]
    pub paused: bool,
}

/// A schedule as answered (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct Schedule {
    pub id: uuid::Uuid,
    pub name: String,
    pub template_name: String,
    pub when: String,
    pub suspend: Vec<String>,
    pub missed: String,
    pub overlap: String,
    pub paused: bool,
    #[schema(value_type = Object)]
    pub input: Value,
    /// The next five runs (suspend windows applied); empty while paused.
    pub next_runs: Vec<chrono::DateTime<Utc>>,
    #[schema(required = true)]
    pub last_fire: Option<chrono::DateTime<Utc>>,
    #[schema(required = true)]
    pub last_task: Option<uuid::Uuid>,
    pub created_by: String,
    pub created: chrono::DateTime<Utc>,
    pub updated: chrono::DateTime<Utc>,
    /// `GET /schedule/{name}` only: the latest 20 handled occurrences (`fired`,
    /// `skipped_missed`, `skipped_overlap`, `skipped_suspended`, `failed`).
    #[schema(value_type = Option<Vec<Object>>)]
    pub recent_runs: Option<Vec<Value>>,
}

fn who(caller: &Caller) -> Requester {
    Requester {
        username: caller.username.clone(),
        groups: caller.groups.clone(),
        is_admin: caller.is_admin,
    }
}

fn invalid(fields: Vec<FieldError>) -> ApiError {
    let message = fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::Invalid { message, fields }
}

async fn may_manage(state: &AppState, caller: &Caller, template: &str) -> Result<bool, ApiError> {
    if caller.is_admin {
        return Ok(true);
    }
    let t = tasks::load_template(&state.store, template)
        .await
        .map_err(super::task::create_error)?;
    Ok(tasks::is_template_owner(&who(caller), &t.0))
}

fn answer(s: &ScheduleRecord, caller: &Caller, runs: Option<Vec<Value>>) -> Value {
    let windows: Vec<Window> = s
        .suspend
        .iter()
        .filter_map(|w| Window::parse(w).ok())
        .collect();
    let next = match (s.paused, When::parse(&s.when)) {
        (false, Ok(w)) => next_runs(&w, &windows, Utc::now(), s.anchor, 5),
        _ => Vec::new(),
    };
    let input = if caller.is_admin {
        s.input.clone()
    } else {
        // inputs may hold passwords: only the template's inputs know which; be safe
        mask_all_but_names(&s.input)
    };
    let mut v = json!({
        "id": s.id, "name": s.name, "template_name": s.template_name, "when": s.when,
        "suspend": s.suspend, "missed": s.missed, "overlap": s.overlap, "paused": s.paused,
        "input": input, "next_runs": next, "last_fire": s.last_fire, "last_task": s.last_task,
        "created_by": s.created_by, "created": s.created, "updated": s.updated,
    });
    if let Some(r) = runs {
        v["recent_runs"] = Value::Array(r);
    }
    v
}

fn mask_all_but_names(input: &Value) -> Value {
    match input {
        Value::Object(m) => Value::Object(
            m.keys()
                .map(|k| (k.clone(), Value::String("**__SECRET__**".into())))
                .collect(),
        ),
        _ => Value::Null,
    }
}

struct Checked {
    input: Value,
    missed: String,
    overlap: String,
    template_name: String,
}

async fn check(
    state: &AppState,
    caller: &Caller,
    body: &ScheduleBody,
) -> Result<Checked, ApiError> {
    let mut fields = Vec::new();
    let (template, _) = tasks::load_template(&state.store, &body.template_name)
        .await
        .map_err(super::task::create_error)?;
    if !caller.is_admin && !tasks::is_template_owner(&who(caller), &template) {
        return Err(ApiError::Forbidden(format!(
            "only admins and owners of template `{}` may schedule it",
            template.name
        )));
    }
    if template.blocked {
        fields.push(FieldError {
            field: "template_name".into(),
            message: format!("template `{}` is blocked", template.name),
        });
    }
    if let Err(e) = When::parse(&body.when) {
        fields.push(FieldError {
            field: "when".into(),
            message: e.0,
        });
    }
    for (i, w) in body.suspend.iter().enumerate() {
        if let Err(e) = Window::parse(w) {
            fields.push(FieldError {
                field: format!("suspend[{i}]"),
                message: e.0,
            });
        }
    }
    if body.suspend.len() > 50 {
        fields.push(FieldError {
            field: "suspend".into(),
            message: "at most 50 windows".into(),
        });
    }
    let missed = body.missed.clone().unwrap_or_else(|| "skip".into());
    if !["skip", "run_once"].contains(&missed.as_str()) {
        fields.push(FieldError {
            field: "missed".into(),
            message: format!("`{missed}` is not `skip` or `run_once`"),
        });
    }
    let overlap = body.overlap.clone().unwrap_or_else(|| "allow".into());
    if !["allow", "skip"].contains(&overlap.as_str()) {
        fields.push(FieldError {
            field: "overlap".into(),
            message: format!("`{overlap}` is not `allow` or `skip`"),
        });
    }
    let given = body.input.clone().unwrap_or_default();
    let input = match input::validate(&template.inputs, &given, "input") {
        Ok(v) => Value::Object(v),
        Err(errs) => {
            fields.extend(errs.into_iter().map(|e| FieldError {
                field: e.field,
                message: e.message,
            }));
            Value::Null
        }
    };
    if !fields.is_empty() {
        return Err(invalid(fields));
    }
    Ok(Checked {
        input,
        missed,
        overlap,
        template_name: template.name,
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 100
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

async fn load(state: &AppState, caller: &Caller, name: &str) -> Result<ScheduleRecord, ApiError> {
    if !valid_name(name) {
        return Err(ApiError::NotFound(format!(
            "schedule `{}` not found",
            name.escape_debug()
        )));
    }
    let s = store::schedule::get(&state.store, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("schedule `{name}` not found")))?;
    if s.created_by != caller.username && !may_manage(state, caller, &s.template_name).await? {
        return Err(ApiError::Forbidden(format!(
            "you may not see or change schedule `{name}`"
        )));
    }
    Ok(s)
}

/// Creates a schedule (admin or template owner).
#[utoipa::path(
    post,
    path = "/schedule",
    tag = "schedule",
    operation_id = "create_schedule",
    request_body(description = "The schedule (JSON or YAML).", content((ScheduleBody = "application/json"), (ScheduleBody = "application/x-yaml"))),
    responses(
        (status = 201, description = "Created.", body = Schedule),
        (status = 400, description = "Malformed body.", body = ErrorBody),
        (status = 403, description = "Not an admin or an owner of the template.", body = ErrorBody),
        (status = 404, description = "No such template.", body = ErrorBody),
        (status = 409, description = "The name is taken.", body = ErrorBody),
        (status = 422, description = "Invalid fields (every problem listed).", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<ScheduleBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = body.name.clone().unwrap_or_default();
    if !valid_name(&name) {
        return Err(invalid(vec![FieldError {
            field: "name".into(),
            message: "1 to 100 of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit".into(),
        }]));
    }
    let c = check(&state, &caller, &body).await?;
    let now = Utc::now();
    let next_fire =
        crate::schedule::next_fire(&body.when, now, now).map_err(|e| ApiError::BadRequest(e.0))?;
    let rec = store::schedule::create(
        &state.store,
        &ScheduleDef {
            name: &name,
            template_name: &c.template_name,
            when: body.when.trim(),
            suspend: &body.suspend,
            missed: &c.missed,
            overlap: &c.overlap,
            paused: body.paused,
            input: &c.input,
            next_fire,
            anchor: now,
        },
        &caller.username,
    )
    .await?;
    tracing::info!(schedule = %name, by = %caller.username, when = %body.when, "schedule created");
    Ok((StatusCode::CREATED, Json(answer(&rec, &caller, None))))
}

/// Lists the schedules the caller may see (admins: all; others: theirs and their templates').
#[utoipa::path(
    get,
    path = "/schedule",
    tag = "schedule",
    operation_id = "list_schedules",
    responses((status = 200, description = "Schedules by name.", body = Vec<Schedule>)),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for s in store::schedule::list(&state.store).await? {
        if s.created_by == caller.username
            || may_manage(&state, &caller, &s.template_name)
                .await
                .unwrap_or(false)
        {
            out.push(answer(&s, &caller, None));
        }
    }
    Ok(Json(Value::Array(out)))
}

/// One schedule with its next runs and latest handled occurrences.
#[utoipa::path(
    get,
    path = "/schedule/{name}",
    tag = "schedule",
    operation_id = "get_schedule",
    params(("name" = String, Path, description = "Schedule name.")),
    responses(
        (status = 200, description = "The schedule.", body = Schedule),
        (status = 403, description = "Not the caller's schedule.", body = ErrorBody),
        (status = 404, description = "No such schedule.", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = load(&state, &caller, &name).await?;
    let runs = store::schedule::runs(&state.store, s.id, 20).await?;
    let runs = runs
        .into_iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect();
    Ok(Json(answer(&s, &caller, Some(runs))))
}

/// Replaces a schedule (admin or template owner); the next run is recomputed from now.
#[utoipa::path(
    put,
    path = "/schedule/{name}",
    tag = "schedule",
    operation_id = "update_schedule",
    params(("name" = String, Path, description = "Schedule name.")),
    request_body(description = "The whole schedule (JSON or YAML).", content((ScheduleBody = "application/json"), (ScheduleBody = "application/x-yaml"))),
    responses(
        (status = 200, description = "Updated.", body = Schedule),
        (status = 400, description = "Malformed body, or a different name.", body = ErrorBody),
        (status = 403, description = "Not allowed.", body = ErrorBody),
        (status = 404, description = "No such schedule or template.", body = ErrorBody),
        (status = 422, description = "Invalid fields (every problem listed).", body = ErrorBody),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<ScheduleBody>,
) -> Result<Json<Value>, ApiError> {
    let s = load(&state, &caller, &name).await?;
    if body.name.as_deref().is_some_and(|n| n != s.name) {
        return Err(ApiError::BadRequest(
            "a schedule cannot be renamed: create a new one".into(),
        ));
    }
    if !may_manage(&state, &caller, &s.template_name).await? {
        return Err(ApiError::Forbidden(format!(
            "only admins and owners of template `{}` may change this schedule",
            s.template_name
        )));
    }
    let c = check(&state, &caller, &body).await?;
    let now = Utc::now();
    let next_fire =
        crate::schedule::next_fire(&body.when, now, now).map_err(|e| ApiError::BadRequest(e.0))?;
    let def = ScheduleDef {
        name: &s.name,
        template_name: &c.template_name,
        when: body.when.trim(),
        suspend: &body.suspend,
        missed: &c.missed,
        overlap: &c.overlap,
        paused: body.paused,
        input: &c.input,
        next_fire,
        anchor: now,
    };
    if !store::schedule::update(&state.store, s.id, &def).await? {
        return Err(ApiError::NotFound(format!("schedule `{name}` not found")));
    }
    let s = load(&state, &caller, &name).await?;
    Ok(Json(answer(&s, &caller, None)))
}

/// Deletes a schedule (admin or template owner); its tasks stay.
#[utoipa::path(
    delete,
    path = "/schedule/{name}",
    tag = "schedule",
    operation_id = "delete_schedule",
    params(("name" = String, Path, description = "Schedule name.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "Not allowed.", body = ErrorBody),
        (status = 404, description = "No such schedule.", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let s = load(&state, &caller, &name).await?;
    if !may_manage(&state, &caller, &s.template_name).await? {
        return Err(ApiError::Forbidden(format!(
            "only admins and owners of template `{}` may delete this schedule",
            s.template_name
        )));
    }
    store::schedule::delete(&state.store, s.id).await?;
    tracing::info!(schedule = %name, by = %caller.username, "schedule deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn set_paused(
    state: &AppState,
    caller: &Caller,
    name: &str,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    let s = load(state, caller, name).await?;
    if !may_manage(state, caller, &s.template_name).await? {
        return Err(ApiError::Forbidden(format!(
            "only admins and owners of template `{}` may pause or resume this schedule",
            s.template_name
        )));
    }
    // resuming starts from now: runs missed while paused are not made up
    let next = if paused {
        None
    } else {
        crate::schedule::next_fire(&s.when, Utc::now(), s.anchor)
            .map_err(|e| ApiError::BadRequest(e.0))?
    };
    store::schedule::set_paused(&state.store, s.id, paused, next).await?;
    tracing::info!(schedule = %name, by = %caller.username, paused, "schedule paused/resumed");
    let s = load(state, caller, name).await?;
    Ok(Json(answer(&s, caller, None)))
}

/// Pauses a schedule: no run until it is resumed.
#[utoipa::path(
    post,
    path = "/schedule/{name}/pause",
    tag = "schedule",
    operation_id = "pause_schedule",
    params(("name" = String, Path, description = "Schedule name.")),
    responses(
        (status = 200, description = "Paused.", body = Schedule),
        (status = 403, description = "Not allowed.", body = ErrorBody),
        (status = 404, description = "No such schedule.", body = ErrorBody),
    ),
)]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &caller, &name, true).await
}

/// Resumes a schedule from now (runs missed while paused are not made up).
#[utoipa::path(
    post,
    path = "/schedule/{name}/resume",
    tag = "schedule",
    operation_id = "resume_schedule",
    params(("name" = String, Path, description = "Schedule name.")),
    responses(
        (status = 200, description = "Resumed.", body = Schedule),
        (status = 403, description = "Not allowed.", body = ErrorBody),
        (status = 404, description = "No such schedule.", body = ErrorBody),
    ),
)]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &caller, &name, false).await
}
