//! Task creation, shared by `POST /task`, the `subtask` action and batches: template lookup,
//! input validation (every field error at once), title rendering (password inputs masked), the
//! auto-run decision (µTask: auto-runnable template and a requester who is admin, template owner,
//! task resolver, or `allow_all_resolver_usernames`), and one transaction that stores the task,
//! its resolution when it auto-runs, and its first comment.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::domain::{
    BatchId, CommentId, FieldError, ResolutionId, ResolutionState, TaskId, TaskState, duration,
};
use crate::store::{
    self, Store, StoreError, comment::NewComment, resolution::NewResolution, task::NewTask,
};
use crate::template::dialect::{self, Dialect};
use crate::template::input;
use crate::template::model::{Dialect as ModelDialect, TaskTemplate};
use crate::template::render::Renderer;

/// Tag key reserved for the parent task of a subtask (µTask's name).
pub const PARENT_TAG: &str = "_utask_parent_task_id";
/// Longest accepted comment.
pub const MAX_COMMENT_CHARS: usize = 10_000;

/// Who asks for the task.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    pub username: String,
    pub groups: Vec<String>,
    pub is_admin: bool,
}

impl Requester {
    pub fn is_in(&self, users: &[String], groups: &[String]) -> bool {
        users.contains(&self.username) || self.groups.iter().any(|g| groups.contains(g))
    }
}

/// What to create.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub template_name: String,
    pub input: Map<String, Value>,
    pub comment: Option<String>,
    pub watcher_usernames: Vec<String>,
    pub watcher_groups: Vec<String>,
    pub resolver_usernames: Option<Vec<String>>,
    pub resolver_groups: Option<Vec<String>>,
    /// Go duration before the task runs.
    pub delay: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub parent_task_id: Option<TaskId>,
    pub batch_id: Option<BatchId>,
    /// `{url, secret?}` receiving every state change of the task (checked by the caller).
    pub status_hook: Option<Value>,
    /// The ids to give the task and its resolution (new ones when `None`): a caller that must
    /// know them before the task is written (to watch it, or to expect its NOTIFY).
    pub ids: Option<(TaskId, ResolutionId)>,
    /// The creating instance has taken a free execution slot for the task: a task that runs at
    /// once is created claimed by it (task and resolution `RUNNING`), and the caller starts its
    /// cycle ([`Created::claimed`]); no NOTIFY wakes the claim loops for it.
    pub claim: Option<store::resolution::NewClaim>,
}

/// A task just created.
#[derive(Debug)]
pub struct Created {
    pub task: store::task::TaskRecord,
    pub template: TaskTemplate,
    /// The task was created claimed ([`CreateRequest::claim`]): the claim and what its cycle
    /// reads first, for the caller to start it.
    pub claimed: Option<(store::resolution::Claim, store::resolution::Loaded)>,
}

/// Why a task was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("template `{0}` not found")]
    TemplateNotFound(String),
    #[error("Template not available (blocked)")]
    Blocked,
    #[error("{0}")]
    Forbidden(String),
    #[error("{}", .0.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("cannot render the task title: {0}")]
    Title(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Loads a template's model (by normalized name) and its version.
pub async fn load_template(store: &Store, name: &str) -> Result<(TaskTemplate, i32), CreateError> {
    let normalized = name.trim().to_lowercase();
    let current = store::template::current(store, &normalized, true)
        .await?
        .ok_or(CreateError::TemplateNotFound(normalized))?;
    Ok((TaskTemplate::clone(&current.template), current.version))
}

/// True when `who` owns the template (allowed resolver).
pub fn is_template_owner(who: &Requester, t: &TaskTemplate) -> bool {
    who.is_in(&t.allowed_resolver_usernames, &t.allowed_resolver_groups)
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

/// Renders a template's `title_format` in the template's dialect.
pub fn render_title(r: &Renderer, t: &TaskTemplate, ctx: &Value) -> Result<String, String> {
    let d = match &t.dialect {
        Some(ModelDialect::Jinja) => Dialect::Jinja,
        Some(ModelDialect::Utask) => Dialect::Utask,
        None => dialect::detect([t.title_format.as_str()]),
    };
    r.render_dialect(d, &t.title_format, ctx, None)
        .map_err(|e| e.to_string())
}

/// A validated task, ready to be written (with its resolution and first comment).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub task: NewTask,
    pub resolution: Option<NewResolution>,
    pub comment: Option<NewComment>,
    pub template: TaskTemplate,
    pub autorun: bool,
}

/// Creates a task; returns it with its template.
///
/// The template comes from the store's cache; the creating statement checks that it is still
/// current, and when it is not, the request is prepared again from a fresh read.
pub async fn create(
    store: &Store,
    renderer: &Renderer,
    who: &Requester,
    req: CreateRequest,
) -> Result<(store::task::TaskRecord, TaskTemplate), CreateError> {
    create_claimed(store, renderer, who, req)
        .await
        .map(|c| (c.task, c.template))
}

/// [`create`], with the claim of a task created claimed ([`CreateRequest::claim`]).
pub async fn create_claimed(
    store: &Store,
    renderer: &Renderer,
    who: &Requester,
    req: CreateRequest,
) -> Result<Created, CreateError> {
    let mut read = Read::Cached;
    loop {
        let p = prepare_checked(store, renderer, who, &req, read).await?;
        match store::task::create(store, &p.task, p.resolution.as_ref(), p.comment.as_ref()).await {
            Err(StoreError::TemplateChanged(name)) if read == Read::Cached => {
                stale(store, &name, &p);
                read = Read::Fresh;
            }
            outcome => return Ok(created(p, outcome?)),
        }
    }
}

/// Creates a task under an idempotency key (per requester, kept for `ttl`): a repeated create
/// with the same key answers the first task (`true` when this call created it).
pub async fn create_idempotent(
    store: &Store,
    renderer: &Renderer,
    who: &Requester,
    req: CreateRequest,
    key: &str,
    ttl: std::time::Duration,
) -> Result<(Created, bool), CreateError> {
    let mut read = Read::Cached;
    let (p, outcome) = loop {
        let p = prepare_checked(store, renderer, who, &req, read).await?;
        match store::task::create_idempotent(
            store,
            &p.task,
            p.resolution.as_ref(),
            p.comment.as_ref(),
            key,
            ttl,
        )
        .await
        {
            Err(StoreError::TemplateChanged(name)) if read == Read::Cached => {
                stale(store, &name, &p);
                read = Read::Fresh;
            }
            outcome => break (p, outcome?),
        }
    };
    match outcome {
        Ok(at) => Ok((created(p, at), true)),
        Err(existing) => {
            tracing::info!(task = %existing, key, requester = %who.username, "idempotent create answered an existing task");
            let rec = store::task::get(store, existing)
                .await?
                .ok_or_else(|| CreateError::Internal("idempotent task vanished".into()))?;
            let task = Created {
                task: rec,
                template: p.template,
                claimed: None,
            };
            Ok((task, false))
        }
    }
}

/// A cached template turned out stale: forget it (the caller prepares again from a fresh read).
fn stale(store: &Store, name: &str, p: &Prepared) {
    tracing::debug!(
        template = name,
        version = p.task.template_version,
        "template changed since it was cached; reading it again"
    );
    store::template::forget_current(store, name);
}

/// A prepared task once written (`at`, what the store answered): its record, and the claim of
/// a task created claimed, which the caller starts.
pub fn created(p: Prepared, at: store::task::Inserted) -> Created {
    tracing::info!(task = %p.task.id, template = %p.template.name, requester = %p.task.requester_username, autorun = p.autorun, "task created");
    let task = p.task.record(at, p.resolution.as_ref());
    let claimed = match (&p.task.claim, &p.resolution) {
        (Some(c), Some(r)) if r.state == ResolutionState::Running => {
            let claim = c.on(r.id);
            Some((
                claim,
                store::resolution::created_loaded(task.clone(), r, &claim),
            ))
        }
        _ => None,
    };
    Created {
        task,
        template: p.template,
        claimed,
    }
}

/// How [`prepare_from`] reads the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// From the store's cache, guarded: the task is written only if it is still current.
    Cached,
    /// From the database.
    Fresh,
}

/// [`prepare_from`]; a request refused on a cached template (blocked, invalid inputs, not
/// allowed…) is judged again on a fresh read, so a refusal never rests on a stale copy.
async fn prepare_checked(
    store: &Store,
    renderer: &Renderer,
    who: &Requester,
    req: &CreateRequest,
    read: Read,
) -> Result<Prepared, CreateError> {
    match prepare_from(store, renderer, who, req.clone(), read).await {
        Err(e) if read == Read::Cached && !matches!(e, CreateError::Store(_)) => {
            tracing::debug!(error = %e, "refused on the cached template; judging it on a fresh read");
            prepare_from(store, renderer, who, req.clone(), Read::Fresh).await
        }
        prepared => prepared,
    }
}

/// Validates a creation request and builds the rows to write (nothing is written), from the
/// template as the database has it now.
pub async fn prepare(
    store: &Store,
    renderer: &Renderer,
    who: &Requester,
    req: CreateRequest,
) -> Result<Prepared, CreateError> {
    prepare_from(store, renderer, who, req, Read::Fresh).await
}

async fn prepare_from(
    store: &Store,
    renderer: &Renderer,
    who: &Requester,
    req: CreateRequest,
    read: Read,
) -> Result<Prepared, CreateError> {
    let normalized = req.template_name.trim().to_lowercase();
    let current = store::template::current(store, &normalized, read == Read::Fresh)
        .await?
        .ok_or_else(|| CreateError::TemplateNotFound(normalized.clone()))?;
    let template = TaskTemplate::clone(&current.template);
    let version = current.version;
    if template.blocked {
        return Err(CreateError::Blocked);
    }
    let owner = who.is_admin || is_template_owner(who, &template);
    if (req.resolver_usernames.is_some() || req.resolver_groups.is_some())
        && !owner
        && req.parent_task_id.is_none()
    {
        return Err(CreateError::Forbidden(
            "only admins and template owners may set resolver_usernames / resolver_groups".into(),
        ));
    }
    let mut fields = Vec::new();
    let inputs = match input::validate(&template.inputs, &req.input, "input") {
        Ok(v) => v,
        Err(errs) => {
            fields.extend(errs.into_iter().map(|e| FieldError {
                field: e.field,
                message: e.message,
            }));
            Map::new()
        }
    };
    let resolver_usernames = req.resolver_usernames.clone().unwrap_or_default();
    let resolver_groups = req.resolver_groups.clone().unwrap_or_default();
    check_names("watcher_usernames", &req.watcher_usernames, &mut fields);
    check_names("watcher_groups", &req.watcher_groups, &mut fields);
    check_names("resolver_usernames", &resolver_usernames, &mut fields);
    check_names("resolver_groups", &resolver_groups, &mut fields);
    let delay = match &req.delay {
        Some(d) if !d.trim().is_empty() => match duration::parse(d) {
            Ok(d) => Some(d),
            Err(e) => {
                fields.push(FieldError {
                    field: "delay".into(),
                    message: e.to_string(),
                });
                None
            }
        },
        _ => None,
    };
    let mut tags = Map::new();
    for (k, v) in template.tags.iter() {
        tags.insert(k.clone(), Value::String(v.clone()));
    }
    for (k, v) in &req.tags {
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
            tags.insert(k.clone(), Value::String(v.clone()));
        }
    }
    if let Some(parent) = req.parent_task_id {
        tags.insert(PARENT_TAG.into(), Value::String(parent.to_string()));
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
        return Err(CreateError::Invalid(fields));
    }

    let task_id = req.ids.map_or_else(TaskId::new, |(t, _)| t);
    // titles are shown to every reader of the task: password inputs are masked in them
    let masked = input::mask_passwords(&template.inputs, &Value::Object(inputs.clone()));
    let ctx = json!({
        "input": masked,
        "task": {
            "task_id": task_id.to_string(),
            "requester_username": who.username,
            "requester_groups": who.groups.join(","),
            "created": chrono::Utc::now().to_rfc3339(),
        },
    });
    let title = render_title(renderer, &template, &ctx).map_err(CreateError::Title)?;

    let steps = crate::engine::initial_steps(&template)
        .map_err(|e| CreateError::Internal(e.to_string()))?;
    let autorun = template.auto_runnable
        && (owner
            || template.allow_all_resolver_usernames
            || who.is_in(&resolver_usernames, &resolver_groups));
    let now = chrono::Utc::now();
    let resolution = autorun.then(|| {
        let delayed = delay.filter(|d| !d.is_zero());
        NewResolution {
            id: req.ids.map_or_else(ResolutionId::new, |(_, r)| r),
            state: if delayed.is_some() {
                ResolutionState::ToAutorunDelayed
            } else if req.claim.is_some() {
                ResolutionState::Running
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
    let task_state = match resolution.as_ref().map(|r| r.state) {
        Some(ResolutionState::ToAutorunDelayed) => TaskState::Delayed,
        Some(ResolutionState::Running) => TaskState::Running,
        _ => TaskState::Todo,
    };
    let new_task = NewTask {
        id: task_id,
        template_name: template.name.clone(),
        template_version: version,
        title,
        state: task_state,
        requester_username: who.username.clone(),
        requester_groups: who.groups.clone(),
        watcher_usernames: req.watcher_usernames.clone(),
        watcher_groups: req.watcher_groups.clone(),
        resolver_usernames,
        resolver_groups,
        tags: Value::Object(tags),
        input: Value::Object(inputs),
        batch_id: req.batch_id,
        parent_task_id: req.parent_task_id,
        status_hook: req.status_hook.clone(),
        expected_duration: template.expected_duration.clone(),
        template_guard: (read == Read::Cached).then_some(current.updated),
        claim: req.claim,
    };
    let comment = req
        .comment
        .as_ref()
        .filter(|c| !c.trim().is_empty())
        .map(|c| NewComment {
            id: CommentId::new(),
            task_id,
            username: who.username.clone(),
            body: c.clone(),
        });
    Ok(Prepared {
        task: new_task,
        resolution,
        comment,
        template,
        autorun,
    })
}
