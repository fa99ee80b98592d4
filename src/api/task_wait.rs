//! `?wait=` on `POST /task` and `GET /task/{id}`: answer once the task has settled, so a caller
//! that needs the outcome does not poll.
//!
//! A task has settled when it will not move on its own: DONE, CANCELLED, WONTFIX, BLOCKED (it
//! needs a human), or TODO without a resolution (nobody runs it until a resolver does). The
//! request watches the task before it reads it, then reads it again on every hint: the
//! `mutask_task_settled` NOTIFY (sent by the `task_event` trigger, migration 0022, whichever
//! instance changed the task) or its own timer every [`RECHECK`] — the hint only makes it sooner.
//! The wait ends at its deadline (the task is answered as it then is) and at once when the
//! instance begins to shut down.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{ApiError, AppState};
use crate::domain::TaskState;
use crate::store::{self, task::TaskRecord, wake::TaskWatch};

/// Longest wait a request may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// How often a waiting request reads its task without a hint.
pub const RECHECK: Duration = Duration::from_secs(5);

/// The `wait` query parameter.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Answer only once the task has settled (DONE, CANCELLED, WONTFIX, BLOCKED, or TODO
    /// without a resolution) or this long has passed (a Go duration such as `30s`, at most
    /// `60s`); the task is answered as it then is.
    pub wait: Option<String>,
}

impl WaitQuery {
    /// The wait asked for, checked (`None`: answer at once).
    pub fn duration(&self) -> Result<Option<Duration>, ApiError> {
        let Some(raw) = self.wait.as_deref() else {
            return Ok(None);
        };
        let bad =
            |why: String| ApiError::BadRequest(format!("query parameter `wait` (`{raw}`): {why}"));
        let d = crate::domain::duration::parse(raw).map_err(|e| bad(e.to_string()))?;
        if d > MAX_WAIT {
            return Err(bad(format!("at most {}s", MAX_WAIT.as_secs())));
        }
        Ok((!d.is_zero()).then_some(d))
    }
}

/// True when the task will not move on its own.
pub fn settled(t: &TaskRecord) -> bool {
    matches!(
        t.state,
        TaskState::Done | TaskState::Cancelled | TaskState::WontFix | TaskState::Blocked
    ) || (t.state == TaskState::Todo && t.resolution_id.is_none())
}

/// The task once it has settled, or as it is when `wait` has passed or the instance stops.
/// `watch`: the task's watch when it began before `task` was read (else one begins here, and
/// the task is read again).
pub async fn until_settled(
    state: &AppState,
    task: TaskRecord,
    wait: Duration,
    watch: Option<TaskWatch<'_>>,
) -> Result<TaskRecord, ApiError> {
    if settled(&task) {
        return Ok(task);
    }
    let deadline = Instant::now() + wait;
    let id = task.id;
    let read = || async {
        store::task::get(&state.store, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("task {id} was deleted while waiting")))
    };
    let (watch, mut task) = match watch {
        Some(w) => (w, task),
        None => {
            let w = state.task_waits.watch(id);
            // read after the watch began: a settlement from now on is heard
            (w, read().await?)
        }
    };
    loop {
        if settled(&task) {
            return Ok(task);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !watch.changed(left.min(RECHECK)).await {
            return Ok(task);
        }
        task = read().await?;
    }
}
