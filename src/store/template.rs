//! `template` and `template_version`: task templates as loaded from disk or saved through the API.
//!
//! A template row holds the normalized model (JSON) and the YAML source. Every change of source
//! bumps `version` and keeps the previous version in `template_version`; a task records the
//! version it was created from. Templates that disappear from disk are deleted, or archived
//! (hidden + blocked) when tasks still reference them.
//!
//! A (name, version) names one definition forever: a deleted template keeps its versions
//! (migration 0021), and a template created again under the same name continues the numbering.
//! So parsed versions are cached for the life of the process ([`version_model`]). The current
//! version of a name is cached too ([`current`]), for task creation, which checks it in the
//! creating statement (`task::NewTask::template_guard`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Store, StoreError};
use crate::template::model::TaskTemplate;

/// Most entries of each map of a [`Cache`] (it is emptied when full).
const CACHE_ENTRIES: usize = 1000;

/// Parsed templates of a [`Store`] (see the module documentation).
#[derive(Default)]
pub struct Cache {
    versions: Mutex<HashMap<(String, i32), Arc<TaskTemplate>>>,
    current: Mutex<HashMap<String, Current>>,
}

/// The current version of a template (not archived), as read at `updated`.
#[derive(Debug, Clone)]
pub struct Current {
    pub template: Arc<TaskTemplate>,
    pub version: i32,
    /// The template row's `updated`: any change of version, archive state or flags moves it.
    pub updated: DateTime<Utc>,
}

fn cache_put<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    if let Ok(mut m) = map.lock() {
        if m.len() >= CACHE_ENTRIES {
            m.clear();
        }
        m.insert(key, value);
    }
}

fn parse_model(name: &str, version: i32, definition: Value) -> Result<TaskTemplate, StoreError> {
    serde_json::from_value(definition).map_err(|e| {
        StoreError::Corrupt(format!(
            "stored template {name} version {version} is unreadable: {e}"
        ))
    })
}

/// The model of one version of a template (`None` when it does not exist), cached.
pub async fn version_model(
    store: &Store,
    name: &str,
    version: i32,
) -> Result<Option<Arc<TaskTemplate>>, StoreError> {
    let key = (name.to_string(), version);
    if let Ok(m) = store.templates.versions.lock()
        && let Some(t) = m.get(&key)
    {
        return Ok(Some(t.clone()));
    }
    let Some((definition, _)) = get_version(store, name, version).await? else {
        return Ok(None);
    };
    let t = Arc::new(parse_model(name, version, definition)?);
    cache_put(&store.templates.versions, key, t.clone());
    Ok(Some(t))
}

/// The current version of a template that is not archived (`None` otherwise). With `fresh` it
/// is read from the database; otherwise a cached answer may be given, possibly stale: its user
/// checks `updated` where it matters.
pub async fn current(
    store: &Store,
    name: &str,
    fresh: bool,
) -> Result<Option<Current>, StoreError> {
    if !fresh
        && let Ok(m) = store.templates.current.lock()
        && let Some(c) = m.get(name)
    {
        return Ok(Some(c.clone()));
    }
    let rec = match get(store, name).await? {
        Some(r) if !r.archived => r,
        _ => {
            forget_current(store, name);
            return Ok(None);
        }
    };
    let c = Current {
        template: Arc::new(parse_model(name, rec.version, rec.definition)?),
        version: rec.version,
        updated: rec.updated,
    };
    cache_put(&store.templates.current, name.to_string(), c.clone());
    Ok(Some(c))
}

/// Drops the cached current version of `name` (it was found stale).
pub fn forget_current(store: &Store, name: &str) {
    if let Ok(mut m) = store.templates.current.lock() {
        m.remove(name);
    }
}

/// A stored template.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateRecord {
    pub name: String,
    pub version: i32,
    pub description: String,
    pub definition: Value,
    pub source: String,
    pub source_file: Option<String>,
    pub hidden: bool,
    pub blocked: bool,
    pub archived: bool,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// What to store for one template.
#[derive(Debug, Clone)]
pub struct TemplateUpsert<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub definition: &'a Value,
    pub source: &'a str,
    pub source_file: Option<&'a str>,
    pub hidden: bool,
    pub blocked: bool,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    Created,
    Updated { version: i32 },
    Unchanged,
}

/// Inserts or updates a template; a changed definition gets a new version.
pub async fn upsert(store: &Store, t: &TemplateUpsert<'_>) -> Result<UpsertOutcome, StoreError> {
    let mut tx = store.pool.begin().await?;
    // Instances starting together sync the same files: serialize per name, so the second one
    // sees the first one's row instead of racing it to the INSERT (a primary key violation).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('mutask.template'), hashtext($1))")
        .bind(t.name)
        .execute(&mut *tx)
        .await?;
    let current: Option<(i32, Value, String, bool)> = sqlx::query_as(
        "SELECT version, definition, source, archived FROM template WHERE name = $1 FOR UPDATE",
    )
    .bind(t.name)
    .fetch_optional(&mut *tx)
    .await?;
    let outcome = match current {
        None => {
            // a name used before keeps its versions: continue after them
            let version: i32 = sqlx::query_scalar(
                "SELECT coalesce(max(version), 0) + 1 FROM template_version WHERE name = $1",
            )
            .bind(t.name)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO template (name, version, description, definition, source, source_file, hidden, blocked)
                 VALUES ($1, $8, $2, $3, $4, $5, $6, $7)",
            )
            .bind(t.name)
            .bind(t.description)
            .bind(t.definition)
            .bind(t.source)
            .bind(t.source_file)
            .bind(t.hidden)
            .bind(t.blocked)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO template_version (name, version, definition, source) VALUES ($1, $2, $3, $4)",
            )
            .bind(t.name)
            .bind(version)
            .bind(t.definition)
            .bind(t.source)
            .execute(&mut *tx)
            .await?;
            UpsertOutcome::Created
        }
        Some((version, definition, _source, archived))
            if definition == *t.definition && !archived =>
        {
            // same model: refresh cosmetic columns only
            sqlx::query("UPDATE template SET source = $2, source_file = $3 WHERE name = $1")
                .bind(t.name)
                .bind(t.source)
                .bind(t.source_file)
                .execute(&mut *tx)
                .await?;
            let _ = version;
            UpsertOutcome::Unchanged
        }
        Some((version, _, _, _)) => {
            let next = version + 1;
            sqlx::query(
                "UPDATE template SET version = $2, description = $3, definition = $4, source = $5,
                        source_file = $6, hidden = $7, blocked = $8, archived = false, updated = now()
                 WHERE name = $1",
            )
            .bind(t.name)
            .bind(next)
            .bind(t.description)
            .bind(t.definition)
            .bind(t.source)
            .bind(t.source_file)
            .bind(t.hidden)
            .bind(t.blocked)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO template_version (name, version, definition, source) VALUES ($1, $2, $3, $4)",
            )
            .bind(t.name)
            .bind(next)
            .bind(t.definition)
            .bind(t.source)
            .execute(&mut *tx)
            .await?;
            UpsertOutcome::Updated { version: next }
        }
    };
    tx.commit().await?;
    // this process sees its own change at once; other instances' creations meet the guard
    forget_current(store, t.name);
    Ok(outcome)
}

/// Removes templates loaded from disk that are no longer present: deleted when no task
/// references them (their versions are kept), otherwise archived (hidden and blocked).
/// Returns (deleted, archived).
pub async fn retire_missing(store: &Store, present: &[String]) -> Result<(u64, u64), StoreError> {
    let mut tx = store.pool.begin().await?;
    let deleted = sqlx::query(
        "DELETE FROM template t WHERE t.source_file IS NOT NULL AND NOT (t.name = ANY($1))
           AND NOT EXISTS (SELECT 1 FROM task WHERE task.template_name = t.name)",
    )
    .bind(present)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let archived = sqlx::query(
        "UPDATE template SET archived = true, hidden = true, blocked = true, updated = now()
         WHERE source_file IS NOT NULL AND NOT (name = ANY($1)) AND NOT archived",
    )
    .bind(present)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if let Ok(mut m) = store.templates.current.lock() {
        m.clear();
    }
    Ok((deleted, archived))
}

macro_rules! columns {
    () => {
        "name, version, description, definition, source, source_file, hidden, blocked, archived, created, updated"
    };
}

/// Every template, by name; hidden ones only when asked.
pub async fn list(store: &Store, include_hidden: bool) -> Result<Vec<TemplateRecord>, StoreError> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM template WHERE ($1 OR NOT hidden) AND NOT archived ORDER BY name"
    );
    Ok(sqlx::query_as(sql)
        .bind(include_hidden)
        .fetch_all(&store.pool)
        .await?)
}

/// One template by (normalized) name.
pub async fn get(store: &Store, name: &str) -> Result<Option<TemplateRecord>, StoreError> {
    let sql = concat!("SELECT ", columns!(), " FROM template WHERE name = $1");
    Ok(sqlx::query_as(sql)
        .bind(name)
        .fetch_optional(&store.pool)
        .await?)
}

/// One past version of a template.
pub async fn get_version(
    store: &Store,
    name: &str,
    version: i32,
) -> Result<Option<(Value, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT definition, source FROM template_version WHERE name = $1 AND version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(&store.pool)
    .await?)
}

/// The versions of a template, newest first: (version, created).
pub async fn versions(store: &Store, name: &str) -> Result<Vec<(i32, DateTime<Utc>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT version, created FROM template_version WHERE name = $1 ORDER BY version DESC",
    )
    .bind(name)
    .fetch_all(&store.pool)
    .await?)
}
