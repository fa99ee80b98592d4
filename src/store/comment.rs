//! `task_comment`: comments on a task; bodies are sealed (AAD `task_comment.body_enc.<id>`).
//!
//! Every read and write names the task as well as the comment, so a comment id never reaches
//! another task's comment; edits by a non-admin are guarded by the author in the same statement.

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
    let body_enc = seal(keys, c)?;
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

/// The sealed body of a new comment (also written by the task creation statement).
pub(super) fn seal(keys: &KeyRing, c: &NewComment) -> Result<Vec<u8>, StoreError> {
    Ok(keys.seal(aad(&c.id.to_string()), c.body.as_bytes())?)
}

/// Comments of a task, oldest first.
pub async fn list(store: &Store, task: TaskId) -> Result<Vec<CommentRecord>, StoreError> {
    let rows: Vec<CommentRow> = sqlx::query_as(
        "SELECT id, task_id, username, body_enc, created, updated FROM task_comment
         WHERE task_id = $1 ORDER BY created, id",
    )
    .bind(task)
    .fetch_all(&store.pool)
    .await?;
    rows.into_iter().map(|r| open_row(store, r)).collect()
}

type CommentRow = (
    CommentId,
    TaskId,
    String,
    Vec<u8>,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn open_row(store: &Store, r: CommentRow) -> Result<CommentRecord, StoreError> {
    let (id, task_id, username, enc, created, updated) = r;
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
}

/// One comment of a task (`None` when it does not exist or belongs to another task).
pub async fn get(
    store: &Store,
    task: TaskId,
    id: CommentId,
) -> Result<Option<CommentRecord>, StoreError> {
    let row: Option<CommentRow> = sqlx::query_as(
        "SELECT id, task_id, username, body_enc, created, updated FROM task_comment
         WHERE id = $1 AND task_id = $2",
    )
    .bind(id)
    .bind(task)
    .fetch_optional(&store.pool)
    .await?;
    row.map(|r| open_row(store, r)).transpose()
}

/// Adds a comment (its own transaction).
pub async fn create(store: &Store, c: &NewComment) -> Result<(), StoreError> {
    let mut conn = store.pool.acquire().await?;
    insert(&mut conn, &store.keys, c).await
}

/// Replaces a comment's body; `author` (when given) must be its author. False when no such
/// comment of that task (and author) exists.
pub async fn update(
    store: &Store,
    task: TaskId,
    id: CommentId,
    author: Option<&str>,
    body: &str,
) -> Result<bool, StoreError> {
    let row = id.to_string();
    let body_enc = store.keys.seal(aad(&row), body.as_bytes())?;
    let n = sqlx::query(
        "UPDATE task_comment SET body_enc = $4, updated = now()
         WHERE id = $1 AND task_id = $2 AND ($3::text IS NULL OR username = $3)",
    )
    .bind(id)
    .bind(task)
    .bind(author)
    .bind(body_enc)
    .execute(&store.pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Deletes a comment; `author` (when given) must be its author. False when nothing matched.
pub async fn delete(
    store: &Store,
    task: TaskId,
    id: CommentId,
    author: Option<&str>,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "DELETE FROM task_comment WHERE id = $1 AND task_id = $2 AND ($3::text IS NULL OR username = $3)",
    )
    .bind(id)
    .bind(task)
    .bind(author)
    .execute(&store.pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}
