//! `instance`: running mutask processes and their heartbeats.
//!
//! Each process registers at startup and refreshes `heartbeat` periodically; an instance whose
//! heartbeat is older than the configured limit is considered dead by the others (crash recovery
//! in the engine uses this). A clean shutdown deletes the row.

use crate::domain::InstanceId;

use super::{Store, StoreError};

/// Registers this process. `notifies`: it sends notifications (it runs the engine and has a
/// notification backend); while such an instance is registered, every task change is recorded
/// as a `task_event` for it (otherwise only the changes of tasks with a status hook are).
pub async fn register(
    store: &Store,
    id: InstanceId,
    role: &str,
    notifies: bool,
) -> Result<(), StoreError> {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO instance (id, hostname, pid, version, role, notifies)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(host)
    .bind(std::process::id() as i32)
    .bind(env!("CARGO_PKG_VERSION"))
    .bind(role)
    .bind(notifies)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Refreshes the heartbeat; re-registers if another instance removed the row as dead.
pub async fn heartbeat(
    store: &Store,
    id: InstanceId,
    role: &str,
    notifies: bool,
) -> Result<(), StoreError> {
    // the same statement keeps this instance's keys seen, and never retired (see `super::keys`)
    let keys: Vec<&str> = store.keys.key_ids();
    let n = sqlx::query(
        "WITH seen AS (UPDATE encryption_key SET last_seen = now(), retired_at = NULL
                        WHERE id = ANY($2)
                          AND (last_seen < now() - interval '60 seconds' OR retired_at IS NOT NULL))
         UPDATE instance SET heartbeat = now() WHERE id = $1",
    )
    .bind(id)
    .bind(keys)
    .execute(&store.pool)
    .await?
    .rows_affected();
    if n == 0 {
        register(store, id, role, notifies).await?;
    }
    Ok(())
}

/// Removes this instance's row (clean shutdown).
pub async fn deregister(store: &Store, id: InstanceId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM instance WHERE id = $1")
        .bind(id)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Number of instances whose heartbeat is recent.
pub async fn count_alive(store: &Store, max_age_secs: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM instance WHERE heartbeat > now() - make_interval(secs => $1)",
    )
    .bind(max_age_secs as f64)
    .fetch_one(&store.pool)
    .await?)
}

/// Removes instance rows whose heartbeat is older than `max_age` (dead instances; their
/// resolutions are recovered through lease expiry).
pub async fn forget_dead(store: &Store, max_age: std::time::Duration) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM instance WHERE heartbeat < now() - make_interval(secs => $1)")
            .bind(max_age.as_secs_f64())
            .execute(&store.pool)
            .await?
            .rows_affected(),
    )
}
