//! Wake-up hints over LISTEN/NOTIFY for the background loops other than the claim loop (which
//! has its own listener): `mutask_schedule` (a schedule was created, changed, resumed or fired —
//! sent by a trigger on `schedule`) and `mutask_event` (a task was created or changed state — sent
//! by the `task_event` trigger). A hint only shortens a sleep: every loop also wakes on its own
//! timer, so a lost notification (or a lost LISTEN connection) delays work, never loses it. When
//! the connection comes back every waiter is woken once, in case it missed something.
//!
//! `mutask_task_settled` (a task reached DONE, CANCELLED, WONTFIX or BLOCKED; its id is the
//! payload) wakes the API requests that wait for that task ([`TaskWaits`]); they also look again
//! on their own timer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Store;
use crate::domain::TaskId;

/// Channel of schedule changes.
pub const SCHEDULE_CHANNEL: &str = "mutask_schedule";
/// Channel of task events (notifications to build).
pub const EVENT_CHANNEL: &str = "mutask_event";
/// Channel of settled tasks (payload: the task id).
pub const SETTLED_CHANNEL: &str = "mutask_task_settled";

/// The waiters of one instance.
#[derive(Debug, Clone, Default)]
pub struct Wakeups {
    pub schedule: Arc<Notify>,
    pub event: Arc<Notify>,
    pub settled: Arc<TaskWaits>,
}

impl Wakeups {
    fn wake_all(&self) {
        self.schedule.notify_one();
        self.event.notify_one();
        self.settled.wake_all();
    }

    fn wake(&self, channel: &str, payload: &str) {
        match channel {
            SCHEDULE_CHANNEL => self.schedule.notify_one(),
            EVENT_CHANNEL => self.event.notify_one(),
            SETTLED_CHANNEL => {
                if let Ok(id) = payload.parse() {
                    self.settled.wake(id);
                }
            }
            _ => {}
        }
    }
}

/// The requests of one instance waiting for tasks to settle, by task.
#[derive(Debug, Default)]
pub struct TaskWaits {
    /// Each watched task: its hints, and how many watches it has.
    waits: Mutex<HashMap<TaskId, (Arc<Hints>, usize)>>,
    /// The instance is shutting down: waits end at once.
    closed: AtomicBool,
    closing: Notify,
}

/// The hints given about one task: counted, so a watch sees one that came while it was not
/// waiting.
#[derive(Debug, Default)]
struct Hints {
    notify: Notify,
    count: AtomicU64,
}

impl Hints {
    fn give(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// One request's wait for one task (see [`TaskWaits::watch`]); dropping it stops watching.
pub struct TaskWatch<'a> {
    waits: &'a TaskWaits,
    task: TaskId,
    hints: Arc<Hints>,
    /// The hint count this watch has seen.
    seen: AtomicU64,
}

impl TaskWaits {
    /// Starts watching `task`. Watch before reading the task's state: a settlement after the
    /// watch began is never missed.
    pub fn watch(&self, task: TaskId) -> TaskWatch<'_> {
        let hints = match self.waits.lock() {
            Ok(mut m) => {
                let e = m.entry(task).or_insert_with(|| (Arc::default(), 0));
                e.1 += 1;
                e.0.clone()
            }
            // a poisoned map: this wait relies on its own timer
            Err(_) => Arc::default(),
        };
        let seen = AtomicU64::new(hints.count.load(Ordering::SeqCst));
        TaskWatch {
            waits: self,
            task,
            hints,
            seen,
        }
    }

    fn wake(&self, task: TaskId) {
        if let Ok(m) = self.waits.lock()
            && let Some((h, _)) = m.get(&task)
        {
            h.give();
        }
    }

    fn wake_all(&self) {
        if let Ok(m) = self.waits.lock() {
            for (h, _) in m.values() {
                h.give();
            }
        }
    }

    /// Ends every wait, now and to come (the instance is stopping).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closing.notify_waiters();
    }

    /// True once [`TaskWaits::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// How many tasks are watched (for tests and metrics).
    pub fn watched(&self) -> usize {
        self.waits.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl TaskWatch<'_> {
    /// Waits until the task may have settled (a hint), `timeout` passes, or the instance stops;
    /// false when the instance stops. The caller reads the task again either way.
    pub async fn changed(&self, timeout: Duration) -> bool {
        let closing = self.waits.closing.notified();
        tokio::pin!(closing);
        closing.as_mut().enable();
        let hinted = self.hints.notify.notified();
        tokio::pin!(hinted);
        hinted.as_mut().enable();
        if self.waits.is_closed() {
            return false;
        }
        let count = self.hints.count.load(Ordering::SeqCst);
        if self.seen.swap(count, Ordering::SeqCst) != count {
            return true; // a hint came since the caller last looked
        }
        let open = tokio::select! {
            _ = hinted => true,
            _ = tokio::time::sleep(timeout) => true,
            _ = closing => false,
        };
        self.seen
            .store(self.hints.count.load(Ordering::SeqCst), Ordering::SeqCst);
        open
    }
}

impl Drop for TaskWatch<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.waits.waits.lock()
            && let Some(e) = m.get_mut(&self.task)
        {
            e.1 -= 1;
            if e.1 == 0 {
                m.remove(&self.task);
            }
        }
    }
}

/// Listens on `channels` until `cancel`, reconnecting after a lost connection.
pub async fn listen(
    store: Store,
    wakeups: Wakeups,
    channels: &'static [&'static str],
    cancel: CancellationToken,
) {
    loop {
        let connected = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&store.pool).await?;
            l.listen_all(channels.iter().copied()).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            _ = cancel.cancelled() => return,
            l = connected => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; timers only until it is back");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            },
        };
        wakeups.wake_all();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                n = listener.recv() => match n {
                    Ok(n) => wakeups.wake(n.channel(), n.payload()),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost");
                        break;
                    }
                },
            }
        }
    }
}
