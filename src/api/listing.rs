//! `GET /task`: the task list, newest activity first, as µTask.
//!
//! `GET /task/count` answers the number of tasks by state the same listing would give (every
//! page), so the dashboard's counts follow the caller's visibility and filters.
//!
//! `type` = `own` (default: requested or watched), `resolvable` (the caller may resolve), `all`
//! (admins: every task; others: own or resolvable). Filters: `state`, `template`, `batch`,
//! `tag=key=value` (repeatable, every tag must match), `after` / `before` (RFC 3339, on last
//! activity), `title` (case-insensitive substring of the title). Pagination: `page_size` (default 1000, clamped to 10..=10000) and `last` (the id of
//! the last task of the previous page); the answer carries `X-Paging-PageSize` and, when another
//! page exists, `link: </task?…&last=<id>>; rel="next"`. Every malformed parameter is a 400
//! naming it; entries carry no inputs and no result (read `GET /task/{id}` for those).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use std::collections::BTreeMap;

use super::error::ErrorBody;
use super::meta::tag_filter;
use super::openapi::{ResolutionStateSchema, TaskStateSchema};
use super::resolution::parse_id;
use super::{ApiError, AppState, Caller};
use crate::domain::{TaskId, TaskState};
use crate::store::{
    self,
    listing::{Scope, TaskFilter, TaskSummary},
};

/// Page size when none is asked.
pub const DEFAULT_PAGE_SIZE: i64 = 1000;
/// Smallest page.
pub const MIN_PAGE_SIZE: i64 = 10;
/// Largest page.
pub const MAX_PAGE_SIZE: i64 = 10_000;

/// µTask's page size rule: absent or 0 ⇒ 1000, then clamped to 10..=10000.
pub fn normalize_page_size(asked: Option<i64>) -> i64 {
    match asked {
        None | Some(0) => DEFAULT_PAGE_SIZE,
        Some(n) => n.clamp(MIN_PAGE_SIZE, MAX_PAGE_SIZE),
    }
}

/// Query parameters of `GET /task` (OpenAPI description; the handler reads the raw query so that
/// `tag` can repeat).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTasksQuery {
    /// `own` (default: requested or watched), `resolvable` (the caller may resolve) or `all`
    /// (admins: every task; others: own or resolvable).
    #[param(rename = "type", example = "own")]
    pub kind: Option<String>,
    /// Only tasks in this state.
    #[param(value_type = Option<TaskStateSchema>)]
    pub state: Option<String>,
    /// Only tasks of this template.
    pub template: Option<String>,
    /// Only tasks of this batch.
    pub batch: Option<uuid::Uuid>,
    /// `key=value`; repeatable, every tag must match.
    #[param(explode = true, example = json!(["env=prod"]))]
    pub tag: Option<Vec<String>>,
    /// Only tasks whose last activity is after this time (RFC 3339).
    pub after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only tasks whose last activity is before this time (RFC 3339).
    pub before: Option<chrono::DateTime<chrono::Utc>>,
    /// Only tasks whose title contains this text, ignoring case (at most 200 characters).
    pub title: Option<String>,
    /// Page size: absent or 0 means 1000, then clamped to 10..=10000.
    pub page_size: Option<i64>,
    /// The id of the last task of the previous page (see the `link` header).
    pub last: Option<uuid::Uuid>,
}

/// A task as listed by `GET /task`: no inputs and no result (OpenAPI schema of the handler's
/// entries).
#[derive(utoipa::ToSchema)]
pub struct TaskListEntry {
    pub id: uuid::Uuid,
    pub title: String,
    pub template_name: String,
    pub template_version: i32,
    #[schema(value_type = TaskStateSchema)]
    pub state: String,
    pub requester_username: String,
    pub requester_groups: Vec<String>,
    pub watcher_usernames: Vec<String>,
    pub watcher_groups: Vec<String>,
    pub resolver_usernames: Vec<String>,
    pub resolver_groups: Vec<String>,
    #[schema(required = true)]
    pub resolver_username: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub steps_done: i32,
    pub steps_total: i32,
    /// Id of the task's resolution.
    #[schema(required = true)]
    pub resolution: Option<uuid::Uuid>,
    #[schema(required = true, value_type = Option<ResolutionStateSchema>)]
    pub resolution_state: Option<String>,
    /// Id of the batch the task belongs to.
    #[schema(required = true)]
    pub batch: Option<uuid::Uuid>,
    #[schema(required = true)]
    pub parent_task_id: Option<uuid::Uuid>,
}

fn summary_json(t: &TaskSummary) -> Value {
    json!({
        "id": t.id,
        "title": t.title,
        "template_name": t.template_name,
        "template_version": t.template_version,
        "state": t.state,
        "requester_username": t.requester_username,
        "requester_groups": t.requester_groups,
        "watcher_usernames": t.watcher_usernames,
        "watcher_groups": t.watcher_groups,
        "resolver_usernames": t.resolver_usernames,
        "resolver_groups": t.resolver_groups,
        "resolver_username": t.resolver_username,
        "tags": t.tags,
        "created": t.created,
        "last_activity": t.last_activity,
        "steps_done": t.steps_done,
        "steps_total": t.steps_total,
        "resolution": t.resolution_id,
        "resolution_state": t.resolution_state.map(|s| s.as_str()),
        "batch": t.batch_id,
        "parent_task_id": t.parent_task_id,
    })
}

fn time_param(name: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v.trim())
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "`{name}` must be an RFC 3339 time (2024-01-31T12:00:00Z): {e}"
            ))
        })
}

/// The parameters of a listing (`GET /task` and `GET /task/count`), each malformed one a 400
/// naming it.
fn parse_params(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    if params
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(ApiError::BadRequest(
            "query parameters may not contain NUL characters".into(),
        ));
    }
    Ok(params)
}

fn one<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.trim().is_empty())
}

/// Longest title search.
pub const MAX_TITLE_SEARCH: usize = 200;

/// The filter of a listing, without cursor (limit 0).
fn parse_filter(
    caller: &Caller,
    params: &[(String, String)],
    raw: &str,
) -> Result<TaskFilter, ApiError> {
    let one = |name: &str| one(params, name);
    let kind = one("type").unwrap_or("own");
    let scope = match kind {
        "own" => Scope::Own,
        "resolvable" => Scope::Resolvable,
        "all" if caller.is_admin => Scope::All,
        "all" => Scope::OwnOrResolvable,
        other => {
            return Err(ApiError::BadRequest(format!(
                "Unknown type for listing: '{other}'. Was expecting 'own', 'resolvable' or 'all'"
            )));
        }
    };
    let task_state = one("state")
        .map(|s| {
            s.trim().parse::<TaskState>().map_err(|_| {
                let all: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::BadRequest(format!(
                    "unknown task state `{s}` in `state` (one of {})",
                    all.join(", ")
                ))
            })
        })
        .transpose()?;
    let batch = one("batch").map(|b| parse_id(b, "batch")).transpose()?;
    let after = one("after").map(|v| time_param("after", v)).transpose()?;
    let before = one("before").map(|v| time_param("before", v)).transpose()?;
    let title = one("title").map(str::trim).filter(|t| !t.is_empty());
    if let Some(t) = title
        && t.chars().count() > MAX_TITLE_SEARCH
    {
        return Err(ApiError::BadRequest(format!(
            "`title` is longer than {MAX_TITLE_SEARCH} characters"
        )));
    }
    Ok(TaskFilter {
        scope,
        username: caller.username.clone(),
        groups: caller.groups.clone(),
        state: task_state,
        template: one("template").map(|t| t.trim().to_lowercase()),
        batch,
        tags: tag_filter(Some(raw))?,
        after,
        before,
        title: title.map(str::to_string),
        cursor: None,
        limit: 0,
    })
}

/// Lists tasks, newest activity first (keyset pagination).
///
/// Every malformed parameter is a 400 naming it. Entries carry no inputs and no result (read
/// `GET /task/{id}` for those).
#[utoipa::path(
    get,
    path = "/task",
    tag = "task",
    operation_id = "list_tasks",
    params(ListTasksQuery),
    responses(
        (status = 200, description = "One page of tasks.", body = Vec<TaskListEntry>, headers(
            ("x-paging-pagesize" = i64, description = "The page size used."),
            ("link" = String, description = "When another page exists: `</task?…&page_size=N&last=<id>>; rel=\"next\"`."),
        )),
        (status = 400, description = "A malformed parameter (named in the message).", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<(HeaderMap, Json<Vec<Value>>), ApiError> {
    let raw = query.unwrap_or_default();
    let params = parse_params(&raw)?;
    let mut filter = parse_filter(&caller, &params, &raw)?;
    let page_size = normalize_page_size(
        one(&params, "page_size")
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ApiError::BadRequest(format!("`page_size` must be a number, not `{v}`"))
                })
            })
            .transpose()?,
    );
    filter.cursor = match one(&params, "last") {
        None => None,
        Some(v) => {
            let id: TaskId = parse_id(v, "task")?;
            Some(
                store::listing::cursor(&state.store, id)
                    .await?
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "`last`: task {id} does not exist (any more); start the listing again"
                        ))
                    })?,
            )
        }
    };
    filter.limit = page_size + 1;
    let mut tasks = store::listing::list(&state.store, &filter).await?;
    let more = tasks.len() as i64 > page_size;
    tasks.truncate(page_size as usize);

    let mut headers = HeaderMap::new();
    headers.insert("x-paging-pagesize", HeaderValue::from(page_size));
    if more && let Some(last) = tasks.last() {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            if k != "last" && k != "page_size" {
                next.append_pair(k, v);
            }
        }
        next.append_pair("page_size", &page_size.to_string());
        next.append_pair("last", &last.id.to_string());
        let link = format!("</task?{}>; rel=\"next\"", next.finish());
        let value = HeaderValue::from_str(&link)
            .map_err(|e| ApiError::internal(format!("cannot build the link header: {e}")))?;
        headers.insert("link", value);
    }
    Ok((headers, Json(tasks.iter().map(summary_json).collect())))
}

/// Query parameters of `GET /task/count`: the filters of `GET /task` (OpenAPI description).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CountTasksQuery {
    /// `own` (default), `resolvable` or `all`, as for `GET /task`.
    #[param(rename = "type", example = "own")]
    pub kind: Option<String>,
    /// Only tasks in this state.
    #[param(value_type = Option<TaskStateSchema>)]
    pub state: Option<String>,
    /// Only tasks of this template.
    pub template: Option<String>,
    /// Only tasks of this batch.
    pub batch: Option<uuid::Uuid>,
    /// `key=value`; repeatable, every tag must match.
    #[param(explode = true, example = json!(["env=prod"]))]
    pub tag: Option<Vec<String>>,
    /// Only tasks whose last activity is after this time (RFC 3339).
    pub after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only tasks whose last activity is before this time (RFC 3339).
    pub before: Option<chrono::DateTime<chrono::Utc>>,
    /// Only tasks whose title contains this text, ignoring case.
    pub title: Option<String>,
}

/// The answer of `GET /task/count` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct TaskCounts {
    /// Tasks by state (states without tasks are absent).
    #[schema(example = json!({"DONE": 12, "TODO": 3}))]
    pub states: BTreeMap<String, i64>,
    /// Sum of `states`.
    pub total: i64,
}

/// Counts the tasks the caller would list, by state: the visibility (`type`) and filters of
/// `GET /task`, without paging. Every malformed parameter is a 400 naming it.
#[utoipa::path(
    get,
    path = "/task/count",
    tag = "task",
    operation_id = "count_tasks",
    params(CountTasksQuery),
    responses(
        (status = 200, description = "Counts by state.", body = TaskCounts),
        (status = 400, description = "A malformed parameter (named in the message).", body = ErrorBody),
    ),
)]
pub async fn count(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let raw = query.unwrap_or_default();
    let params = parse_params(&raw)?;
    for name in ["page_size", "last"] {
        if one(&params, name).is_some() {
            return Err(ApiError::BadRequest(format!(
                "`{name}` does not apply to counts (they cover every page)"
            )));
        }
    }
    let filter = parse_filter(&caller, &params, &raw)?;
    let counts = store::listing::count_by_state(&state.store, &filter).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let states: serde_json::Map<String, Value> =
        counts.into_iter().map(|(s, n)| (s, json!(n))).collect();
    Ok(Json(json!({"states": states, "total": total})))
}
