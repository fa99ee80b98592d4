//! `task_comment`: comments on a task; bodies are sealed (AAD `task_comment.body_enc.<id>`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::crypto::{Aad, KeyRing};
use crate::domain::{CommentId, TaskId};

use super::{Store, StoreError};

fn aad(row: &str) -> Aad<'_> {
    Aad {
        table: "task_comment",
        column: "body_enc",
        row,
    }
}

/// A comment to insert.
#[derive(Debug, Clone)]
pub struct NewComment {
    pub id: CommentId,
    pub task_id: TaskId,
    pub username: String,
    pub body: String,
}

/// A stored comment, body opened.
#[derive(Debug, Clone)]
pub struct CommentRecord {
    pub id: CommentId,
    pub task_id: TaskId,
    pub username: String,
    pub body: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// Inserts a comment inside an open transaction.
pub async fn insert(
    conn: &mut PgConnection,
    keys: &KeyRing,
    c: &NewComment,
) -> Result<(), StoreError> {
    let row = c.id.to_string();
    let body_enc = keys.seal(aad(&row), c.body.as_bytes())?;
    sqlx::query(
        "INSERT INTO task_comment (id, task_id, username, body_enc) VALUES ($1, $2, $3, $4)",
    )
    .bind(c.id)
    .bind(c.task_id)
    .bind(&c.username)
    .bind(body_enc)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Comments of a task, oldest first.
pub async fn list(store: &Store, task: TaskId) -> Result<Vec<CommentRecord>, StoreError> {
    type Row = (
        CommentId,
        TaskId,
        String,
        Vec<u8>,
        DateTime<Utc>,
        DateTime<Utc>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, task_id, username, body_enc, created, updated FROM task_comment
         WHERE task_id = $1 ORDER BY created, id",
    )
    .bind(task)
    .fetch_all(&store.pool)
    .await?;
    rows.into_iter()
        .map(|(id, task_id, username, enc, created, updated)| {
            let row = id.to_string();
            let body = String::from_utf8(store.keys.open(aad(&row), &enc)?)
                .map_err(|_| StoreError::Corrupt(format!("comment {row} is not UTF-8")))?;
            Ok(CommentRecord {
                id,
                task_id,
                username,
                body,
                created,
                updated,
            })
        })
        .collect()
}
