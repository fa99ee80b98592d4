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

    /// Ticks every `period` until `shutdown` is cancelled; errors are logged and retried.
    pub async fn run(self, period: Duration, shutdown: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "schedule tick failed");
            }
        }
    }
}
