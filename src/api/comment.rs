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
use super::resolution::{is_manager, is_requester_or_watcher, load_task, parse_id};
use super::{ApiError, AppState, Caller, FieldError};
use crate::domain::{CommentId, TaskId};
use crate::store::{
    self,
    comment::{CommentRecord, NewComment},
};
use crate::tasks::MAX_COMMENT_CHARS;

/// Body of `POST` and `PUT` on comments.
#[derive(Debug, Deserialize)]
pub struct CommentBody {
    #[serde(default)]
    pub content: Option<String>,
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

/// `POST /task/{id}/comment`
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

/// `GET /task/{id}/comment`
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

/// `GET /task/{id}/comment/{commentid}`
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

/// `PUT /task/{id}/comment/{commentid}`
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

/// `DELETE /task/{id}/comment/{commentid}`
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
