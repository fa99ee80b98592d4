//! The collector that feeds the engine in `mutask serve`: claims due resolutions in batches and
//! runs their cycles, at most `max_concurrent` at a time.
//!
//! Wake-ups: `LISTEN mutask_resolution` is a hint (task creation, a parent woken, a retry made
//! due — the instance that set the retry sends it when the retry is due) that makes the loop
//! claim at once; polling every `poll_interval` (5 s) is the correctness path, so a lost
//! notification only delays work. Together with crash recovery (every lease/4, at most 10 s), the
//! heartbeat (10 s) and the ticker and notifier (NOTIFY or 30 s), an idle instance makes about
//! 0.5 queries per second (tests/idle_queries.rs). The loop keeps claiming while it fills every
//! free slot, and sleeps only when the queue is drained. On shutdown it stops claiming and waits
//! (bounded) for running cycles.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::domain::ResolutionId;
use crate::store::resolution as store_res;
use crate::store::task::RESOLUTION_CHANNEL;

use super::Engine;

/// Collector settings.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub max_concurrent: usize,
    pub poll_interval: Duration,
    /// Most resolutions claimed per statement (at most `store::resolution::MAX_CLAIM`).
    pub batch: i64,
    /// How often expired leases are looked for (crash recovery).
    pub recovery_interval: Duration,
    /// Finished tasks older than this are deleted (µTask's `completed_task_expiration`).
    pub completed_task_expiration: Duration,
    /// Step logs older than this are deleted.
    pub log_retention: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            max_concurrent: 100,
            poll_interval: Duration::from_secs(5),
            batch: 32,
            recovery_interval: Duration::from_secs(5),
            completed_task_expiration: crate::config::DEFAULT_COMPLETED_TASK_EXPIRATION,
            log_retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// A running collector.
pub struct Runner {
    engine: Engine,
    cancel: CancellationToken,
    main: JoinHandle<()>,
    listener: JoinHandle<()>,
    maintenance: JoinHandle<()>,
    slots: Arc<Semaphore>,
    max: usize,
    hint: Arc<ClaimHint>,
}

/// Wakes the claim loop. Resolutions this instance creates are announced here before they are
/// written: the loop is woken at once when they are, and their `mutask_resolution` NOTIFY,
/// which comes back to this instance too, does not wake it a second time for nothing. While
/// the loop has room, the API takes a free slot ([`ClaimHint::take_slot`]) and creates the
/// task already claimed by this instance, then starts its cycle: no claim statement, no NOTIFY,
/// and the other instances are not woken to race it for the task.
#[derive(Default)]
pub struct ClaimHint {
    notify: Notify,
    /// Announced resolutions whose NOTIFY has not come back yet (the oldest are forgotten).
    expected: std::sync::Mutex<std::collections::VecDeque<ResolutionId>>,
    /// The claim loop's free execution slots (none known: no room).
    slots: Option<Arc<Semaphore>>,
    /// The runner is stopping: it claims nothing more.
    closed: std::sync::atomic::AtomicBool,
    /// Runs the cycles of tasks created claimed here (none: no claim loop).
    engine: Option<Engine>,
}

impl std::fmt::Debug for ClaimHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimHint")
            .field("announced", &self.announced())
            .field("has_room", &self.has_room())
            .finish_non_exhaustive()
    }
}

/// A free execution slot of this instance's claim loop, taken for a task about to be created
/// here ([`ClaimHint::take_slot`]). Dropped unused, the slot is free again.
pub struct LocalSlot {
    permit: tokio::sync::OwnedSemaphorePermit,
    engine: Engine,
}

impl LocalSlot {
    /// The claim the task is to be created with (this instance, its lease).
    pub fn claim(&self) -> store_res::NewClaim {
        store_res::NewClaim {
            owner: self.engine.instance,
            lease: self.engine.settings.lease,
        }
    }

    /// Runs the cycle of the task created with [`LocalSlot::claim`], in this slot.
    pub fn start(self, claim: store_res::Claim, loaded: store_res::Loaded) {
        spawn_cycle(
            self.engine,
            self.permit,
            claim,
            crate::domain::ResolutionState::ToAutorun,
            Some(Ok(loaded)),
        );
    }
}

/// Most announced resolutions remembered (a NOTIFY comes back within milliseconds).
const EXPECTED: usize = 256;

impl ClaimHint {
    /// The claim loop is running and has a free execution slot: a resolution created here now
    /// is claimed here, without waking the other instances.
    pub fn has_room(&self) -> bool {
        !self.closed.load(std::sync::atomic::Ordering::Relaxed)
            && self
                .slots
                .as_ref()
                .is_some_and(|s| s.available_permits() > 0)
    }

    /// Takes a free execution slot for a task about to be created here (none when the loop is
    /// stopping or every slot is taken).
    pub fn take_slot(&self) -> Option<LocalSlot> {
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let permit = self.slots.clone()?.try_acquire_owned().ok()?;
        Some(LocalSlot {
            permit,
            engine: self.engine.clone()?,
        })
    }

    /// `id` is about to be created here, claimable: its NOTIFY need not wake this instance.
    pub fn expect(&self, id: ResolutionId) {
        if let Ok(mut q) = self.expected.lock() {
            if q.len() >= EXPECTED {
                q.pop_front();
            }
            q.push_back(id);
        }
    }

    /// `id` was not created claimable after all (no NOTIFY will come for its creation).
    pub fn withdraw(&self, id: ResolutionId) {
        if let Ok(mut q) = self.expected.lock()
            && let Some(i) = q.iter().position(|x| *x == id)
        {
            q.remove(i);
        }
    }

    /// How many announced resolutions still await their NOTIFY.
    pub fn announced(&self) -> usize {
        self.expected.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Wakes the claim loop (work became claimable).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// A `mutask_resolution` NOTIFY came: wakes the loop unless it announces a resolution this
    /// instance created (and woke it for) itself.
    fn heard(&self, payload: &str) {
        if let Ok(id) = payload.parse::<ResolutionId>()
            && let Ok(mut q) = self.expected.lock()
            && let Some(i) = q.iter().position(|x| *x == id)
        {
            q.remove(i);
            return;
        }
        self.notify.notify_one();
    }
}

impl Runner {
    /// Starts claiming and running resolutions, and the maintenance collectors.
    pub fn start(engine: Engine, settings: RunnerSettings) -> Runner {
        let cancel = CancellationToken::new();
        let slots = Arc::new(Semaphore::new(settings.max_concurrent.max(1)));
        let hint = Arc::new(ClaimHint {
            slots: Some(slots.clone()),
            engine: Some(engine.clone()),
            ..ClaimHint::default()
        });
        let listener = tokio::spawn(listen(engine.clone(), hint.clone(), cancel.clone()));
        let maintenance = tokio::spawn(maintenance_loop(
            engine.clone(),
            settings.clone(),
            cancel.clone(),
        ));
        let main = tokio::spawn(claim_loop(
            engine.clone(),
            settings.clone(),
            hint.clone(),
            slots.clone(),
            cancel.clone(),
        ));
        Runner {
            engine,
            cancel,
            main,
            listener,
            maintenance,
            slots,
            max: settings.max_concurrent.max(1),
            hint,
        }
    }

    /// What wakes the claim loop (as the `mutask_resolution` NOTIFY does): for work this
    /// instance makes claimable itself.
    pub fn waker(&self) -> Arc<ClaimHint> {
        self.hint.clone()
    }

    /// Stops claiming; running cycles stop launching steps and end once their running steps
    /// finish (CRASHED, so another instance resumes them). Past `grace`, whatever this instance
    /// still owns is handed back at once.
    pub async fn shutdown(self, grace: Duration) {
        self.hint
            .closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.cancel.cancel();
        self.engine.shutdown.cancel();
        let _ = self.main.await;
        self.listener.abort();
        self.maintenance.abort();
        if tokio::time::timeout(grace, self.slots.acquire_many(self.max as u32))
            .await
            .is_err()
        {
            match store_res::hand_back(&self.engine.store, self.engine.instance).await {
                Ok(n) => tracing::warn!(
                    handed_back = n,
                    "cycles still running after the shutdown grace period"
                ),
                Err(e) => tracing::error!(error = %e, "handing resolutions back failed"),
            }
        }
    }
}

/// Crash recovery (expired leases), garbage collection of old finished tasks, step log
/// retention, dead instance rows, empty batches.
async fn maintenance_loop(engine: Engine, settings: RunnerSettings, cancel: CancellationToken) {
    let gc_every = gc_interval(settings.completed_task_expiration);
    let mut last_gc: Option<tokio::time::Instant> = None;
    let mut last_housekeeping: Option<tokio::time::Instant> = None;
    loop {
        match store_res::recover_expired(&engine.store).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(
                    count = ids.len(),
                    ?ids,
                    "recovered resolutions whose lease expired"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "crash recovery failed"),
        }
        if last_gc.is_none_or(|t| t.elapsed() >= gc_every) {
            last_gc = Some(tokio::time::Instant::now());
            match crate::store::task::collect_garbage(
                &engine.store,
                settings.completed_task_expiration,
                GC_BATCH,
                &cancel,
            )
            .await
            {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "expired finished tasks deleted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
            }
        }
        if last_housekeeping.is_none_or(|t| t.elapsed() > Duration::from_secs(600)) {
            last_housekeeping = Some(tokio::time::Instant::now());
            match crate::store::step_log::collect(&engine.store, settings.log_retention, 10_000)
                .await
            {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "expired step log chunks deleted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "step log retention failed"),
            }
            if let Err(e) = crate::store::task::collect_empty_batches(&engine.store).await {
                tracing::warn!(error = %e, "deleting empty batches failed");
            }
            if let Err(e) =
                crate::store::instance::forget_dead(&engine.store, Duration::from_secs(3600)).await
            {
                tracing::warn!(error = %e, "forgetting dead instances failed");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(settings.recovery_interval.min(gc_every)) => {},
        }
    }
}

/// Finished tasks deleted per statement by the garbage collector.
const GC_BATCH: i64 = 1000;

/// How often the garbage collector looks for expired tasks: every minute, or as often as the
/// expiration if it is shorter (µTask looks once a day, which cannot keep up with more than a
/// few tasks a second).
fn gc_interval(expiration: Duration) -> Duration {
    expiration.clamp(Duration::from_secs(1), Duration::from_secs(60))
}

async fn listen(engine: Engine, hint: Arc<ClaimHint>, cancel: CancellationToken) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&engine.store.pool).await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; polling only until it is back");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        if let Err(e) = listener.listen(RESOLUTION_CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed");
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                n = listener.recv() => match n {
                    Ok(n) => hint.heard(n.payload()),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost");
                        break;
                    }
                },
            }
        }
    }
}

async fn claim_loop(
    engine: Engine,
    settings: RunnerSettings,
    hint: Arc<ClaimHint>,
    slots: Arc<Semaphore>,
    cancel: CancellationToken,
) {
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                _ = cancel.cancelled() => return,
                p = slots.clone().acquire_owned() => drop(p),
            }
            continue;
        }
        let want = claim_size(free, settings.batch);
        // the slots are reserved before the claim: a request creating a task claimed here
        // (`ClaimHint::take_slot`) may take one at any time, and a claimed resolution must not
        // wait for a slot without a heartbeat on its lease
        let Ok(mut reserved) = slots.clone().try_acquire_many_owned(want as u32) else {
            continue; // taken meanwhile: count the free slots again
        };
        let claims = match store_res::claim_due_loaded(
            &engine.store,
            engine.instance,
            want,
            engine.settings.lease,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming resolutions failed");
                Vec::new()
            }
        };
        let got = claims.len() as i64;
        for (claim, previous, loaded) in claims {
            // at most `want` are claimed: the reserved slots suffice
            let permit = match reserved.split(1) {
                Some(p) => p,
                None => match slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            spawn_cycle(engine.clone(), permit, claim, previous, Some(loaded));
        }
        drop(reserved); // the slots left over are free again
        if got == want {
            continue; // more may be waiting: keep draining
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = hint.notify.notified() => {},
            _ = tokio::time::sleep(settings.poll_interval) => {},
        }
    }
}

/// Runs a claimed resolution's cycle in the execution slot `permit`.
fn spawn_cycle(
    engine: Engine,
    permit: tokio::sync::OwnedSemaphorePermit,
    claim: store_res::Claim,
    previous: crate::domain::ResolutionState,
    loaded: Option<Result<store_res::Loaded, crate::store::StoreError>>,
) {
    tokio::spawn(async move {
        match engine.run_claimed_loaded(claim, previous, loaded).await {
            Ok(state) => tracing::debug!(resolution = %claim.resolution, ?state, "cycle done"),
            Err(e) => tracing::warn!(resolution = %claim.resolution, error = %e, "cycle failed"),
        }
        drop(permit);
    });
}

/// How many resolutions to claim with `free` slots: the largest power of two that is at most
/// `free` and `batch`, so that an instance's connections prepare a handful of claim statements
/// (their limit is part of the text: see `store::resolution::claim_cte`); the loop claims again
/// for the rest.
fn claim_size(free: usize, batch: i64) -> i64 {
    let want = (free as i64).min(batch).clamp(1, store_res::MAX_CLAIM);
    1 << want.ilog2()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the claim loop would be woken now (consumes the wake-up).
    async fn woken(h: &ClaimHint) -> bool {
        tokio::time::timeout(Duration::from_millis(20), h.notify.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn the_notify_of_a_resolution_created_here_does_not_wake_the_loop_twice() {
        let h = ClaimHint::default();
        let (mine, other) = (ResolutionId::new(), ResolutionId::new());
        h.expect(mine);
        h.wake();
        assert!(woken(&h).await, "the creating request wakes the loop");
        h.heard(&mine.to_string());
        assert!(!woken(&h).await, "its NOTIFY does not wake it again");
        // only once: a second NOTIFY for the same resolution wakes the loop
        h.heard(&mine.to_string());
        assert!(woken(&h).await);
        // work from elsewhere, and hints without an id, always wake it
        h.heard(&other.to_string());
        assert!(woken(&h).await);
        h.heard("");
        assert!(woken(&h).await);
        // an announcement withdrawn (created delayed, or not at all) skips nothing
        let delayed = ResolutionId::new();
        h.expect(delayed);
        h.withdraw(delayed);
        h.heard(&delayed.to_string());
        assert!(woken(&h).await, "a later NOTIFY for it wakes the loop");
    }

    #[test]
    fn claims_take_a_power_of_two_within_the_free_slots_and_the_batch() {
        assert_eq!(claim_size(1, 32), 1);
        assert_eq!(claim_size(3, 32), 2);
        assert_eq!(claim_size(31, 32), 16);
        assert_eq!(claim_size(100, 32), 32);
        assert_eq!(claim_size(100, 20), 16);
        assert_eq!(claim_size(1000, 1000), store_res::MAX_CLAIM);
    }

    #[test]
    fn there_is_room_only_in_a_running_loop_with_a_free_slot() {
        assert!(!ClaimHint::default().has_room(), "no claim loop");
        let slots = Arc::new(Semaphore::new(1));
        let h = ClaimHint {
            slots: Some(slots.clone()),
            ..ClaimHint::default()
        };
        assert!(h.has_room());
        let taken = slots.try_acquire().unwrap();
        assert!(!h.has_room(), "every slot taken");
        drop(taken);
        assert!(h.has_room());
        h.closed.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(!h.has_room(), "stopping");
    }

    #[tokio::test]
    async fn announced_resolutions_are_remembered_up_to_a_bound() {
        let h = ClaimHint::default();
        let first = ResolutionId::new();
        h.expect(first);
        for _ in 0..EXPECTED {
            h.expect(ResolutionId::new());
        }
        assert_eq!(h.expected.lock().unwrap().len(), EXPECTED);
        // the oldest was forgotten: its NOTIFY wakes the loop, as any other would
        h.heard(&first.to_string());
        assert!(woken(&h).await);
    }
}
