//! `task_event` and `notification`: the notification outbox.
//!
//! Invariants: events are written by a trigger in the transaction of the task change (so a
//! change is never notified without happening, nor lost when it happens) when something will
//! read them — the task has a status hook, or an instance that sends notifications is
//! registered (migration 0023); an event is expanded
//! once (claimed with SKIP LOCKED, one notification per backend, unique per event and backend);
//! a notification is claimed by pushing its `next_attempt` forward (a lease) and committed
//! before any HTTP call — no transaction is open while a receiver answers.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Store, StoreError};

/// A task change to notify.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub task_id: Uuid,
    pub template: String,
    pub old_state: Option<String>,
    pub new_state: String,
    pub at: DateTime<Utc>,
    /// The task has a status hook.
    pub hooked: bool,
}

/// How recent the heartbeat of an instance that sends notifications must be for an instance
/// without a backend to leave the status hooks to it.
const NOTIFIER_ALIVE_SECS: f64 = 60.0;

/// Expands pending events: `build` returns the (backend, payload) pairs of each event; the
/// notifications and the `expanded` mark are written in one transaction. When `build` fails
/// (it could not read what an event needs), nothing of the pass is written: the events stay
/// pending for the next pass, rather than being marked expanded with nothing sent.
///
/// `hooks_only`: the caller has no notification backend, so only the events of tasks with a
/// status hook can produce anything. It expands those only while no instance that sends
/// notifications is alive (that one builds the hook's notification with its own), and leaves
/// the others to such an instance: events of tasks without a hook are recorded only while one
/// is registered (migration 0023).
pub async fn expand<F, Fut>(
    store: &Store,
    limit: i64,
    hooks_only: bool,
    build: F,
) -> Result<usize, StoreError>
where
    F: Fn(Event) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(String, Value)>, StoreError>>,
{
    // the events this caller may expand (the partial indexes match these predicates)
    const ALL: &str = "NOT e.expanded";
    const HOOKED: &str = "NOT e.expanded AND e.hooked AND NOT EXISTS (
              SELECT 1 FROM instance i
               WHERE i.notifies AND i.heartbeat > now() - make_interval(secs => $1))";
    static PENDING: LazyLock<[String; 2]> = LazyLock::new(|| {
        [ALL, HOOKED].map(|w| format!("SELECT EXISTS (SELECT 1 FROM task_event e WHERE {w})"))
    });
    static LOCK: LazyLock<[String; 2]> = LazyLock::new(|| {
        [ALL, HOOKED].map(|w| {
            format!(
                "SELECT e.id, e.task_id, e.template, e.old_state, e.new_state, e.at, e.hooked
                   FROM task_event e WHERE {w}
                  ORDER BY e.id LIMIT $2 FOR UPDATE OF e SKIP LOCKED"
            )
        })
    });
    let which = usize::from(hooks_only);
    // one statement when there is nothing to do (an idle notifier's usual pass)
    let pending: bool = sqlx::query_scalar(PENDING[which].as_str())
        .bind(NOTIFIER_ALIVE_SECS)
        .fetch_one(&store.pool)
        .await?;
    if !pending {
        return Ok(0);
    }
    let mut tx = store.pool.begin().await?;
    let events: Vec<Event> = sqlx::query_as(LOCK[which].as_str())
        .bind(NOTIFIER_ALIVE_SECS)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let n = events.len();
    if n == 0 {
        return Ok(0);
    }
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    for e in events {
        let event_id = e.id;
        for (backend, payload) in build(e).await? {
            insert(&mut tx, store, event_id, &backend, &payload).await?;
        }
    }
    sqlx::query("UPDATE task_event SET expanded = true WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

fn aad(row: &str) -> crate::crypto::Aad<'_> {
    crate::crypto::Aad {
        table: "notification",
        column: "payload_enc",
        row,
    }
}

/// Inserts one notification, its payload sealed.
async fn insert(
    tx: &mut sqlx::PgConnection,
    store: &Store,
    event_id: i64,
    backend: &str,
    payload: &Value,
) -> Result<(), StoreError> {
    let id = Uuid::now_v7();
    let sealed = store.keys.seal_json(aad(&id.to_string()), payload)?;
    sqlx::query(
        "INSERT INTO notification (id, event_id, backend, payload_enc) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(event_id)
    .bind(backend)
    .bind(sealed)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Queues a message for `backends` (the `notify` action): a task event of its own (already
/// expanded) and one notification per backend, in one transaction; the notifiers are woken.
pub async fn enqueue(
    store: &Store,
    task_id: Uuid,
    template: &str,
    backends: &[String],
    payload: &Value,
) -> Result<(), StoreError> {
    let mut tx = store.pool.begin().await?;
    let event_id: i64 = sqlx::query_scalar(
        "INSERT INTO task_event (task_id, template, old_state, new_state, expanded)
         VALUES ($1, $2, NULL, 'MESSAGE', true) RETURNING id",
    )
    .bind(task_id)
    .bind(template)
    .fetch_one(&mut *tx)
    .await?;
    for b in backends {
        insert(&mut tx, store, event_id, b, payload).await?;
    }
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(super::wake::EVENT_CHANNEL)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub id: Uuid,
    pub backend: String,
    pub payload: Value,
    pub attempts: i32,
}

/// Claims due notifications for `lease` (another instance retries them after it), in the order
/// of the changes they report: only those of `backends`, the ones the caller can send (an
/// instance configured otherwise leaves the rest to the instances that have them).
pub async fn claim_due(
    store: &Store,
    backends: &[String],
    limit: i64,
    lease: std::time::Duration,
) -> Result<Vec<Due>, StoreError> {
    type Row = (Uuid, String, Option<Value>, Option<Vec<u8>>, i32, i64);
    let mut rows: Vec<Row> = sqlx::query_as(
        "UPDATE notification n SET attempts = n.attempts + 1,
                next_attempt = now() + make_interval(secs => $2)
          WHERE n.id IN (SELECT id FROM notification
                          WHERE delivered IS NULL AND given_up IS NULL AND next_attempt <= now()
                            AND backend = ANY($3)
                          ORDER BY next_attempt, event_id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING n.id, n.backend, n.payload, n.payload_enc, n.attempts, n.event_id",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .bind(backends)
    .fetch_all(&store.pool)
    .await?;
    // sent in the order the changes happened (TODO before RUNNING before DONE): an UPDATE
    // returns its rows in no particular order, and one pass often holds a task's whole life
    rows.sort_by_key(|r| (r.5, r.0));
    rows.into_iter()
        .map(|(id, backend, clear, sealed, attempts, _)| {
            let payload = match sealed {
                Some(enc) => store.keys.open_json(aad(&id.to_string()), &enc)?,
                None => clear.unwrap_or(Value::Null),
            };
            Ok(Due {
                id,
                backend,
                payload,
                attempts,
            })
        })
        .collect()
}

pub async fn delivered(store: &Store, id: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE notification SET delivered = now(), last_error = NULL WHERE id = $1")
        .bind(id)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Records a failed attempt: retried after `retry_in`, or given up.
pub async fn failed(
    store: &Store,
    id: Uuid,
    error: &str,
    retry_in: Option<std::time::Duration>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE notification SET last_error = $2,
                next_attempt = CASE WHEN $3::float8 IS NULL THEN next_attempt
                                    ELSE now() + make_interval(secs => $3) END,
                given_up = CASE WHEN $3::float8 IS NULL THEN now() END
          WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(retry_in.map(|d| d.as_secs_f64()))
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Forgets events after a day — expanded ones, and the others too while no instance that sends
/// notifications is registered (nothing would ever expand them) — and finished notifications
/// after a week.
pub async fn collect(store: &Store) -> Result<u64, StoreError> {
    let a = sqlx::query(
        "DELETE FROM task_event
          WHERE at < now() - interval '1 day'
            AND (expanded OR NOT EXISTS (SELECT 1 FROM instance WHERE notifies))",
    )
    .execute(&store.pool)
    .await?
    .rows_affected();
    let b = sqlx::query(
        "DELETE FROM notification WHERE (delivered IS NOT NULL OR given_up IS NOT NULL)
            AND created < now() - interval '7 days'",
    )
    .execute(&store.pool)
    .await?
    .rows_affected();
    Ok(a + b)
}

/// Unfinished tasks with an `expected_duration` deadline (recorded when each first ran, see
/// migration 0019) not yet reported overdue, earliest deadline first: (task, template, state,
/// deadline).
pub async fn overdue_candidates(
    store: &Store,
    limit: i64,
) -> Result<Vec<(Uuid, String, String, DateTime<Utc>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.template_name, t.state, d.deadline
           FROM task_deadline d JOIN task t ON t.id = d.task_id
          WHERE t.state NOT IN ('DONE', 'CANCELLED', 'WONTFIX')
            AND NOT EXISTS (SELECT 1 FROM task_overdue o WHERE o.task_id = d.task_id)
          ORDER BY d.deadline LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&store.pool)
    .await?)
}

/// Marks a task overdue and records the event to notify, once (false when already marked).
pub async fn mark_overdue(
    store: &Store,
    task: Uuid,
    template: &str,
    state: &str,
) -> Result<bool, StoreError> {
    let mut tx = store.pool.begin().await?;
    let first =
        sqlx::query("INSERT INTO task_overdue (task_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(task)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    // reported once: the deadline is done with
    sqlx::query("DELETE FROM task_deadline WHERE task_id = $1")
        .bind(task)
        .execute(&mut *tx)
        .await?;
    if first {
        sqlx::query(
            "INSERT INTO task_event (task_id, template, old_state, new_state, hooked)
             SELECT $1, $2, $3, 'OVERDUE', status_hook_enc IS NOT NULL FROM task WHERE id = $1",
        )
        .bind(task)
        .bind(template)
        .bind(state)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(first)
}

/// When the earliest pending notification is due (the notifier sleeps until then).
pub async fn next_attempt(
    store: &Store,
    backends: &[String],
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT min(next_attempt) FROM notification
          WHERE delivered IS NULL AND given_up IS NULL AND backend = ANY($1)",
    )
    .bind(backends)
    .fetch_one(&store.pool)
    .await?)
}

/// Where a notification is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt (or being sent).
    Pending,
    /// The receiver accepted it.
    Delivered,
    /// Every attempt failed (or its backend is gone); `retry` re-queues it.
    GivenUp,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::GivenUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::GivenUp => "given_up",
        }
    }

    /// `pending`, `delivered`, `given_up` (also `given-up`).
    pub fn parse(s: &str) -> Option<DeliveryState> {
        match s.trim() {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "given_up" | "given-up" => Some(DeliveryState::GivenUp),
            _ => None,
        }
    }
}

/// One outbox entry as listed: its delivery bookkeeping and the event it notifies, never its
/// payload (sealed: titles, messages, hook URLs).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Entry {
    pub id: Uuid,
    pub backend: String,
    pub attempts: i32,
    pub next_attempt: DateTime<Utc>,
    pub delivered: Option<DateTime<Utc>>,
    pub given_up: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created: DateTime<Utc>,
    /// The event (absent when it was collected before the notification).
    pub task_id: Option<Uuid>,
    pub template: Option<String>,
    pub old_state: Option<String>,
    pub new_state: Option<String>,
}

impl Entry {
    pub fn state(&self) -> DeliveryState {
        if self.delivered.is_some() {
            DeliveryState::Delivered
        } else if self.given_up.is_some() {
            DeliveryState::GivenUp
        } else {
            DeliveryState::Pending
        }
    }

    /// What the notification tells: `task_created`, `task_state_update`, `task_overdue` or
    /// `message` (the `notify` action); `None` when its event is gone.
    pub fn action(&self) -> Option<&'static str> {
        Some(
            match (self.old_state.as_deref(), self.new_state.as_deref()?) {
                (_, "OVERDUE") => "task_overdue",
                (_, "MESSAGE") => "message",
                (None, _) => "task_created",
                _ => "task_state_update",
            },
        )
    }
}

/// One page of the outbox, newest first (ids are UUIDv7: time-ordered): entries strictly after
/// the `after` id, at most `limit`.
pub async fn list(
    store: &Store,
    state: Option<DeliveryState>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT n.id, n.backend, n.attempts, n.next_attempt, n.delivered, n.given_up,
                n.last_error, n.created, e.task_id, e.template, e.old_state, e.new_state
           FROM notification n LEFT JOIN task_event e ON e.id = n.event_id
          WHERE CASE $1::text
                    WHEN 'pending' THEN n.delivered IS NULL AND n.given_up IS NULL
                    WHEN 'delivered' THEN n.delivered IS NOT NULL
                    WHEN 'given_up' THEN n.delivered IS NULL AND n.given_up IS NOT NULL
                    ELSE true END
            AND ($2::uuid IS NULL OR n.id < $2)
          ORDER BY n.id DESC LIMIT $3",
    )
    .bind(state.map(DeliveryState::as_str))
    .bind(after)
    .bind(limit)
    .fetch_all(&store.pool)
    .await?)
}

/// One outbox entry.
pub async fn get(store: &Store, id: Uuid) -> Result<Option<Entry>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT n.id, n.backend, n.attempts, n.next_attempt, n.delivered, n.given_up,
                n.last_error, n.created, e.task_id, e.template, e.old_state, e.new_state
           FROM notification n LEFT JOIN task_event e ON e.id = n.event_id
          WHERE n.id = $1",
    )
    .bind(id)
    .fetch_optional(&store.pool)
    .await?)
}

/// Re-queues an undelivered notification now, with a fresh series of attempts, and wakes the
/// notifiers; false when it does not exist or was delivered.
pub async fn retry(store: &Store, id: Uuid) -> Result<bool, StoreError> {
    let mut tx = store.pool.begin().await?;
    let n = sqlx::query(
        "UPDATE notification SET given_up = NULL, attempts = 0, next_attempt = now()
          WHERE id = $1 AND delivered IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 1 {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(super::wake::EVENT_CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}
