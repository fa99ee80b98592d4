//! Operator actions on tasks and resolutions (the REST API's state changes): create or start
//! over a resolution, run, pause, extend, cancel, set a step state, mark a task WONTFIX, edit or
//! delete a task, and undo a half-created batch.
//!
//! Invariants: every state change is ONE guarded statement that names the states it may leave
//! (house rule 1); when it touches no row, the current state is read only to word the refusal.
//! Each change and its automatic task comment ("manually paused resolution", …) commit in one
//! transaction; a resolution made claimable is announced on `mutask_resolution` in that same
//! transaction, so the runner of any instance picks it up at once. The engine is never called
//! from here: running means "make it claimable".

use serde_json::Value;
use sqlx::PgConnection;

use crate::crypto::Aad;
use crate::domain::{BatchId, CommentId, ResolutionId, ResolutionState, TaskId};

use super::comment::{self, NewComment};
use super::resolution::{self, NewResolution};
use super::task::RESOLUTION_CHANNEL;
use super::{Store, StoreError};

/// Why a guarded change did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The row does not exist (any more).
    NotFound,
    /// The row is in a state the change may not leave (the current state's text).
    State(String),
}

async fn notify(conn: &mut PgConnection, id: ResolutionId) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(RESOLUTION_CHANNEL)
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn add_comment(
    conn: &mut PgConnection,
    store: &Store,
    task: TaskId,
    username: &str,
    body: &str,
) -> Result<(), StoreError> {
    comment::insert(
        conn,
        &store.keys,
        &NewComment {
            id: CommentId::new(),
            task_id: task,
            username: username.to_string(),
            body: body.to_string(),
        },
    )
    .await
}

async fn resolution_state(
    conn: &mut PgConnection,
    id: ResolutionId,
) -> Result<Refused, StoreError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM resolution WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(state.map_or(Refused::NotFound, Refused::State))
}

async fn task_state(conn: &mut PgConnection, id: TaskId) -> Result<Refused, StoreError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM task WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(state.map_or(Refused::NotFound, Refused::State))
}

fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Db(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23505"))
}

/// A resolution to create for an existing task (`POST /resolution`).
#[derive(Debug, Clone)]
pub struct CreateResolution {
    pub task: TaskId,
    pub resolution: NewResolution,
    /// Replace a PAUSED, BLOCKED_BADREQUEST or CANCELLED resolution.
    pub start_over: bool,
    /// Appended to the task's `resolver_usernames` (an admin resolving, as µTask does).
    pub add_resolver: Option<String>,
}

/// Why a resolution was not created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRefused {
    TaskNotFound,
    /// The task is in a state that takes no new resolution.
    TaskState(String),
    /// The task already has a resolution (and no start over was asked).
    Exists(ResolutionId),
    /// Start over asked, but the task never had a resolution.
    NothingToStartOver,
    /// Start over asked, but the resolution is not PAUSED, BLOCKED_BADREQUEST or CANCELLED.
    NotStartable(String),
}

/// Task states that may receive a new resolution: TODO, or with a start over anything that is
/// not DONE or WONTFIX.
const START_OVER_STATES: &str = "'PAUSED', 'BLOCKED_BADREQUEST', 'CANCELLED'";

/// Creates the resolution of a task (TO_AUTORUN: claimed at once) in one transaction: the task
/// row is locked by a guarded UPDATE (state back to TODO, counters and result reset, resolver
/// appended), a start over deletes the previous resolution (guarded by its state), then the
/// resolution and its steps are inserted and the claimers notified.
pub async fn create_resolution(
    store: &Store,
    req: &CreateResolution,
) -> Result<Result<(), CreateRefused>, StoreError> {
    let mut tx = store.pool.begin().await?;
    let sql = if req.start_over {
        "UPDATE task SET state = 'TODO', steps_done = 0, result_enc = NULL, last_activity = now(),
                resolver_usernames = CASE WHEN $2::text IS NULL OR $2 = ANY(resolver_usernames)
                                          THEN resolver_usernames
                                          ELSE array_append(resolver_usernames, $2) END
          WHERE id = $1 AND state NOT IN ('DONE', 'WONTFIX')"
    } else {
        "UPDATE task SET last_activity = now(),
                resolver_usernames = CASE WHEN $2::text IS NULL OR $2 = ANY(resolver_usernames)
                                          THEN resolver_usernames
                                          ELSE array_append(resolver_usernames, $2) END
          WHERE id = $1 AND state = 'TODO'"
    };
    let n = sqlx::query(sql)
        .bind(req.task)
        .bind(&req.add_resolver)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let existing: Option<(ResolutionId, String)> =
        sqlx::query_as("SELECT id, state FROM resolution WHERE task_id = $1")
            .bind(req.task)
            .fetch_optional(&mut *tx)
            .await?;
    if n == 0 {
        return Ok(Err(
            match (task_state(&mut tx, req.task).await?, existing) {
                (Refused::NotFound, _) => CreateRefused::TaskNotFound,
                (_, Some((id, _))) if !req.start_over => CreateRefused::Exists(id),
                (Refused::State(s), _) => CreateRefused::TaskState(s),
            },
        ));
    }
    match (req.start_over, existing) {
        (false, Some((id, _))) => return Ok(Err(CreateRefused::Exists(id))),
        (true, None) => return Ok(Err(CreateRefused::NothingToStartOver)),
        (true, Some((id, state))) => {
            let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM resolution WHERE id = $1 AND state IN ({START_OVER_STATES})"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if deleted == 0 {
                return Ok(Err(CreateRefused::NotStartable(state)));
            }
        }
        (false, None) => {}
    }
    if let Err(e) = resolution::insert(&mut tx, &store.keys, req.task, &req.resolution).await {
        if is_unique_violation(&e) {
            return Err(StoreError::Conflict(format!(
                "task {} already has a resolution",
                req.task
            )));
        }
        return Err(e);
    }
    if req.resolution.state == ResolutionState::ToAutorun {
        notify(&mut tx, req.resolution.id).await?;
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// `POST /resolution/{id}/run`: makes the resolution claimable now (TO_AUTORUN; a CRASHED one
/// stays CRASHED so crash recovery still applies) unless it is CANCELLED, RUNNING or DONE or its
/// task is finished; writes the comment and notifies the claimers. Returns the task id.
pub async fn run(
    store: &Store,
    id: ResolutionId,
    username: &str,
) -> Result<Result<TaskId, Refused>, StoreError> {
    let mut tx = store.pool.begin().await?;
    let task: Option<TaskId> = sqlx::query_scalar(
        "UPDATE resolution r
            SET state = CASE WHEN r.state = 'CRASHED' THEN 'CRASHED' ELSE 'TO_AUTORUN' END,
                next_retry = NULL, updated = now()
           FROM task t
          WHERE r.id = $1 AND t.id = r.task_id
            AND r.state NOT IN ('CANCELLED', 'RUNNING', 'DONE')
            AND t.state NOT IN ('DONE', 'CANCELLED', 'WONTFIX')
         RETURNING r.task_id",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(task) = task else {
        return Ok(Err(resolution_state(&mut tx, id).await?));
    };
    add_comment(&mut tx, store, task, username, "manually ran resolution").await?;
    notify(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Ok(task))
}

/// `POST /resolution/{id}/pause`: PAUSED unless CANCELLED, RUNNING or DONE; `force` pauses from
/// any state and drops the owner (a running cycle then loses its claim and writes nothing more).
pub async fn pause(
    store: &Store,
    id: ResolutionId,
    force: bool,
    username: &str,
) -> Result<Result<TaskId, Refused>, StoreError> {
    let mut tx = store.pool.begin().await?;
    let task: Option<TaskId> = sqlx::query_scalar(
        "UPDATE resolution
            SET state = 'PAUSED', owner_instance = NULL, lease_expires = NULL, updated = now()
          WHERE id = $1 AND ($2 OR state NOT IN ('CANCELLED', 'RUNNING', 'DONE'))
         RETURNING task_id",
    )
    .bind(id)
    .bind(force)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(task) = task else {
        return Ok(Err(resolution_state(&mut tx, id).await?));
    };
    add_comment(&mut tx, store, task, username, "manually paused resolution").await?;
    tx.commit().await?;
    Ok(Ok(task))
}

/// `POST /resolution/{id}/extend`: from BLOCKED_MAXRETRIES only, `run_max += extra`, ERROR with
/// `next_retry = now()` (claimable at once), comment, notify.
pub async fn extend(
    store: &Store,
    id: ResolutionId,
    extra: i32,
    username: &str,
) -> Result<Result<TaskId, Refused>, StoreError> {
    let mut tx = store.pool.begin().await?;
    let task: Option<TaskId> = sqlx::query_scalar(
        "UPDATE resolution
            SET run_max = LEAST(run_max::bigint + $2, 2147483647)::int, state = 'ERROR',
                next_retry = now(), updated = now()
          WHERE id = $1 AND state = 'BLOCKED_MAXRETRIES'
         RETURNING task_id",
    )
    .bind(id)
    .bind(i64::from(extra))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(task) = task else {
        return Ok(Err(resolution_state(&mut tx, id).await?));
    };
    add_comment(
        &mut tx,
        store,
        task,
        username,
        "manually extended resolution",
    )
    .await?;
    notify(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Ok(task))
}

/// `POST /resolution/{id}/cancel`: resolution CANCELLED (not from CANCELLED, RUNNING, DONE) and
/// task CANCELLED in one transaction, with the comment; the parent task (subtask, batch) is woken.
pub async fn cancel(
    store: &Store,
    id: ResolutionId,
    username: &str,
) -> Result<Result<TaskId, Refused>, StoreError> {
    let mut tx = store.pool.begin().await?;
    let task: Option<TaskId> = sqlx::query_scalar(
        "UPDATE resolution SET state = 'CANCELLED', next_retry = NULL, owner_instance = NULL,
                lease_expires = NULL, updated = now()
          WHERE id = $1 AND state NOT IN ('CANCELLED', 'RUNNING', 'DONE')
         RETURNING task_id",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(task) = task else {
        return Ok(Err(resolution_state(&mut tx, id).await?));
    };
    sqlx::query("UPDATE task SET state = 'CANCELLED', last_activity = now() WHERE id = $1")
        .bind(task)
        .execute(&mut *tx)
        .await?;
    add_comment(&mut tx, store, task, username, "cancelled resolution").await?;
    resolution::wake_parent(&mut tx, task).await?;
    tx.commit().await?;
    Ok(Ok(task))
}

/// Why a step state was not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepRefused {
    ResolutionNotFound,
    StepNotFound,
    /// The resolution is not PAUSED (its state).
    NotPaused(String),
}

/// `PUT /resolution/{id}/step/{name}/state`: sets a step state while the resolution is PAUSED
/// (one guarded UPDATE); the comment names the old and new states. Returns the old state.
pub async fn set_step_state(
    store: &Store,
    id: ResolutionId,
    step: &str,
    state: &str,
    username: &str,
) -> Result<Result<String, StepRefused>, StoreError> {
    let mut tx = store.pool.begin().await?;
    let row: Option<(String, TaskId)> = sqlx::query_as(
        "UPDATE step s SET state = $3, updated = now()
           FROM step old, resolution r
          WHERE s.resolution_id = $1 AND s.name = $2
            AND old.resolution_id = s.resolution_id AND old.name = s.name
            AND r.id = s.resolution_id AND r.state = 'PAUSED'
         RETURNING old.state, r.task_id",
    )
    .bind(id)
    .bind(step)
    .bind(state)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((old, task)) = row else {
        let current: Option<String> =
            sqlx::query_scalar("SELECT state FROM resolution WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        return Ok(Err(match current {
            None => StepRefused::ResolutionNotFound,
            Some(s) if s != "PAUSED" => StepRefused::NotPaused(s),
            Some(_) => StepRefused::StepNotFound,
        }));
    };
    sqlx::query("UPDATE resolution SET updated = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let body = format!("manually updated resolution step {step} state from {old} to {state}");
    add_comment(&mut tx, store, task, username, &body).await?;
    tx.commit().await?;
    Ok(Ok(old))
}

/// Why a task was not marked WONTFIX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WontfixRefused {
    NotFound,
    /// The task is not TODO (its state).
    TaskState(String),
    /// The task has a resolution that a runner may still pick up (its state).
    Resolution(String),
}

/// Resolution states a runner may pick up (or is running): a task with one is not WONTFIX-able.
const LIVE_RESOLUTION_STATES: &str = "'TO_AUTORUN', 'TO_AUTORUN_DELAYED', 'RETRY', 'ERROR', \
     'WAITING', 'CRASHED', 'RUNNING', 'AUTORUNNING'";

/// `POST /task/{id}/wontfix`: TODO → WONTFIX (one guarded UPDATE, refused while a live
/// resolution exists), with a comment; wakes the parent task.
pub async fn wontfix(
    store: &Store,
    id: TaskId,
    username: &str,
) -> Result<Result<(), WontfixRefused>, StoreError> {
    let mut tx = store.pool.begin().await?;
    let n = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE task t SET state = 'WONTFIX', last_activity = now()
          WHERE t.id = $1 AND t.state = 'TODO'
            AND NOT EXISTS (SELECT 1 FROM resolution r
                             WHERE r.task_id = t.id AND r.state IN ({LIVE_RESOLUTION_STATES}))"
    )))
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(Err(match task_state(&mut tx, id).await? {
            Refused::NotFound => WontfixRefused::NotFound,
            Refused::State(s) if s != "TODO" => WontfixRefused::TaskState(s),
            Refused::State(_) => {
                let r: Option<String> =
                    sqlx::query_scalar("SELECT state FROM resolution WHERE task_id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                WontfixRefused::Resolution(r.unwrap_or_default())
            }
        }));
    }
    add_comment(&mut tx, store, id, username, "set task state to WONTFIX").await?;
    resolution::wake_parent(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// `DELETE /task/{id}`: deletes the task (cascading to its resolution, steps, comments and
/// callbacks) unless it is RUNNING or BLOCKED or its resolution is RUNNING.
pub async fn delete_task(store: &Store, id: TaskId) -> Result<Result<(), Refused>, StoreError> {
    let mut tx = store.pool.begin().await?;
    let n = sqlx::query(
        "DELETE FROM task t
          WHERE t.id = $1 AND t.state NOT IN ('RUNNING', 'BLOCKED')
            AND NOT EXISTS (SELECT 1 FROM resolution r WHERE r.task_id = t.id AND r.state = 'RUNNING')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        let refused = match task_state(&mut tx, id).await? {
            Refused::State(s) if s != "RUNNING" && s != "BLOCKED" => {
                Refused::State("RUNNING".into())
            }
            other => other,
        };
        return Ok(Err(refused));
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// An edit of a task (`PUT /task/{id}`); `None` keeps the current value.
#[derive(Debug, Clone)]
pub struct TaskUpdate {
    pub id: TaskId,
    pub input: Option<Value>,
    pub title: Option<String>,
    pub watcher_usernames: Option<Vec<String>>,
    pub watcher_groups: Option<Vec<String>>,
    pub tags: Option<Value>,
    /// The caller may only edit while no resolution exists (the requester).
    pub only_without_resolution: bool,
    pub username: String,
}

/// Why a task edit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateRefused {
    NotFound,
    /// A resolution exists and is not PAUSED, or exists at all for a requester-only edit.
    Resolution(String),
}

/// Edits a task in one guarded UPDATE (no resolution, or a PAUSED one), sealing input and title,
/// with a comment.
pub async fn update_task(
    store: &Store,
    u: &TaskUpdate,
) -> Result<Result<(), UpdateRefused>, StoreError> {
    let row = u.id.to_string();
    let input_enc = match &u.input {
        Some(v) => Some(store.keys.seal_json(
            Aad {
                table: "task",
                column: "input_enc",
                row: &row,
            },
            v,
        )?),
        None => None,
    };
    let title_enc = match &u.title {
        Some(t) => Some(store.keys.seal(
            Aad {
                table: "task",
                column: "title_enc",
                row: &row,
            },
            t.as_bytes(),
        )?),
        None => None,
    };
    let mut tx = store.pool.begin().await?;
    let n = sqlx::query(
        "UPDATE task t SET input_enc = COALESCE($2, t.input_enc), title_enc = COALESCE($3, t.title_enc),
                watcher_usernames = COALESCE($4, t.watcher_usernames),
                watcher_groups = COALESCE($5, t.watcher_groups), tags = COALESCE($6, t.tags),
                last_activity = now()
          WHERE t.id = $1
            AND NOT EXISTS (SELECT 1 FROM resolution r
                             WHERE r.task_id = t.id AND ($7 OR r.state <> 'PAUSED'))",
    )
    .bind(u.id)
    .bind(input_enc)
    .bind(title_enc)
    .bind(&u.watcher_usernames)
    .bind(&u.watcher_groups)
    .bind(&u.tags)
    .bind(u.only_without_resolution)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        if let Refused::NotFound = task_state(&mut tx, u.id).await? {
            return Ok(Err(UpdateRefused::NotFound));
        }
        let r: Option<String> =
            sqlx::query_scalar("SELECT state FROM resolution WHERE task_id = $1")
                .bind(u.id)
                .fetch_optional(&mut *tx)
                .await?;
        return Ok(Err(UpdateRefused::Resolution(r.unwrap_or_default())));
    }
    add_comment(&mut tx, store, u.id, &u.username, "manually updated task").await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Undoes a batch whose creation failed half-way: deletes its tasks and the batch.
pub async fn delete_batch(store: &Store, batch: BatchId) -> Result<u64, StoreError> {
    let mut tx = store.pool.begin().await?;
    let n = sqlx::query("DELETE FROM task WHERE batch_id = $1")
        .bind(batch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM batch WHERE id = $1")
        .bind(batch)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// An edit of a PAUSED resolution (`PUT /resolution/{id}` and `PUT /resolution/{id}/step/{name}`).
#[derive(Debug, Clone, Default)]
pub struct EditResolution {
    /// New resolver inputs (already validated).
    pub resolver_input: Option<Value>,
    /// Steps whose definition is replaced (name, definition); their run state is kept.
    pub replace: Vec<(String, Value)>,
    /// Steps to add in state TODO (name, definition).
    pub add: Vec<(String, Value)>,
    /// Steps to remove (with their outputs).
    pub remove: Vec<String>,
    /// The automatic task comment.
    pub comment: String,
}

/// Applies an edit to a PAUSED resolution in one transaction: the guarded UPDATE of the
/// resolution (`state = 'PAUSED'`) comes first and locks the row, so no runner can claim it
/// while its steps change. `Err(Refused::State)` names the current state otherwise.
pub async fn edit_resolution(
    store: &Store,
    id: ResolutionId,
    edit: &EditResolution,
    username: &str,
) -> Result<Result<(), Refused>, StoreError> {
    let mut tx = store.pool.begin().await?;
    let row = id.to_string();
    let resolver_input_enc = edit
        .resolver_input
        .as_ref()
        .map(|v| {
            store.keys.seal_json(
                Aad {
                    table: "resolution",
                    column: "resolver_input_enc",
                    row: &row,
                },
                v,
            )
        })
        .transpose()?;
    let task: Option<TaskId> = sqlx::query_scalar(
        "UPDATE resolution SET updated = now(),
                resolver_input_enc = coalesce($2, resolver_input_enc)
          WHERE id = $1 AND state = 'PAUSED' RETURNING task_id",
    )
    .bind(id)
    .bind(resolver_input_enc)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(task) = task else {
        return Ok(Err(resolution_state(&mut tx, id).await?));
    };
    let seal = |name: &str, def: &Value| {
        let srow = resolution::step_row(id, name);
        store.keys.seal_json(
            Aad {
                table: "step",
                column: "definition_enc",
                row: &srow,
            },
            def,
        )
    };
    if !edit.remove.is_empty() {
        sqlx::query("DELETE FROM step WHERE resolution_id = $1 AND name = ANY($2)")
            .bind(id)
            .bind(&edit.remove)
            .execute(&mut *tx)
            .await?;
    }
    for (name, def) in &edit.replace {
        sqlx::query(
            "UPDATE step SET definition_enc = $3, updated = now()
              WHERE resolution_id = $1 AND name = $2",
        )
        .bind(id)
        .bind(name)
        .bind(seal(name, def)?)
        .execute(&mut *tx)
        .await?;
    }
    for (name, def) in &edit.add {
        sqlx::query(
            "INSERT INTO step (resolution_id, name, position, state, definition_enc)
             SELECT $1, $2, coalesce(max(position) + 1, 0), 'TODO', $3
               FROM step WHERE resolution_id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(seal(name, def)?)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE task SET last_activity = now(),
                steps_total = (SELECT count(*) FROM step WHERE resolution_id = $2)
          WHERE id = $1",
    )
    .bind(task)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    add_comment(&mut tx, store, task, username, &edit.comment).await?;
    tx.commit().await?;
    Ok(Ok(()))
}
