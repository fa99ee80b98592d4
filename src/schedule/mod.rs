//! Schedules: tasks created from a template on a cron expression, a karajo calendar or an
//! interval ([`spec`]), by a ticker that runs on every instance with the engine role.
//!
//! Each tick reads the schedules whose `next_fire` is due and handles each occurrence once:
//! - inside a suspend window → recorded `skipped_suspended`;
//! - missed (due more than [`MISSED_GRACE`] ago, e.g. after downtime) → policy `skip` records
//!   `skipped_missed` and jumps to the first future occurrence; `run_once` fires one task for
//!   the whole gap, then jumps;
//! - overlap policy `skip` while the previous task of the schedule is unfinished →
//!   `skipped_overlap`;
//! - otherwise a task is created (as the schedule's creator, through the same validation as
//!   `POST /task`, tagged `mutask_schedule=<name>`) → `fired`; a task that cannot be created any
//!   more (template blocked, inputs no longer valid) → `failed` with the reason.
//!
//! Invariants: exactly once across instances — [`store::schedule::fire`] moves `next_fire` with
//! a guarded UPDATE and writes the occurrence and its task in that one transaction; time comes
//! from an injected [`Clock`], never from the database, so tests drive it.

pub mod spec;
pub mod webhook;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::clock::Clock;
use crate::store::{self, Store, StoreError, schedule::Outcome};
use crate::tasks::{self, CreateRequest, Requester};
use crate::template::render::Renderer;

pub use spec::{SpecError, When, Window};

/// An occurrence due longer ago than this counts as missed.
pub const MISSED_GRACE: chrono::Duration = chrono::Duration::seconds(60);

/// Tag given to every task a schedule creates.
pub const SCHEDULE_TAG: &str = "mutask_schedule";

/// The first occurrence after `after` (the schedule's next `next_fire`).
pub fn next_fire(
    when: &str,
    after: DateTime<Utc>,
    anchor: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, SpecError> {
    Ok(When::parse(when)?.next_after(after, anchor))
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub fired: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Occurrences another instance handled first.
    pub lost_races: usize,
}

impl TickReport {
    /// Occurrences this tick dealt with, whatever the outcome.
    pub fn handled(&self) -> usize {
        self.fired + self.skipped + self.failed + self.lost_races
    }
}

/// Creates the tasks of due schedules.
#[derive(Clone)]
pub struct Ticker {
    pub store: Store,
    pub renderer: Arc<Renderer>,
    pub clock: Arc<dyn Clock>,
    pub admins: Arc<HashSet<String>>,
}

impl Ticker {
    /// Handles every due occurrence (in batches of 50) once.
    pub async fn tick(&self) -> Result<TickReport, StoreError> {
        let mut report = TickReport::default();
        let now = self.clock.now();
        for s in store::schedule::due(&self.store, now, 50).await? {
            self.handle(&s, now, &mut report).await?;
        }
        Ok(report)
    }

    async fn handle(
        &self,
        s: &store::schedule::ScheduleRecord,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), StoreError> {
        let Some(occurrence) = s.next_fire else {
            return Ok(());
        };
        let when = match When::parse(&s.when) {
            Ok(w) => w,
            Err(e) => {
                // validated when stored; a later change of syntax must not wedge the ticker
                tracing::error!(schedule = %s.name, error = %e, "unreadable schedule, skipped");
                return Ok(());
            }
        };
        let windows: Vec<Window> = s
            .suspend
            .iter()
            .filter_map(|w| Window::parse(w).ok())
            .collect();
        let missed = occurrence < now - MISSED_GRACE;
        let next = if missed {
            when.next_after(now, s.anchor)
        } else {
            when.next_after(occurrence, s.anchor)
        };
        let (outcome, detail) = if windows.iter().any(|w| w.contains(occurrence)) {
            (Outcome::SkippedSuspended, None)
        } else if missed && s.missed == "skip" {
            (
                Outcome::SkippedMissed,
                Some(format!("missed (due {occurrence}, handled {now})")),
            )
        } else if s.overlap == "skip"
            && match s.last_task {
                Some(t) => store::schedule::task_running(&self.store, t).await?,
                None => false,
            }
        {
            (
                Outcome::SkippedOverlap,
                s.last_task.map(|t| format!("task {t} still running")),
            )
        } else {
            (Outcome::Fired, None)
        };
        if outcome != Outcome::Fired {
            let done = store::schedule::fire(
                &self.store,
                s.id,
                occurrence,
                next,
                outcome,
                detail.as_deref(),
                None,
            )
            .await?;
            if done {
                report.skipped += 1;
                tracing::info!(schedule = %s.name, %occurrence, outcome = outcome.as_str(), "scheduled run skipped");
            } else {
                report.lost_races += 1;
            }
            return Ok(());
        }
        let who = Requester {
            username: s.created_by.clone(),
            groups: Vec::new(),
            is_admin: self.admins.contains(&s.created_by),
        };
        let req = CreateRequest {
            template_name: s.template_name.clone(),
            input: s.input.as_object().cloned().unwrap_or_default(),
            tags: [(SCHEDULE_TAG.to_string(), s.name.clone())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let prepared = tasks::prepare(&self.store, &self.renderer, &who, req).await;
        let done = match &prepared {
            Ok(p) => {
                store::schedule::fire(
                    &self.store,
                    s.id,
                    occurrence,
                    next,
                    Outcome::Fired,
                    detail.as_deref(),
                    Some(store::schedule::FireTask {
                        task: &p.task,
                        resolution: p.resolution.as_ref(),
                        comment: p.comment.as_ref(),
                    }),
                )
                .await?
            }
            Err(e) => {
                let why = e.to_string();
                store::schedule::fire(
                    &self.store,
                    s.id,
                    occurrence,
                    next,
                    Outcome::Failed,
                    Some(&why),
                    None,
                )
                .await?
            }
        };
        match (&prepared, done) {
            (_, false) => report.lost_races += 1,
            (Ok(p), true) => {
                report.fired += 1;
                tracing::info!(schedule = %s.name, %occurrence, task = %p.task.id, "scheduled task created");
            }
            (Err(e), true) => {
                report.failed += 1;
                tracing::warn!(schedule = %s.name, %occurrence, error = %e, "scheduled task not created");
            }
        }
        Ok(())
    }

    /// Fires due schedules until `shutdown` is cancelled, sleeping until the earliest next
    /// occurrence (at most `max_sleep`) or a `wake` hint (a schedule changed: `mutask_schedule`).
    /// An idle instance thus asks the database twice per `max_sleep`, not every second. Errors
    /// are logged and retried after a pause.
    pub async fn run(
        self,
        wake: Arc<tokio::sync::Notify>,
        max_sleep: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let sleep = match self.tick().await {
                Err(e) => {
                    tracing::warn!(error = %e, "schedule tick failed");
                    Duration::from_secs(5)
                }
                Ok(report) => match store::schedule::earliest(&self.store).await {
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the next schedule occurrence failed");
                        Duration::from_secs(5)
                    }
                    Ok(next) => sleep_until(next, self.clock.now(), report.handled(), max_sleep),
                },
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}

/// How long the ticker sleeps: until `next` (at most `max_sleep`). An occurrence already due
/// after a tick that handled nothing is one the tick cannot handle (logged): wait 5 s rather
/// than spin on it.
fn sleep_until(
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    handled: usize,
    max_sleep: Duration,
) -> Duration {
    match next {
        None => max_sleep,
        Some(n) if n <= now => {
            if handled > 0 {
                Duration::ZERO
            } else {
                Duration::from_secs(5).min(max_sleep)
            }
        }
        Some(n) => (n - now).to_std().unwrap_or(max_sleep).min(max_sleep),
    }
}

#[cfg(test)]
mod sleep_tests {
    use super::*;

    #[test]
    fn the_ticker_sleeps_until_the_next_occurrence_within_bounds() {
        let now = Utc::now();
        let max = Duration::from_secs(30);
        assert_eq!(sleep_until(None, now, 0, max), max);
        let soon = now + chrono::Duration::seconds(7);
        assert_eq!(sleep_until(Some(soon), now, 0, max), Duration::from_secs(7));
        let far = now + chrono::Duration::hours(2);
        assert_eq!(sleep_until(Some(far), now, 0, max), max);
        // still due after handling some: more to do at once; handled nothing: do not spin
        let past = now - chrono::Duration::seconds(1);
        assert_eq!(sleep_until(Some(past), now, 50, max), Duration::ZERO);
        assert_eq!(sleep_until(Some(past), now, 0, max), Duration::from_secs(5));
    }
}
