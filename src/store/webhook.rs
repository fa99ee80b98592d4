//! `webhook` and `webhook_delivery`: inbound webhooks and the deliveries they accepted.
//!
//! Invariants: the secret is sealed (`webhook.secret_enc.<id>`) and never leaves this module
//! except to verify a delivery; a delivery id is accepted once per webhook (primary key), in the
//! same transaction as the task it creates — a replay creates nothing.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::crypto::Aad;

use super::{Store, StoreError, comment, resolution, task};

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRecord {
    pub id: Uuid,
    pub name: String,
    pub template_name: String,
    pub auth: String,
    pub header: String,
    pub timestamp_header: Option<String>,
    pub replay_window: i32,
    pub input_map: Value,
    pub created_by: String,
    pub secret: Vec<u8>,
    pub created: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    template_name: String,
    auth: String,
    header: String,
    timestamp_header: Option<String>,
    replay_window: i32,
    input_map: Value,
    created_by: String,
    secret_enc: Vec<u8>,
    created: DateTime<Utc>,
}

fn aad(row: &str) -> Aad<'_> {
    Aad {
        table: "webhook",
        column: "secret_enc",
        row,
    }
}

impl Row {
    fn open(self, store: &Store) -> Result<WebhookRecord, StoreError> {
        let secret = store
            .keys
            .open(aad(&self.id.to_string()), &self.secret_enc)?;
        Ok(WebhookRecord {
            id: self.id,
            name: self.name,
            template_name: self.template_name,
            auth: self.auth,
            header: self.header,
            timestamp_header: self.timestamp_header,
            replay_window: self.replay_window,
            input_map: self.input_map,
            created_by: self.created_by,
            secret,
            created: self.created,
        })
    }
}

macro_rules! columns {
    () => {
        "id, name, template_name, auth, header, timestamp_header, replay_window, input_map, \
         created_by, secret_enc, created"
    };
}

/// A webhook to create.
#[derive(Debug, Clone)]
pub struct NewWebhook<'a> {
    pub name: &'a str,
    pub template_name: &'a str,
    pub auth: &'a str,
    pub header: &'a str,
    pub timestamp_header: Option<&'a str>,
    pub replay_window: i32,
    pub input_map: &'a Value,
    pub secret: &'a [u8],
}

pub async fn create(
    store: &Store,
    w: &NewWebhook<'_>,
    created_by: &str,
) -> Result<WebhookRecord, StoreError> {
    let id = Uuid::now_v7();
    let secret_enc = store.keys.seal(aad(&id.to_string()), w.secret)?;
    let row: Result<Row, sqlx::Error> = sqlx::query_as(concat!(
        "INSERT INTO webhook (id, name, template_name, auth, header, timestamp_header,
                              replay_window, input_map, created_by, secret_enc)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(w.name)
    .bind(w.template_name)
    .bind(w.auth)
    .bind(w.header)
    .bind(w.timestamp_header)
    .bind(w.replay_window)
    .bind(w.input_map)
    .bind(created_by)
    .bind(secret_enc)
    .fetch_one(&store.pool)
    .await;
    match row {
        Ok(r) => r.open(store),
        Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23505") => Err(
            StoreError::Conflict(format!("a webhook named `{}` exists", w.name)),
        ),
        Err(e) => Err(e.into()),
    }
}

pub async fn get(store: &Store, name: &str) -> Result<Option<WebhookRecord>, StoreError> {
    let row: Option<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM webhook WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(&store.pool)
    .await?;
    row.map(|r| r.open(store)).transpose()
}

pub async fn list(store: &Store) -> Result<Vec<WebhookRecord>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM webhook ORDER BY name"
    ))
    .fetch_all(&store.pool)
    .await?;
    rows.into_iter().map(|r| r.open(store)).collect()
}

pub async fn delete(store: &Store, id: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query("DELETE FROM webhook WHERE id = $1")
        .bind(id)
        .execute(&store.pool)
        .await?
        .rows_affected()
        == 1)
}

/// Records a delivery and creates its task in one transaction (what [`task::create`] answers);
/// `None` (nothing written) when the delivery id was already received. Deliveries older than a
/// day, or than the replay window when longer, are forgotten first.
pub async fn deliver(
    store: &Store,
    webhook: &WebhookRecord,
    delivery: &str,
    t: &task::NewTask,
    resolution: Option<&resolution::NewResolution>,
    comment: Option<&comment::NewComment>,
) -> Result<Option<task::Inserted>, StoreError> {
    let mut tx = store.pool.begin().await?;
    sqlx::query(
        "DELETE FROM webhook_delivery
          WHERE webhook_id = $1
            AND received < now() - make_interval(secs => greatest($2::int, 86400))",
    )
    .bind(webhook.id)
    .bind(webhook.replay_window)
    .execute(&mut *tx)
    .await?;
    let fresh = sqlx::query(
        "INSERT INTO webhook_delivery (webhook_id, delivery, task_id) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(webhook.id)
    .bind(delivery)
    .bind(t.id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(None);
    }
    let at = task::create_in(&mut tx, store, t, resolution, comment).await?;
    tx.commit().await?;
    Ok(Some(at))
}
