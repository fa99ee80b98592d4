//! Wake-up hints over LISTEN/NOTIFY for the background loops other than the claim loop (which
//! has its own listener): `mutask_schedule` (a schedule was created, changed, resumed or fired —
//! sent by a trigger on `schedule`) and `mutask_event` (a task was created or changed state — sent
//! by the `task_event` trigger). A hint only shortens a sleep: every loop also wakes on its own
//! timer, so a lost notification (or a lost LISTEN connection) delays work, never loses it. When
//! the connection comes back every waiter is woken once, in case it missed something.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Store;

/// Channel of schedule changes.
pub const SCHEDULE_CHANNEL: &str = "mutask_schedule";
/// Channel of task events (notifications to build).
pub const EVENT_CHANNEL: &str = "mutask_event";

/// The waiters of one instance.
#[derive(Debug, Clone, Default)]
pub struct Wakeups {
    pub schedule: Arc<Notify>,
    pub event: Arc<Notify>,
}

impl Wakeups {
    fn wake_all(&self) {
        self.schedule.notify_one();
        self.event.notify_one();
    }

    fn wake(&self, channel: &str) {
        match channel {
            SCHEDULE_CHANNEL => self.schedule.notify_one(),
            EVENT_CHANNEL => self.event.notify_one(),
            _ => {}
        }
    }
}

/// Listens until `cancel`, reconnecting after a lost connection.
pub async fn listen(store: Store, wakeups: Wakeups, cancel: CancellationToken) {
    loop {
        let connected = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&store.pool).await?;
            l.listen_all([SCHEDULE_CHANNEL, EVENT_CHANNEL]).await?;
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
                    Ok(n) => wakeups.wake(n.channel()),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost");
                        break;
                    }
                },
            }
        }
    }
}
