//! Task listing (`GET /task`) and task statistics (`GET /unsecured/stats`).
//!
//! Keyset pagination on `(last_activity DESC, id DESC)` (the `task_last_activity_idx` order):
//! a page continues strictly after the cursor task, so a page never repeats or skips a task
//! whose activity did not change meanwhile. Visibility (`own`, `resolvable`) and every filter
//! are SQL predicates; titles are sealed, so they are opened here and never filtered on in SQL:
//! a title search (case-insensitive substring) scans the visible rows in keyset order, opening
//! titles, until a page is full. Counts by state (`GET /task/count`) apply the same visibility
//! and filters.
//! Inputs and results are not read at all: a listing never decrypts more than titles.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};

use crate::crypto::Aad;
use crate::domain::{BatchId, ResolutionId, ResolutionState, TaskId, TaskState};

use super::{Store, StoreError};

/// Whose tasks to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every task (admins).
    All,
    /// Tasks the user requested or watches.
    Own,
    /// Tasks the user may resolve (µTask: a task resolver or an owner of the task's template;
    /// `allow_all_resolver_usernames` does not make a task listed as resolvable).
    Resolvable,
    /// Own or resolvable (`type=all` for a non-admin).
    OwnOrResolvable,
}

/// A listing request.
#[derive(Debug, Clone)]
pub struct TaskFilter {
    pub scope: Scope,
    pub username: String,
    pub groups: Vec<String>,
    pub state: Option<TaskState>,
    pub template: Option<String>,
    pub batch: Option<BatchId>,
    /// Tags every listed task carries (`{"k": "v"}`, JSON containment).
    pub tags: Option<Value>,
    /// Last activity strictly after / before.
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the title.
    pub title: Option<String>,
    /// Continue after this `(last_activity, id)`.
    pub cursor: Option<(DateTime<Utc>, TaskId)>,
    pub limit: i64,
}

/// One listed task (no inputs, no result).
#[derive(Debug, Clone)]
pub struct TaskSummary {
    pub id: TaskId,
    pub title: String,
    pub template_name: String,
    pub template_version: i32,
    pub state: TaskState,
    pub requester_username: String,
    pub requester_groups: Vec<String>,
    pub watcher_usernames: Vec<String>,
    pub watcher_groups: Vec<String>,
    pub resolver_usernames: Vec<String>,
    pub resolver_groups: Vec<String>,
    pub tags: Value,
    pub batch_id: Option<BatchId>,
    pub parent_task_id: Option<TaskId>,
    pub steps_done: i32,
    pub steps_total: i32,
    pub created: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub resolution_id: Option<ResolutionId>,
    pub resolution_state: Option<ResolutionState>,
    pub resolver_username: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: TaskId,
    title_enc: Vec<u8>,
    template_name: String,
    template_version: i32,
    state: String,
    requester_username: String,
    requester_groups: Vec<String>,
    watcher_usernames: Vec<String>,
    watcher_groups: Vec<String>,
    resolver_usernames: Vec<String>,
    resolver_groups: Vec<String>,
    tags: Value,
    batch_id: Option<BatchId>,
    parent_task_id: Option<TaskId>,
    steps_done: i32,
    steps_total: i32,
    created: DateTime<Utc>,
    last_activity: DateTime<Utc>,
    resolution_id: Option<ResolutionId>,
    resolution_state: Option<String>,
    resolver_username: Option<String>,
}

impl SummaryRow {
    fn open(self, store: &Store) -> Result<TaskSummary, StoreError> {
        let row = self.id.to_string();
        let title = store.keys.open(
            Aad {
                table: "task",
                column: "title_enc",
                row: &row,
            },
            &self.title_enc,
        )?;
        let title = String::from_utf8(title)
            .map_err(|_| StoreError::Corrupt(format!("task {row}: title is not UTF-8")))?;
        let state = self
            .state
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("task {row}: {e}")))?;
        let resolution_state = self
            .resolution_state
            .map(|s| s.parse())
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("task {row}: {e}")))?;
        Ok(TaskSummary {
            id: self.id,
            title,
            template_name: self.template_name,
            template_version: self.template_version,
            state,
            requester_username: self.requester_username,
            requester_groups: self.requester_groups,
            watcher_usernames: self.watcher_usernames,
            watcher_groups: self.watcher_groups,
            resolver_usernames: self.resolver_usernames,
            resolver_groups: self.resolver_groups,
            tags: self.tags,
            batch_id: self.batch_id,
            parent_task_id: self.parent_task_id,
            steps_done: self.steps_done,
            steps_total: self.steps_total,
            created: self.created,
            last_activity: self.last_activity,
            resolution_id: self.resolution_id,
            resolution_state,
            resolver_username: self.resolver_username,
        })
    }
}

/// The cursor of a task: its `(last_activity, id)`; `None` when the task does not exist.
pub async fn cursor(
    store: &Store,
    id: TaskId,
) -> Result<Option<(DateTime<Utc>, TaskId)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT last_activity, id FROM task WHERE id = $1")
            .bind(id)
            .fetch_optional(&store.pool)
            .await?,
    )
}

fn push_own(q: &mut QueryBuilder<Postgres>, f: &TaskFilter) {
    q.push("(t.requester_username = ")
        .push_bind(f.username.clone())
        .push(" OR ")
        .push_bind(f.username.clone())
        .push(" = ANY(t.watcher_usernames) OR t.watcher_groups && ")
        .push_bind(f.groups.clone())
        .push(")");
}

fn push_resolvable(q: &mut QueryBuilder<Postgres>, f: &TaskFilter) {
    q.push("(")
        .push_bind(f.username.clone())
        .push(" = ANY(t.resolver_usernames) OR t.resolver_groups && ")
        .push_bind(f.groups.clone())
        .push(" OR jsonb_exists(COALESCE(tv.definition -> 'allowed_resolver_usernames', '[]'), ")
        .push_bind(f.username.clone())
        .push(") OR jsonb_exists_any(COALESCE(tv.definition -> 'allowed_resolver_groups', '[]'), ")
        .push_bind(f.groups.clone())
        .push("))");
}

const SUMMARY_COLUMNS: &str =
    "SELECT t.id, t.title_enc, t.template_name, t.template_version, t.state,
            t.requester_username, t.requester_groups, t.watcher_usernames, t.watcher_groups,
            t.resolver_usernames, t.resolver_groups, t.tags, t.batch_id, t.parent_task_id,
            t.steps_done, t.steps_total, t.created, t.last_activity,
            r.id AS resolution_id, r.state AS resolution_state, r.resolver_username";

/// `<select> FROM task … WHERE <visibility and every filter but the title>`.
fn filtered(select: &str, f: &TaskFilter) -> QueryBuilder<Postgres> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(select);
    q.push(
        " FROM task t
           LEFT JOIN resolution r ON r.task_id = t.id
           LEFT JOIN template_version tv
                  ON tv.name = t.template_name AND tv.version = t.template_version
          WHERE true",
    );
    match f.scope {
        Scope::All => {}
        Scope::Own => {
            q.push(" AND ");
            push_own(&mut q, f);
        }
        Scope::Resolvable => {
            q.push(" AND ");
            push_resolvable(&mut q, f);
        }
        Scope::OwnOrResolvable => {
            q.push(" AND (");
            push_own(&mut q, f);
            q.push(" OR ");
            push_resolvable(&mut q, f);
            q.push(")");
        }
    }
    if let Some(s) = f.state {
        q.push(" AND t.state = ").push_bind(s.as_str());
    }
    if let Some(t) = &f.template {
        q.push(" AND t.template_name = ").push_bind(t.clone());
    }
    if let Some(b) = f.batch {
        q.push(" AND t.batch_id = ").push_bind(b);
    }
    if let Some(tags) = &f.tags {
        q.push(" AND t.tags @> ").push_bind(tags.clone());
    }
    if let Some(a) = f.after {
        q.push(" AND t.last_activity > ").push_bind(a);
    }
    if let Some(b) = f.before {
        q.push(" AND t.last_activity < ").push_bind(b);
    }
    q
}

/// True when `title` contains the (lowercased) search string, ignoring case.
pub fn title_matches(title: &str, lowered_search: &str) -> bool {
    title.to_lowercase().contains(lowered_search)
}

/// Rows scanned per round while searching sealed titles.
const TITLE_SCAN_BATCH: i64 = 500;

/// One page of tasks, newest activity first (at most `limit`). With a title search, rows are
/// scanned in keyset order in batches and their titles opened until the page is full or the
/// visible tasks are exhausted (titles are sealed: SQL cannot filter on them).
pub async fn list(store: &Store, f: &TaskFilter) -> Result<Vec<TaskSummary>, StoreError> {
    let search = f.title.as_ref().map(|t| t.to_lowercase());
    let mut cursor = f.cursor;
    let mut out = Vec::new();
    loop {
        let batch = match &search {
            None => f.limit,
            Some(_) => f.limit.max(TITLE_SCAN_BATCH),
        };
        let mut q = filtered(SUMMARY_COLUMNS, f);
        if let Some((at, id)) = cursor {
            q.push(" AND (t.last_activity, t.id) < (")
                .push_bind(at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        q.push(" ORDER BY t.last_activity DESC, t.id DESC LIMIT ")
            .push_bind(batch);
        let rows: Vec<SummaryRow> = q.build_query_as().fetch_all(&store.pool).await?;
        let exhausted = (rows.len() as i64) < batch;
        cursor = rows.last().map(|r| (r.last_activity, r.id));
        for r in rows {
            let t = r.open(store)?;
            if search.as_deref().is_none_or(|s| title_matches(&t.title, s)) {
                out.push(t);
                if out.len() as i64 >= f.limit {
                    return Ok(out);
                }
            }
        }
        if exhausted || search.is_none() {
            return Ok(out);
        }
    }
}

/// Number of tasks per state among those `f` lists (its cursor and limit ignored): what the
/// caller sees, with the same filters.
pub async fn count_by_state(
    store: &Store,
    f: &TaskFilter,
) -> Result<Vec<(String, i64)>, StoreError> {
    let Some(search) = f.title.as_ref().map(|t| t.to_lowercase()) else {
        let mut q = filtered("SELECT t.state, count(*)", f);
        q.push(" GROUP BY t.state ORDER BY t.state");
        return Ok(q.build_query_as().fetch_all(&store.pool).await?);
    };
    let rows: Vec<(TaskId, String, Vec<u8>)> = filtered("SELECT t.id, t.state, t.title_enc", f)
        .build_query_as()
        .fetch_all(&store.pool)
        .await?;
    let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
    for (id, state, title_enc) in rows {
        let row = id.to_string();
        let title = store.keys.open(
            Aad {
                table: "task",
                column: "title_enc",
                row: &row,
            },
            &title_enc,
        )?;
        if title_matches(&String::from_utf8_lossy(&title), &search) {
            *counts.entry(state).or_default() += 1;
        }
    }
    Ok(counts.into_iter().collect())
}

/// Number of tasks per state, over tasks carrying every tag of `tags` (when given).
pub async fn state_counts(
    store: &Store,
    tags: Option<&Value>,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT state, count(*) FROM task WHERE ($1::jsonb IS NULL OR tags @> $1) GROUP BY state",
    )
    .bind(tags)
    .fetch_all(&store.pool)
    .await?)
}
