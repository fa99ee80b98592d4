//! `task`: one request to run a template with inputs.
//!
//! Inputs, results and titles (rendered from inputs) are sealed (AAD `task.<column>.<id>`);
//! tags stay in clear because they are filtered on in SQL. A task and
//! its resolution (when it auto-runs) are created in ONE transaction together with the
//! `mutask_resolution` notification, so a claimer never sees half a task.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::crypto::{Aad, KeyRing};
use crate::domain::{BatchId, ResolutionId, ResolutionState, TaskId, TaskState};

use super::{Store, StoreError, comment, resolution};

/// Channel notified when a resolution becomes claimable.
pub const RESOLUTION_CHANNEL: &str = "mutask_resolution";

fn aad<'a>(column: &'a str, row: &'a str) -> Aad<'a> {
    Aad {
        table: "task",
        column,
        row,
    }
}

/// A task to insert.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: TaskId,
    pub template_name: String,
    pub template_version: i32,
    pub title: String,
    pub state: TaskState,
    pub requester_username: String,
    pub requester_groups: Vec<String>,
    pub watcher_usernames: Vec<String>,
    pub watcher_groups: Vec<String>,
    pub resolver_usernames: Vec<String>,
    pub resolver_groups: Vec<String>,
    pub tags: Value,
    pub input: Value,
    pub batch_id: Option<BatchId>,
    pub parent_task_id: Option<TaskId>,
    /// `{url, secret?}`, sealed in `status_hook_enc`.
    pub status_hook: Option<Value>,
    /// The template's `expected_duration` (a Go duration); the overdue alert's deadline is
    /// recorded when the task first runs.
    pub expected_duration: Option<String>,
    /// When set, the task is created only if its template row still has this `updated` (the
    /// version it was prepared from is still current and not archived); otherwise
    /// [`StoreError::TemplateChanged`] and nothing is written.
    pub template_guard: Option<DateTime<Utc>>,
    /// The creating instance claims the resolution in the creating statement (it has a free
    /// execution slot and starts the cycle itself): a resolution created `RUNNING` is written
    /// owned by it (claim attempt 1, run count 1, a lease), with no NOTIFY to the claim loops.
    /// Without it, a resolution created claimable NOTIFYs them.
    pub claim: Option<resolution::NewClaim>,
}

/// A stored task, inputs and result opened.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub id: TaskId,
    pub template_name: String,
    pub template_version: i32,
    pub title: String,
    pub state: TaskState,
    pub requester_username: String,
    pub requester_groups: Vec<String>,
    pub watcher_usernames: Vec<String>,
    pub watcher_groups: Vec<String>,
    pub resolver_usernames: Vec<String>,
    pub resolver_groups: Vec<String>,
    pub tags: Value,
    pub input: Value,
    pub result: Option<Value>,
    pub batch_id: Option<BatchId>,
    pub parent_task_id: Option<TaskId>,
    pub steps_done: i32,
    pub steps_total: i32,
    pub created: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub resolution_id: Option<ResolutionId>,
    pub resolution_state: Option<ResolutionState>,
    pub resolver_username: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(super) struct TaskRow {
    id: TaskId,
    template_name: String,
    template_version: i32,
    title_enc: Vec<u8>,
    state: String,
    requester_username: String,
    requester_groups: Vec<String>,
    watcher_usernames: Vec<String>,
    watcher_groups: Vec<String>,
    resolver_usernames: Vec<String>,
    resolver_groups: Vec<String>,
    tags: Value,
    input_enc: Vec<u8>,
    result_enc: Option<Vec<u8>>,
    batch_id: Option<BatchId>,
    parent_task_id: Option<TaskId>,
    steps_done: i32,
    steps_total: i32,
    created: DateTime<Utc>,
    last_activity: DateTime<Utc>,
    resolution_id: Option<ResolutionId>,
    resolution_state: Option<String>,
    resolver_username: Option<String>,
}

impl TaskRow {
    pub(super) fn open(self, keys: &KeyRing) -> Result<TaskRecord, StoreError> {
        let row = self.id.to_string();
        let input = keys.open_json(aad("input_enc", &row), &self.input_enc)?;
        let title = String::from_utf8(keys.open(aad("title_enc", &row), &self.title_enc)?)
            .map_err(|_| StoreError::Corrupt(format!("task {row}: title is not UTF-8")))?;
        let result = match &self.result_enc {
            Some(r) => Some(keys.open_json(aad("result_enc", &row), r)?),
            None => None,
        };
        let state = self
            .state
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("task {row}: {e}")))?;
        let resolution_state = match self.resolution_state {
            Some(s) => Some(
                s.parse()
                    .map_err(|e| StoreError::Corrupt(format!("task {row}: {e}")))?,
            ),
            None => None,
        };
        Ok(TaskRecord {
            id: self.id,
            template_name: self.template_name,
            template_version: self.template_version,
            title,
            state,
            requester_username: self.requester_username,
            requester_groups: self.requester_groups,
            watcher_usernames: self.watcher_usernames,
            watcher_groups: self.watcher_groups,
            resolver_usernames: self.resolver_usernames,
            resolver_groups: self.resolver_groups,
            tags: self.tags,
            input,
            result,
            batch_id: self.batch_id,
            parent_task_id: self.parent_task_id,
            steps_done: self.steps_done,
            steps_total: self.steps_total,
            created: self.created,
            last_activity: self.last_activity,
            resolution_id: self.resolution_id,
            resolution_state,
            resolver_username: self.resolver_username,
        })
    }
}

/// The timestamps the database gave a new task.
#[derive(Debug, Clone, Copy)]
pub struct Inserted {
    pub created: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
}

impl NewTask {
    /// The record of this task as [`create`] wrote it (what [`get`] would read back).
    pub fn record(
        &self,
        at: Inserted,
        resolution: Option<&resolution::NewResolution>,
    ) -> TaskRecord {
        TaskRecord {
            id: self.id,
            template_name: self.template_name.clone(),
            template_version: self.template_version,
            title: self.title.clone(),
            state: self.state,
            requester_username: self.requester_username.clone(),
            requester_groups: self.requester_groups.clone(),
            watcher_usernames: self.watcher_usernames.clone(),
            watcher_groups: self.watcher_groups.clone(),
            resolver_usernames: self.resolver_usernames.clone(),
            resolver_groups: self.resolver_groups.clone(),
            tags: self.tags.clone(),
            input: self.input.clone(),
            result: None,
            batch_id: self.batch_id,
            parent_task_id: self.parent_task_id,
            steps_done: 0,
            steps_total: resolution.map_or(0, |r| r.steps.len() as i32),
            created: at.created,
            last_activity: at.last_activity,
            resolution_id: resolution.map(|r| r.id),
            resolution_state: resolution.map(|r| r.state),
            resolver_username: resolution.and_then(|r| r.resolver_username.clone()),
        }
    }
}

/// Creates a task and, when given, its resolution (with steps) and first comment — one
/// statement, so atomic without a transaction; notifies claimers (on commit) when the
/// resolution is claimable.
pub async fn create(
    store: &Store,
    task: &NewTask,
    resolution: Option<&resolution::NewResolution>,
    comment: Option<&comment::NewComment>,
) -> Result<Inserted, StoreError> {
    let mut conn = store.pool.acquire().await?;
    create_in(&mut conn, store, task, resolution, comment).await
}

/// [`create`] on a given connection, possibly inside an open transaction (schedules create
/// their task in the transaction that records the occurrence).
pub async fn create_in(
    conn: &mut sqlx::PgConnection,
    store: &Store,
    task: &NewTask,
    resolution: Option<&resolution::NewResolution>,
    comment: Option<&comment::NewComment>,
) -> Result<Inserted, StoreError> {
    let keys = &store.keys;
    let row = task.id.to_string();
    let input_enc = keys.seal_json(aad("input_enc", &row), &task.input)?;
    let title_enc = keys.seal(aad("title_enc", &row), task.title.as_bytes())?;
    let hook_enc = match &task.status_hook {
        Some(h) => Some(keys.seal_json(aad("status_hook_enc", &row), h)?),
        None => None,
    };
    let sealed = resolution
        .map(|r| resolution::seal_new(keys, r))
        .transpose()?;
    let comment_enc = comment.map(|c| comment::seal(keys, c)).transpose()?;
    // only a resolution created running is created claimed
    let claim = task
        .claim
        .as_ref()
        .filter(|_| resolution.is_some_and(|r| r.state == ResolutionState::Running));
    // The resolution, its steps and the comment reference the task: their foreign keys are
    // checked at the end of the statement, when the task row exists.
    // With a template guard that no longer holds, `t` inserts nothing, and nothing else is
    // written (each other part reads `t`).
    let (created, last_activity, _notified): (DateTime<Utc>, DateTime<Utc>, i64) = sqlx::query_as(
        "WITH t AS (
           INSERT INTO task (id, template_name, template_version, batch_id, parent_task_id, title_enc,
                             state, requester_username, requester_groups, watcher_usernames,
                             watcher_groups, resolver_usernames, resolver_groups, tags, input_enc,
                             status_hook_enc, steps_total, expected_duration)
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                  cardinality($24::text[]), mutask_go_duration($17)
            WHERE $33::timestamptz IS NULL
               OR EXISTS (SELECT 1 FROM template
                           WHERE name = $2 AND version = $3 AND updated = $33 AND NOT archived)
           RETURNING created, last_activity),
         r AS (
           INSERT INTO resolution (id, task_id, resolver_username, state, run_max, next_retry,
                                   resolver_input_enc, owner_instance, claim_attempt, run_count,
                                   last_start, lease_expires)
           SELECT $18, $1, $19, $20, $21, $22, $23, $34, c.n, c.n,
                  CASE WHEN $34::uuid IS NOT NULL THEN now() END,
                  CASE WHEN $34::uuid IS NOT NULL THEN now() + make_interval(secs => $35) END
             FROM t, (SELECT CASE WHEN $34::uuid IS NULL THEN 0 ELSE 1 END AS n) c
            WHERE $18::uuid IS NOT NULL),
         s AS (
           INSERT INTO step (resolution_id, name, position, state, definition_enc)
           SELECT $18, u.* FROM unnest($24::text[], $25::int[], $26::text[], $27::bytea[]) u
            WHERE EXISTS (SELECT 1 FROM t)),
         c AS (
           INSERT INTO task_comment (id, task_id, username, body_enc)
           SELECT $28, $1, $29, $30 FROM t WHERE $28::uuid IS NOT NULL),
         n AS (SELECT pg_notify($31, $18::text) FROM t WHERE $32)
         -- a CTE that modifies nothing runs only when read: the scalar subquery reads it
         SELECT created, last_activity, (SELECT count(*) FROM n) FROM t",
    )
    .bind(task.id)
    .bind(&task.template_name)
    .bind(task.template_version)
    .bind(task.batch_id)
    .bind(task.parent_task_id)
    .bind(title_enc)
    .bind(task.state.as_str())
    .bind(&task.requester_username)
    .bind(&task.requester_groups)
    .bind(&task.watcher_usernames)
    .bind(&task.watcher_groups)
    .bind(&task.resolver_usernames)
    .bind(&task.resolver_groups)
    .bind(&task.tags)
    .bind(input_enc)
    .bind(hook_enc)
    .bind(&task.expected_duration)
    .bind(resolution.map(|r| r.id))
    .bind(resolution.and_then(|r| r.resolver_username.as_deref()))
    .bind(resolution.map(|r| r.state.as_str()))
    .bind(resolution.map(|r| r.run_max))
    .bind(resolution.and_then(|r| r.next_retry))
    .bind(sealed.as_ref().map(|s| &s.resolver_input_enc))
    .bind(sealed.as_ref().map_or(&[][..], |s| &s.names[..]))
    .bind(sealed.as_ref().map_or(&[][..], |s| &s.positions[..]))
    .bind(sealed.as_ref().map_or(&[][..], |s| &s.states[..]))
    .bind(sealed.as_ref().map_or(&[][..], |s| &s.defs[..]))
    .bind(comment.map(|c| c.id))
    .bind(comment.map(|c| c.username.as_str()))
    .bind(comment_enc)
    .bind(RESOLUTION_CHANNEL)
    .bind(claim.is_none() && resolution.is_some_and(|r| r.state == ResolutionState::ToAutorun))
    .bind(task.template_guard)
    .bind(claim.map(|c| c.owner))
    .bind(claim.map_or(0.0, |c| c.lease.as_secs_f64()))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::TemplateChanged(task.template_name.clone()))?;
    Ok(Inserted {
        created,
        last_activity,
    })
}

/// Creates a task under an idempotency key of its requester: when the key is already held (and
/// not expired), nothing is created and the task that holds it is answered instead
/// (`Ok(Err(existing))`). Concurrent creates with one key serialize on the key's primary key:
/// exactly one task is created.
pub async fn create_idempotent(
    store: &Store,
    task: &NewTask,
    resolution: Option<&resolution::NewResolution>,
    comment: Option<&comment::NewComment>,
    key: &str,
    ttl: std::time::Duration,
) -> Result<Result<Inserted, TaskId>, StoreError> {
    let mut tx = store.pool.begin().await?;
    sqlx::query(
        "DELETE FROM task_idempotency
          WHERE requester_username = $1 AND key = $2 AND expires <= now()",
    )
    .bind(&task.requester_username)
    .bind(key)
    .execute(&mut *tx)
    .await?;
    let inserted = create_in(&mut tx, store, task, resolution, comment).await?;
    let claimed = sqlx::query(
        "INSERT INTO task_idempotency (requester_username, key, task_id, expires)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))
         ON CONFLICT DO NOTHING",
    )
    .bind(&task.requester_username)
    .bind(key)
    .bind(task.id)
    .bind(ttl.as_secs_f64())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if claimed {
        tx.commit().await?;
        return Ok(Ok(inserted));
    }
    tx.rollback().await?;
    let existing: Option<TaskId> = sqlx::query_scalar(
        "SELECT task_id FROM task_idempotency WHERE requester_username = $1 AND key = $2",
    )
    .bind(&task.requester_username)
    .bind(key)
    .fetch_optional(&store.pool)
    .await?;
    existing.map(Err).ok_or_else(|| {
        StoreError::Conflict(format!(
            "idempotency key `{key}` was released while this request ran: retry"
        ))
    })
}

macro_rules! select_task {
    () => {
        "SELECT t.id, t.template_name, t.template_version, t.title_enc, t.state, t.requester_username,
        t.requester_groups, t.watcher_usernames, t.watcher_groups, t.resolver_usernames,
        t.resolver_groups, t.tags, t.input_enc, t.result_enc, t.batch_id, t.parent_task_id,
        t.steps_done, t.steps_total, t.created, t.last_activity,
        r.id AS resolution_id, r.state AS resolution_state, r.resolver_username
   FROM task t LEFT JOIN resolution r ON r.task_id = t.id"
    };
}

/// One task by id.
pub async fn get(store: &Store, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
    let row: Option<TaskRow> = sqlx::query_as(concat!(select_task!(), " WHERE t.id = $1"))
        .bind(id)
        .fetch_optional(&store.pool)
        .await?;
    row.map(|r| r.open(&store.keys)).transpose()
}

/// Number of tasks (all states).
pub async fn count(store: &Store) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM task")
        .fetch_one(&store.pool)
        .await?)
}

/// Creates an empty batch.
pub async fn create_batch(store: &Store) -> Result<BatchId, StoreError> {
    let id = BatchId::new();
    sqlx::query("INSERT INTO batch (id) VALUES ($1)")
        .bind(id)
        .execute(&store.pool)
        .await?;
    Ok(id)
}

/// Number of tasks of a batch, and how many are not finished (not DONE/WONTFIX/CANCELLED).
pub async fn batch_progress(store: &Store, batch: BatchId) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE state NOT IN ('DONE', 'WONTFIX', 'CANCELLED'))
           FROM task WHERE batch_id = $1",
    )
    .bind(batch)
    .fetch_one(&store.pool)
    .await?)
}

/// Ids of the tasks of a batch, oldest first.
pub async fn batch_tasks(store: &Store, batch: BatchId) -> Result<Vec<TaskId>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM task WHERE batch_id = $1 ORDER BY created, id")
            .bind(batch)
            .fetch_all(&store.pool)
            .await?,
    )
}

/// Deletes the finished tasks (DONE, CANCELLED, WONTFIX) whose last activity is older than
/// `older_than`, with everything that cascades from them (resolution, steps, comments,
/// callbacks, step logs): `batch` at a time, oldest first, each batch its own short statement,
/// until none is left or `stop` is cancelled. Rows another instance is deleting at the same
/// time are skipped. Returns how many were deleted.
pub async fn collect_garbage(
    store: &Store,
    older_than: std::time::Duration,
    batch: i64,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<u64, StoreError> {
    let mut total = 0;
    while !stop.is_cancelled() {
        let n = sqlx::query(
            "DELETE FROM task WHERE id IN (
                SELECT id FROM task
                 WHERE state IN ('DONE', 'CANCELLED', 'WONTFIX')
                   AND last_activity < now() - make_interval(secs => $1)
                 ORDER BY last_activity LIMIT $2
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(older_than.as_secs_f64())
        .bind(batch)
        .execute(&store.pool)
        .await?
        .rows_affected();
        total += n;
        if n < batch as u64 {
            break;
        }
    }
    Ok(total)
}

/// Deletes batches that have had no task for an hour.
pub async fn collect_empty_batches(store: &Store) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM batch b WHERE NOT EXISTS (SELECT 1 FROM task t WHERE t.batch_id = b.id)
                 AND b.created < now() - interval '1 hour'",
    )
    .execute(&store.pool)
    .await?
    .rows_affected())
}

/// The status hook of a task (`{url, secret?}`), if it has one.
pub async fn status_hook(store: &Store, id: TaskId) -> Result<Option<Value>, StoreError> {
    let enc: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT status_hook_enc FROM task WHERE id = $1")
            .bind(id)
            .fetch_optional(&store.pool)
            .await?;
    match enc.flatten() {
        Some(e) => Ok(Some(
            store
                .keys
                .open_json(aad("status_hook_enc", &id.to_string()), &e)?,
        )),
        None => Ok(None),
    }
}
