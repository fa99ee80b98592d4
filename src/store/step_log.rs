//! `step_log`: the lines an execution of a step printed, in sealed chunks (AAD
//! `step_log.lines_enc.<resolution>/<step>/<execution>/<chunk>`). Written by the engine's log
//! writer ([`crate::engine::logs`]); read by `GET /resolution/{id}/step/{name}/log`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::Aad;
use crate::domain::ResolutionId;

use super::{Store, StoreError};

/// One line of a step's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// When it was printed.
    pub at: DateTime<Utc>,
    /// `stdout`, `stderr`, `http`, `progress` or `system`.
    pub stream: String,
    pub text: String,
}

/// A stored chunk, opened.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub execution: i32,
    pub chunk: i32,
    pub lines: Vec<Line>,
}

fn row(res: ResolutionId, step: &str, execution: i32, chunk: i32) -> String {
    format!("{res}/{step}/{execution}/{chunk}")
}

fn aad(row: &str) -> Aad<'_> {
    Aad {
        table: "step_log",
        column: "lines_enc",
        row,
    }
}

/// Appends one chunk of lines.
pub async fn append(
    store: &Store,
    res: ResolutionId,
    step: &str,
    execution: i32,
    chunk: i32,
    lines: &[Line],
) -> Result<(), StoreError> {
    let r = row(res, step, execution, chunk);
    let sealed = store.keys.seal_json(aad(&r), lines)?;
    sqlx::query(
        "INSERT INTO step_log (resolution_id, step_name, execution, chunk, lines_enc)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(res)
    .bind(step)
    .bind(execution)
    .bind(chunk)
    .bind(sealed)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// The executions of a step that have a log, oldest first.
pub async fn executions(
    store: &Store,
    res: ResolutionId,
    step: &str,
) -> Result<Vec<i32>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT execution FROM step_log WHERE resolution_id = $1 AND step_name = $2
          ORDER BY execution",
    )
    .bind(res)
    .bind(step)
    .fetch_all(&store.pool)
    .await?)
}

/// The chunks of one execution after chunk number `after` (all when `None`), in order.
pub async fn read(
    store: &Store,
    res: ResolutionId,
    step: &str,
    execution: i32,
    after: Option<i32>,
) -> Result<Vec<Chunk>, StoreError> {
    let rows: Vec<(i32, Vec<u8>)> = sqlx::query_as(
        "SELECT chunk, lines_enc FROM step_log
          WHERE resolution_id = $1 AND step_name = $2 AND execution = $3 AND chunk > $4
          ORDER BY chunk LIMIT 1000",
    )
    .bind(res)
    .bind(step)
    .bind(execution)
    .bind(after.unwrap_or(-1))
    .fetch_all(&store.pool)
    .await?;
    rows.into_iter()
        .map(|(chunk, enc)| {
            let r = row(res, step, execution, chunk);
            Ok(Chunk {
                execution,
                chunk,
                lines: store.keys.open_json(aad(&r), &enc)?,
            })
        })
        .collect()
}

/// Drops the logs of executions before `keep_from` (a step keeps its last executions only).
pub async fn prune_executions(
    store: &Store,
    res: ResolutionId,
    step: &str,
    keep_from: i32,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM step_log WHERE resolution_id = $1 AND step_name = $2 AND execution < $3",
    )
    .bind(res)
    .bind(step)
    .bind(keep_from)
    .execute(&store.pool)
    .await?
    .rows_affected())
}

/// Drops log chunks older than `age` (at most `limit` per call).
pub async fn collect(
    store: &Store,
    age: std::time::Duration,
    limit: i64,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM step_log WHERE ctid IN (
            SELECT ctid FROM step_log WHERE created < now() - make_interval(secs => $1) LIMIT $2)",
    )
    .bind(age.as_secs_f64())
    .bind(limit)
    .execute(&store.pool)
    .await?
    .rows_affected())
}

/// The state of one step (text), if the step exists.
pub async fn step_state(
    store: &Store,
    res: ResolutionId,
    step: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT state FROM step WHERE resolution_id = $1 AND name = $2")
            .bind(res)
            .bind(step)
            .fetch_optional(&store.pool)
            .await?,
    )
}

/// A step's state together with its resolution's, for a live log follower deciding whether
/// more output can still come. `None` when the step does not exist.
pub async fn follow_states(
    store: &Store,
    res: ResolutionId,
    step: &str,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT s.state, r.state FROM step s JOIN resolution r ON r.id = s.resolution_id \
         WHERE s.resolution_id = $1 AND s.name = $2",
    )
    .bind(res)
    .bind(step)
    .fetch_optional(&store.pool)
    .await?)
}
