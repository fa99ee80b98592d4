//! `schedule` and `schedule_run`: schedules and every occurrence they handled.
//!
//! Invariant (exactly once across instances): an occurrence is handled by [`fire`], one
//! transaction whose first statement is the guarded `UPDATE schedule … WHERE next_fire = <the
//! occurrence>`; a second instance handling the same occurrence finds `next_fire` already moved
//! and does nothing. The occurrence row (primary key) and the task are written in that same
//! transaction. Inputs are sealed (`schedule.input_enc.<id>`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::crypto::Aad;

use super::{Store, StoreError, comment, resolution, task};

/// A schedule, inputs opened.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    pub id: Uuid,
    pub name: String,
    pub template_name: String,
    pub when: String,
    pub suspend: Vec<String>,
    pub missed: String,
    pub overlap: String,
    pub paused: bool,
    pub anchor: DateTime<Utc>,
    pub next_fire: Option<DateTime<Utc>>,
    pub last_fire: Option<DateTime<Utc>>,
    pub last_task: Option<Uuid>,
    pub created_by: String,
    pub input: Value,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    template_name: String,
    spec: String,
    suspend: Vec<String>,
    missed: String,
    overlap: String,
    paused: bool,
    anchor: DateTime<Utc>,
    next_fire: Option<DateTime<Utc>>,
    last_fire: Option<DateTime<Utc>>,
    last_task: Option<Uuid>,
    created_by: String,
    input_enc: Vec<u8>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

fn aad(row: &str) -> Aad<'_> {
    Aad {
        table: "schedule",
        column: "input_enc",
        row,
    }
}

impl Row {
    fn open(self, store: &Store) -> Result<ScheduleRecord, StoreError> {
        let id = self.id.to_string();
        let input = store.keys.open_json(aad(&id), &self.input_enc)?;
        Ok(ScheduleRecord {
            id: self.id,
            name: self.name,
            template_name: self.template_name,
            when: self.spec,
            suspend: self.suspend,
            missed: self.missed,
            overlap: self.overlap,
            paused: self.paused,
            anchor: self.anchor,
            next_fire: self.next_fire,
            last_fire: self.last_fire,
            last_task: self.last_task,
            created_by: self.created_by,
            input,
            created: self.created,
            updated: self.updated,
        })
    }
}

macro_rules! columns {
    () => {
        "id, name, template_name, spec, suspend, missed, overlap, paused, anchor, \
         next_fire, last_fire, last_task, created_by, input_enc, created, updated"
    };
}

/// What a schedule is (create or full update).
#[derive(Debug, Clone)]
pub struct ScheduleDef<'a> {
    pub name: &'a str,
    pub template_name: &'a str,
    pub when: &'a str,
    pub suspend: &'a [String],
    pub missed: &'a str,
    pub overlap: &'a str,
    pub paused: bool,
    pub input: &'a Value,
    pub next_fire: Option<DateTime<Utc>>,
    pub anchor: DateTime<Utc>,
}

/// Creates a schedule; a taken name is a conflict.
pub async fn create(
    store: &Store,
    def: &ScheduleDef<'_>,
    created_by: &str,
) -> Result<ScheduleRecord, StoreError> {
    let id = Uuid::now_v7();
    let input_enc = store.keys.seal_json(aad(&id.to_string()), def.input)?;
    let row: Result<Row, sqlx::Error> = sqlx::query_as(concat!(
        "INSERT INTO schedule (id, name, template_name, spec, suspend, missed, overlap, paused,
                               anchor, next_fire, created_by, input_enc)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(def.name)
    .bind(def.template_name)
    .bind(def.when)
    .bind(def.suspend)
    .bind(def.missed)
    .bind(def.overlap)
    .bind(def.paused)
    .bind(def.anchor)
    .bind(def.next_fire)
    .bind(created_by)
    .bind(input_enc)
    .fetch_one(&store.pool)
    .await;
    match row {
        Ok(r) => r.open(store),
        Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23505") => Err(
            StoreError::Conflict(format!("a schedule named `{}` exists", def.name)),
        ),
        Err(e) => Err(e.into()),
    }
}

/// Replaces what a schedule is (by id); `false` when it no longer exists.
pub async fn update(store: &Store, id: Uuid, def: &ScheduleDef<'_>) -> Result<bool, StoreError> {
    let input_enc = store.keys.seal_json(aad(&id.to_string()), def.input)?;
    Ok(sqlx::query(
        "UPDATE schedule SET template_name = $2, spec = $3, suspend = $4, missed = $5,
                overlap = $6, paused = $7, anchor = $8, next_fire = $9, input_enc = $10,
                updated = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(def.template_name)
    .bind(def.when)
    .bind(def.suspend)
    .bind(def.missed)
    .bind(def.overlap)
    .bind(def.paused)
    .bind(def.anchor)
    .bind(def.next_fire)
    .bind(input_enc)
    .execute(&store.pool)
    .await?
    .rows_affected()
        == 1)
}

/// Pauses (`next_fire` kept for the record) or resumes (with a recomputed `next_fire`).
pub async fn set_paused(
    store: &Store,
    id: Uuid,
    paused: bool,
    next_fire: Option<DateTime<Utc>>,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE schedule SET paused = $2, next_fire = coalesce($3, next_fire), updated = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(paused)
    .bind(next_fire)
    .execute(&store.pool)
    .await?
    .rows_affected()
        == 1)
}

pub async fn delete(store: &Store, id: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query("DELETE FROM schedule WHERE id = $1")
        .bind(id)
        .execute(&store.pool)
        .await?
        .rows_affected()
        == 1)
}

pub async fn get(store: &Store, name: &str) -> Result<Option<ScheduleRecord>, StoreError> {
    let row: Option<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM schedule WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(&store.pool)
    .await?;
    row.map(|r| r.open(store)).transpose()
}

pub async fn list(store: &Store) -> Result<Vec<ScheduleRecord>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM schedule ORDER BY name"
    ))
    .fetch_all(&store.pool)
    .await?;
    rows.into_iter().map(|r| r.open(store)).collect()
}

/// Schedules whose next occurrence is due at `now` (oldest first).
pub async fn due(
    store: &Store,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ScheduleRecord>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM schedule WHERE NOT paused AND next_fire <= $1 ORDER BY next_fire, id LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(&store.pool)
    .await?;
    rows.into_iter().map(|r| r.open(store)).collect()
}

/// True when the task exists and is not finished (DONE, CANCELLED, WONTFIX).
pub async fn task_running(store: &Store, task: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM task WHERE id = $1
                          AND state NOT IN ('DONE', 'CANCELLED', 'WONTFIX'))",
    )
    .bind(task)
    .fetch_one(&store.pool)
    .await?)
}

/// One handled occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Fired,
    SkippedMissed,
    SkippedOverlap,
    SkippedSuspended,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Fired => "fired",
            Outcome::SkippedMissed => "skipped_missed",
            Outcome::SkippedOverlap => "skipped_overlap",
            Outcome::SkippedSuspended => "skipped_suspended",
            Outcome::Failed => "failed",
        }
    }
}

/// The task a firing creates.
pub struct FireTask<'a> {
    pub task: &'a task::NewTask,
    pub resolution: Option<&'a resolution::NewResolution>,
    pub comment: Option<&'a comment::NewComment>,
}

/// Handles one occurrence: moves `next_fire` from `occurrence` to `next` (guarded), records the
/// outcome, and creates the task when there is one — all in one transaction. `false` when
/// another instance handled the occurrence first (nothing written).
pub async fn fire(
    store: &Store,
    id: Uuid,
    occurrence: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    outcome: Outcome,
    detail: Option<&str>,
    task: Option<FireTask<'_>>,
) -> Result<bool, StoreError> {
    let mut tx = store.pool.begin().await?;
    let task_id = task.as_ref().map(|t| t.task.id);
    let moved = sqlx::query(
        "UPDATE schedule SET next_fire = $3, last_fire = $2,
                last_task = coalesce($4, last_task), updated = now()
          WHERE id = $1 AND next_fire = $2 AND NOT paused",
    )
    .bind(id)
    .bind(occurrence)
    .bind(next)
    .bind(task_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO schedule_run (schedule_id, occurrence, outcome, task_id, detail)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(occurrence)
    .bind(outcome.as_str())
    .bind(task_id)
    .bind(detail)
    .execute(&mut *tx)
    .await?;
    if let Some(t) = task {
        task::create_in(&mut tx, store, t.task, t.resolution, t.comment).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// A recorded occurrence.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct RunRecord {
    pub occurrence: DateTime<Utc>,
    pub outcome: String,
    pub task_id: Option<Uuid>,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// The latest occurrences of a schedule, newest first.
pub async fn runs(store: &Store, id: Uuid, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT occurrence, outcome, task_id, detail, at FROM schedule_run
          WHERE schedule_id = $1 ORDER BY occurrence DESC LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(&store.pool)
    .await?)
}

/// The earliest next occurrence of an active schedule (the ticker sleeps until then).
pub async fn earliest(store: &Store) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT min(next_fire) FROM schedule WHERE NOT paused")
            .fetch_one(&store.pool)
            .await?,
    )
}
