//! Task comments: `POST|GET /task/{id}/comment`, `GET|PUT|DELETE /task/{id}/comment/{commentid}`.
//!
//! Reading and adding take an admin, the requester, a watcher or a resolution manager; editing
//! and deleting take the author or an admin (the author check is part of the guarded statement).
//! Bodies (`content`, µTask's field) are 1 to 10,000 characters and sealed by the store; a
//! comment is always addressed through its task, so a comment id of another task is a 404.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::error::ErrorBody;
use super::resolution::{is_manager, is_requester_or_watcher, load_task, parse_id};
use super::{ApiError, AppState, Caller, FieldError};
use crate::domain::{CommentId, TaskId};
use crate::store::{
    self,
    comment::{CommentRecord, NewComment},
};
use crate::tasks::MAX_COMMENT_CHARS;

/// Body of `POST` and `PUT` on comments.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CommentBody {
    /// The text: 1 to 10,000 characters (422 otherwise).
    #[serde(default)]
    #[schema(example = "Deployed by hand, see the ticket.")]
    pub content: Option<String>,
}

/// A comment as answered by the comment routes (OpenAPI schema of the handlers' answers).
#[derive(utoipa::ToSchema)]
pub struct Comment {
    pub id: uuid::Uuid,
    pub task_id: uuid::Uuid,
    /// The author.
    pub username: String,
    pub content: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub updated: chrono::DateTime<chrono::Utc>,
}

fn comment_json(c: &CommentRecord) -> Value {
    json!({
        "id": c.id,
        "task_id": c.task_id,
        "username": c.username,
        "content": c.body,
        "created": c.created,
        "updated": c.updated,
    })
}

fn content(body: CommentBody) -> Result<String, ApiError> {
    let text = body.content.unwrap_or_default();
    let problem = if text.trim().is_empty() {
        Some("a comment needs a non-empty `content`".to_string())
    } else if text.chars().count() > MAX_COMMENT_CHARS {
        Some(format!("longer than {MAX_COMMENT_CHARS} characters"))
    } else {
        None
    };
    match problem {
        Some(message) => Err(ApiError::Invalid {
            message: format!("content: {message}"),
            fields: vec![FieldError {
                field: "content".into(),
                message,
            }],
        }),
        None => Ok(text),
    }
}

/// Loads the task and checks the caller may read (and add) its comments.
async fn readable_task(state: &AppState, caller: &Caller, raw: &str) -> Result<TaskId, ApiError> {
    let id: TaskId = parse_id(raw, "task")?;
    let (task, template) = load_task(state, id).await?;
    if caller.is_admin
        || is_requester_or_watcher(caller, &task)
        || is_manager(caller, &task, &template)
    {
        Ok(id)
    } else {
        Err(ApiError::Forbidden(
            "you may not read or add comments on this task".into(),
        ))
    }
}

/// Adds a comment to a task (admin, requester, watcher or resolution manager).
#[utoipa::path(
    post,
    path = "/task/{id}/comment",
    tag = "comment",
    operation_id = "create_comment",
    params(("id" = uuid::Uuid, Path, description = "Task id.")),
    request_body(description = "The comment (JSON or YAML).", content((CommentBody = "application/json"), (CommentBody = "application/x-yaml"))),
    responses(
        (status = 201, description = "The comment.", body = Comment),
        (status = 400, description = "Malformed id or body.", body = ErrorBody),
        (status = 403, description = "The caller may not comment on this task.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
        (status = 422, description = "Empty or too long `content`.", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<CommentBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let task = readable_task(&state, &caller, &id).await?;
    let text = content(body)?;
    let cid = CommentId::new();
    store::comment::create(
        &state.store,
        &NewComment {
            id: cid,
            task_id: task,
            username: caller.username.clone(),
            body: text,
        },
    )
    .await?;
    let c = store::comment::get(&state.store, task, cid)
        .await?
        .ok_or_else(|| ApiError::internal("comment vanished after creation"))?;
    Ok((StatusCode::CREATED, Json(comment_json(&c))))
}

/// The comments of a task, oldest first.
#[utoipa::path(
    get,
    path = "/task/{id}/comment",
    tag = "comment",
    operation_id = "list_comments",
    params(("id" = uuid::Uuid, Path, description = "Task id.")),
    responses(
        (status = 200, description = "The comments.", body = Vec<Comment>),
        (status = 400, description = "Malformed id.", body = ErrorBody),
        (status = 403, description = "The caller may not read this task's comments.", body = ErrorBody),
        (status = 404, description = "No such task.", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let task = readable_task(&state, &caller, &id).await?;
    let comments = store::comment::list(&state.store, task).await?;
    Ok(Json(comments.iter().map(comment_json).collect()))
}

fn not_found(task: TaskId, id: CommentId) -> ApiError {
    ApiError::NotFound(format!("comment {id} not found on task {task}"))
}

/// One comment of a task.
#[utoipa::path(
    get,
    path = "/task/{id}/comment/{commentid}",
    tag = "comment",
    operation_id = "get_comment",
    params(
        ("id" = uuid::Uuid, Path, description = "Task id."),
        ("commentid" = uuid::Uuid, Path, description = "Comment id."),
    ),
    responses(
        (status = 200, description = "The comment.", body = Comment),
        (status = 400, description = "Malformed id.", body = ErrorBody),
        (status = 403, description = "The caller may not read this task's comments.", body = ErrorBody),
        (status = 404, description = "No such task, or no such comment on it.", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, comment)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let task = readable_task(&state, &caller, &id).await?;
    let cid: CommentId = parse_id(&comment, "comment")?;
    let c = store::comment::get(&state.store, task, cid)
        .await?
        .ok_or_else(|| not_found(task, cid))?;
    Ok(Json(comment_json(&c)))
}

/// The comment addressed by the path, with the author check a non-admin needs.
async fn own_comment(
    state: &AppState,
    caller: &Caller,
    id: &str,
    comment: &str,
) -> Result<(TaskId, CommentId), ApiError> {
    let task: TaskId = parse_id(id, "task")?;
    let cid: CommentId = parse_id(comment, "comment")?;
    let c = store::comment::get(&state.store, task, cid)
        .await?
        .ok_or_else(|| not_found(task, cid))?;
    if !caller.is_admin && c.username != caller.username {
        return Err(ApiError::Forbidden(
            "only the author or an admin may change a comment".into(),
        ));
    }
    Ok((task, cid))
}

/// Replaces a comment's text (its author or an admin).
#[utoipa::path(
    put,
    path = "/task/{id}/comment/{commentid}",
    tag = "comment",
    operation_id = "update_comment",
    params(
        ("id" = uuid::Uuid, Path, description = "Task id."),
        ("commentid" = uuid::Uuid, Path, description = "Comment id."),
    ),
    request_body(description = "The new text (JSON or YAML).", content((CommentBody = "application/json"), (CommentBody = "application/x-yaml"))),
    responses(
        (status = 200, description = "The updated comment.", body = Comment),
        (status = 400, description = "Malformed id or body.", body = ErrorBody),
        (status = 403, description = "Only the author or an admin may change a comment.", body = ErrorBody),
        (status = 404, description = "No such comment on this task.", body = ErrorBody),
        (status = 422, description = "Empty or too long `content`.", body = ErrorBody),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, comment)): Path<(String, String)>,
    Body(body): Body<CommentBody>,
) -> Result<Json<Value>, ApiError> {
    let (task, cid) = own_comment(&state, &caller, &id, &comment).await?;
    let text = content(body)?;
    let author = (!caller.is_admin).then_some(caller.username.as_str());
    if !store::comment::update(&state.store, task, cid, author, &text).await? {
        return Err(not_found(task, cid));
    }
    let c = store::comment::get(&state.store, task, cid)
        .await?
        .ok_or_else(|| not_found(task, cid))?;
    Ok(Json(comment_json(&c)))
}

/// Deletes a comment (its author or an admin).
#[utoipa::path(
    delete,
    path = "/task/{id}/comment/{commentid}",
    tag = "comment",
    operation_id = "delete_comment",
    params(
        ("id" = uuid::Uuid, Path, description = "Task id."),
        ("commentid" = uuid::Uuid, Path, description = "Comment id."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "Malformed id.", body = ErrorBody),
        (status = 403, description = "Only the author or an admin may delete a comment.", body = ErrorBody),
        (status = 404, description = "No such comment on this task.", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, comment)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (task, cid) = own_comment(&state, &caller, &id, &comment).await?;
    let author = (!caller.is_admin).then_some(caller.username.as_str());
    if !store::comment::delete(&state.store, task, cid, author).await? {
        return Err(not_found(task, cid));
    }
    Ok(StatusCode::NO_CONTENT)
}
