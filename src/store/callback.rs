//! `callback`: tokenized URLs that resume a waiting step. The secret, the body schema and the
//! received body are sealed (AAD `callback.<column>.<id>`). Recording a call is a guarded UPDATE
//! (`called IS NULL`), so a callback is consumed once, and it wakes the resolution in the same
//! transaction.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::crypto::Aad;
use crate::domain::{ResolutionId, TaskId};

use super::{Store, StoreError};

fn aad<'a>(column: &'a str, row: &'a str) -> Aad<'a> {
    Aad {
        table: "callback",
        column,
        row,
    }
}

/// A stored callback, sealed columns opened.
#[derive(Debug, Clone)]
pub struct CallbackRecord {
    pub id: uuid::Uuid,
    pub task_id: TaskId,
    pub resolution_id: ResolutionId,
    pub step_name: String,
    pub created: DateTime<Utc>,
    pub called: Option<DateTime<Utc>>,
    pub secret: String,
    pub schema: Option<Value>,
    pub body: Option<Value>,
}

/// Stores a new callback.
pub async fn create(
    store: &Store,
    id: uuid::Uuid,
    task: TaskId,
    resolution: ResolutionId,
    step: &str,
    secret: &str,
    schema: Option<&Value>,
) -> Result<(), StoreError> {
    let row = id.to_string();
    let secret_enc = store
        .keys
        .seal(aad("secret_enc", &row), secret.as_bytes())?;
    let schema_enc = match schema {
        Some(s) => Some(store.keys.seal_json(aad("schema_enc", &row), s)?),
        None => None,
    };
    sqlx::query(
        "INSERT INTO callback (id, task_id, resolution_id, step_name, secret_enc, schema_enc)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(task)
    .bind(resolution)
    .bind(step)
    .bind(secret_enc)
    .bind(schema_enc)
    .execute(&store.pool)
    .await?;
    Ok(())
}

type Row = (
    uuid::Uuid,
    TaskId,
    ResolutionId,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

/// One callback by id.
pub async fn get(store: &Store, id: uuid::Uuid) -> Result<Option<CallbackRecord>, StoreError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, task_id, resolution_id, step_name, created, called, secret_enc, schema_enc, body_enc
           FROM callback WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&store.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let key = r.0.to_string();
    let secret = String::from_utf8(store.keys.open(aad("secret_enc", &key), &r.6)?)
        .map_err(|_| StoreError::Corrupt(format!("callback {key}: secret is not UTF-8")))?;
    let schema = match &r.7 {
        Some(b) => Some(store.keys.open_json(aad("schema_enc", &key), b)?),
        None => None,
    };
    let body = match &r.8 {
        Some(b) => Some(store.keys.open_json(aad("body_enc", &key), b)?),
        None => None,
    };
    Ok(Some(CallbackRecord {
        id: r.0,
        task_id: r.1,
        resolution_id: r.2,
        step_name: r.3,
        created: r.4,
        called: r.5,
        secret,
        schema,
        body,
    }))
}

/// Records the call (once) and wakes the resolution when its task waits, runs or is blocked.
/// Returns false when the callback was already called.
pub async fn record_call(store: &Store, id: uuid::Uuid, body: &Value) -> Result<bool, StoreError> {
    let mut tx = store.pool.begin().await?;
    let body_enc = store
        .keys
        .seal_json(aad("body_enc", &id.to_string()), body)?;
    let res: Option<ResolutionId> = sqlx::query_scalar(
        "UPDATE callback SET called = now(), body_enc = $2 WHERE id = $1 AND called IS NULL RETURNING resolution_id",
    )
    .bind(id)
    .bind(body_enc)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(res) = res else { return Ok(false) };
    static WAKE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE resolution r SET next_retry = {}, updated = now()
               FROM task t
              WHERE r.id = $1 AND t.id = r.task_id AND t.state IN ('BLOCKED', 'RUNNING', 'WAITING')
                AND r.state NOT IN ('CRASHED', 'PAUSED', 'CANCELLED', 'DONE')
             RETURNING r.id",
            super::resolution::woken_next_retry("r")
        )
    });
    let woken: Option<ResolutionId> = sqlx::query_scalar(WAKE.as_str())
        .bind(res)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(w) = woken {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(super::task::RESOLUTION_CHANNEL)
            .bind(w.to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}
