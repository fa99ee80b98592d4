//! The notification outbox for admins: `GET /notification` and
//! `POST /notification/{id}/retry`.
//!
//! Each entry is one delivery of one task event to one backend (`webhook`, `slack`, `email`,
//! `status_hook`, or a name given to the `notify` action): its state (`pending`, `delivered`,
//! `given_up`), attempts, next attempt, last error and times, plus the event it notifies (task,
//! template, states, action). Payloads are sealed and never answered: they carry task titles,
//! messages and status hook URLs. Listing is newest first with keyset paging like `GET /task`
//! (`page_size`, `last`, `X-Paging-PageSize`, `link`). A retry re-queues an undelivered entry
//! now with a fresh series of attempts and wakes the notifiers; a delivered one answers 409.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error::ErrorBody;
use super::listing::normalize_page_size;
use super::resolution::parse_id;
use super::{ApiError, AppState, Caller};
use crate::store::{
    self,
    notification::{DeliveryState, Entry},
};

fn admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only admins may read or retry notifications".into(),
        ))
    }
}

/// Query parameters of `GET /notification`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListNotificationsQuery {
    /// Only entries in this state: `pending`, `delivered` or `given_up`.
    #[param(example = "given_up")]
    pub state: Option<String>,
    /// Page size: absent or 0 means 1000, then clamped to 10..=10000.
    pub page_size: Option<i64>,
    /// The id of the last entry of the previous page (see the `link` header).
    pub last: Option<uuid::Uuid>,
}

/// One outbox entry (OpenAPI schema of [`entry_json`]); never its payload.
#[derive(utoipa::ToSchema)]
pub struct NotificationEntry {
    /// Sent as `X-Mutask-Id`.
    pub id: uuid::Uuid,
    /// `webhook`, `slack`, `email` or `status_hook`.
    pub backend: String,
    /// `pending`, `delivered` or `given_up`.
    #[schema(example = "given_up")]
    pub state: String,
    /// `task_created`, `task_state_update`, `task_overdue` or `message` (the `notify` action);
    /// null once the event was collected.
    #[schema(required = true)]
    pub action: Option<String>,
    #[schema(required = true)]
    pub task_id: Option<uuid::Uuid>,
    #[schema(required = true)]
    pub template: Option<String>,
    #[schema(required = true)]
    pub previous_state: Option<String>,
    /// The task state notified (`OVERDUE` for an overdue task, `MESSAGE` for a message).
    #[schema(required = true)]
    pub task_state: Option<String>,
    /// Attempts made (in the current series: a retry starts again from 0).
    pub attempts: i32,
    /// When a pending entry is tried next (null otherwise).
    #[schema(required = true)]
    pub next_attempt: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_error: Option<String>,
    pub created: DateTime<Utc>,
    #[schema(required = true)]
    pub delivered: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub given_up: Option<DateTime<Utc>>,
}

/// The JSON of one entry.
pub fn entry_json(e: &Entry) -> Value {
    let state = e.state();
    json!({
        "id": e.id,
        "backend": e.backend,
        "state": state.as_str(),
        "action": e.action(),
        "task_id": e.task_id,
        "template": e.template,
        "previous_state": e.old_state,
        "task_state": e.new_state,
        "attempts": e.attempts,
        "next_attempt": (state == DeliveryState::Pending).then_some(e.next_attempt),
        "last_error": e.last_error,
        "created": e.created,
        "delivered": e.delivered,
        "given_up": e.given_up,
    })
}

/// Lists the notification outbox, newest first (admin; keyset pagination).
#[utoipa::path(
    get,
    path = "/notification",
    tag = "admin",
    operation_id = "list_notifications",
    params(ListNotificationsQuery),
    responses(
        (status = 200, description = "One page of outbox entries.", body = Vec<NotificationEntry>, headers(
            ("x-paging-pagesize" = i64, description = "The page size used."),
            ("link" = String, description = "When another page exists: `</notification?…&page_size=N&last=<id>>; rel=\"next\"`."),
        )),
        (status = 400, description = "A malformed parameter (named in the message).", body = ErrorBody),
        (status = 403, description = "Not an admin.", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<(HeaderMap, Json<Vec<Value>>), ApiError> {
    admin(&caller)?;
    let raw = query.unwrap_or_default();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    let one = |name: &str| -> Option<&str> {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    };
    if let Some((k, _)) = params
        .iter()
        .find(|(k, _)| !matches!(k.as_str(), "state" | "page_size" | "last"))
    {
        return Err(ApiError::BadRequest(format!(
            "unknown parameter `{}` (state, page_size, last)",
            k.chars().take(100).collect::<String>()
        )));
    }
    let filter = one("state")
        .map(|s| {
            DeliveryState::parse(s).ok_or_else(|| {
                let all: Vec<&str> = DeliveryState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::BadRequest(format!(
                    "unknown notification state `{}` in `state` (one of {})",
                    s.chars().take(100).collect::<String>(),
                    all.join(", ")
                ))
            })
        })
        .transpose()?;
    let page_size = normalize_page_size(
        one("page_size")
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ApiError::BadRequest(format!("`page_size` must be a number, not `{v}`"))
                })
            })
            .transpose()?,
    );
    let last: Option<uuid::Uuid> = one("last")
        .map(|v| parse_id(v, "notification").map_err(|_| bad_last(v)))
        .transpose()?;
    let mut rows = store::notification::list(&state.store, filter, last, page_size + 1).await?;
    let more = rows.len() as i64 > page_size;
    rows.truncate(page_size as usize);
    let mut headers = HeaderMap::new();
    headers.insert("x-paging-pagesize", HeaderValue::from(page_size));
    if more && let Some(last) = rows.last() {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = filter {
            next.append_pair("state", s.as_str());
        }
        next.append_pair("page_size", &page_size.to_string());
        next.append_pair("last", &last.id.to_string());
        let link = format!("</notification?{}>; rel=\"next\"", next.finish());
        let value = HeaderValue::from_str(&link)
            .map_err(|e| ApiError::internal(format!("cannot build the link header: {e}")))?;
        headers.insert("link", value);
    }
    Ok((headers, Json(rows.iter().map(entry_json).collect())))
}

fn bad_last(v: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "`last` must be a notification id (a UUID), not `{}`",
        v.chars().take(100).collect::<String>()
    ))
}

/// Re-queues an undelivered notification (pending or given up) now, with a fresh series of
/// attempts (admin).
#[utoipa::path(
    post,
    path = "/notification/{id}/retry",
    tag = "admin",
    operation_id = "retry_notification",
    params(("id" = uuid::Uuid, Path, description = "Notification id (as listed, or `X-Mutask-Id`).")),
    responses(
        (status = 200, description = "Re-queued: the entry, pending.", body = NotificationEntry),
        (status = 400, description = "Malformed id.", body = ErrorBody),
        (status = 403, description = "Not an admin.", body = ErrorBody),
        (status = 404, description = "No such notification.", body = ErrorBody),
        (status = 409, description = "Already delivered.", body = ErrorBody),
    ),
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin(&caller)?;
    let id: uuid::Uuid = parse_id(&id, "notification")?;
    if !store::notification::retry(&state.store, id).await? {
        return match store::notification::get(&state.store, id).await? {
            None => Err(ApiError::NotFound(format!("notification {id} not found"))),
            Some(_) => Err(ApiError::Conflict(format!(
                "notification {id} was already delivered"
            ))),
        };
    }
    tracing::info!(notification = %id, by = %caller.username, "notification re-queued");
    let entry = store::notification::get(&state.store, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("notification {id} not found")))?;
    Ok(Json(entry_json(&entry)))
}
