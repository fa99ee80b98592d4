//! Read-only aggregates for `GET /metrics`: counts by state, computed at scrape time.
//!
//! Invariant: only `count(*) … GROUP BY` over indexed or small columns; nothing sealed is read,
//! so no key is needed and no secret can leak into a metric.

use super::{Store, StoreError};

/// Aggregates of one scrape.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    /// (task state, template name, count)
    pub tasks: Vec<(String, String, i64)>,
    /// (resolution state, count)
    pub resolutions: Vec<(String, i64)>,
    /// Resolutions claimable now (the claim query's condition: the queue depth).
    pub claimable: i64,
    /// Instances whose heartbeat is at most a minute old.
    pub instances_alive: i64,
}

/// Reads the aggregates in one repeatable-read snapshot.
pub async fn snapshot(store: &Store) -> Result<Snapshot, StoreError> {
    let mut tx = store.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let tasks = sqlx::query_as(
        "SELECT state, template_name, count(*) FROM task GROUP BY state, template_name \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *tx)
    .await?;
    let resolutions =
        sqlx::query_as("SELECT state, count(*) FROM resolution GROUP BY state ORDER BY 1")
            .fetch_all(&mut *tx)
            .await?;
    let claimable = sqlx::query_scalar(
        "SELECT count(*) FROM resolution \
          WHERE state IN ('TO_AUTORUN', 'TO_AUTORUN_DELAYED', 'RETRY', 'ERROR', 'WAITING', 'CRASHED') \
            AND (state IN ('TO_AUTORUN', 'CRASHED') \
                 OR (next_retry <= now() \
                     AND (state <> 'WAITING' OR next_retry > coalesce(last_start, '-infinity'))))",
    )
    .fetch_one(&mut *tx)
    .await?;
    let instances_alive = sqlx::query_scalar(
        "SELECT count(*) FROM instance WHERE heartbeat > now() - interval '1 minute'",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Snapshot {
        tasks,
        resolutions,
        claimable,
        instances_alive,
    })
}
