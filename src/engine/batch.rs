//! Group commit for the engine's hot statements.
//!
//! Every cycle starts with one read (resolution, task and steps, [`store_res::load_many`]) and
//! ends with one fenced write (steps, resolution, task). When many cycles run at once — a
//! claimed batch of short tasks — a [`Combiner`] hands every request waiting in its queue to one
//! call that serves them all with one statement per kind: [`Loads`] reads with `= ANY($1)`,
//! [`Ends`] writes with [`store_res::end_cycles`], each end still fenced by its own claim.
//! Nothing waits to fill a batch: a lone request is served at once, and requests that arrive
//! while a statement runs form the next batch, so batches grow with the load.
//!
//! Invariants: a caller learns its outcome only after the statement finished (for ends: after
//! it committed); when a batched statement fails, each request of that batch is served on its
//! own, so one bad request cannot fail the others.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::domain::ResolutionId;
use crate::store::resolution::{
    self as store_res, EndOfCycle, LostClaim, ResolutionRecord, StepRecord,
};
use crate::store::task::TaskRecord;
use crate::store::{Store, StoreError};

/// Most requests served by one statement.
const MAX_BATCH: usize = 64;

type Queue<T, R> = mpsc::UnboundedSender<(T, oneshot::Sender<R>)>;

/// A queue served in batches by one task (cheap to clone; the task starts on first use and
/// stops when the last clone is dropped).
pub struct Combiner<T, R> {
    queue: Arc<OnceLock<Queue<T, R>>>,
}

impl<T, R> Clone for Combiner<T, R> {
    fn clone(&self) -> Self {
        Combiner {
            queue: self.queue.clone(),
        }
    }
}

impl<T, R> Default for Combiner<T, R> {
    fn default() -> Self {
        Combiner {
            queue: Arc::new(OnceLock::new()),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Combiner<T, R> {
    /// Queues `item`; `serve` (fixed by the first call) answers a batch, one answer per item in
    /// order. `None` when the serving task is gone (its runtime stopped).
    async fn submit<F, Fut>(&self, item: T, serve: F) -> Option<R>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(serve_loop(rx, serve));
            tx
        });
        let (reply, answer) = oneshot::channel();
        queue.send((item, reply)).ok()?;
        answer.await.ok()
    }
}

async fn serve_loop<T, R, F, Fut>(
    mut rx: mpsc::UnboundedReceiver<(T, oneshot::Sender<R>)>,
    serve: F,
) where
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = Vec<R>>,
{
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
        for (answer, reply) in serve(items).await.into_iter().zip(replies) {
            let _ = reply.send(answer);
        }
    }
}

type EndOutcome = Result<Result<(), LostClaim>, StoreError>;

/// The ends of an engine's cycles, written together.
#[derive(Clone, Default)]
pub struct Ends(Combiner<EndOfCycle, EndOutcome>);

impl Ends {
    /// Writes the end of a cycle, possibly in one statement with others.
    pub async fn end(&self, store: &Store, end: EndOfCycle) -> EndOutcome {
        let claim = end.claim;
        let s = store.clone();
        self.0
            .submit(end, move |batch| write_ends(s.clone(), batch))
            .await
            // the writer went away without an answer: whether it landed is unknown, so the
            // cycle stops writing (recovery finds the resolution if it did not)
            .unwrap_or(Ok(Err(LostClaim(claim.resolution))))
    }
}

async fn write_ends(store: Store, batch: Vec<EndOfCycle>) -> Vec<EndOutcome> {
    if batch.len() > 1 {
        match store_res::end_cycles(&store, &batch).await {
            Ok(fenced) => {
                return batch
                    .iter()
                    .map(|e| {
                        let id = e.claim.resolution;
                        Ok(if fenced.contains(&id) {
                            Ok(())
                        } else {
                            Err(LostClaim(id))
                        })
                    })
                    .collect();
            }
            Err(e) => {
                // e.g. a deadlock with a concurrent recovery: each on its own below
                tracing::debug!(error = %e, ends = batch.len(), "batched end of cycles failed; writing them one by one");
            }
        }
    }
    let mut out = Vec::with_capacity(batch.len());
    for e in &batch {
        out.push(
            store_res::end_cycle(&store, &e.claim, Some(e.task), &e.steps, &e.removed, &e.end)
                .await,
        );
    }
    out
}

/// What a cycle reads first.
pub struct Loaded {
    pub resolution: ResolutionRecord,
    pub task: TaskRecord,
    pub steps: Vec<StepRecord>,
}

type LoadOutcome = Result<Option<Loaded>, StoreError>;

/// The first reads of an engine's cycles, done together.
#[derive(Clone, Default)]
pub struct Loads(Combiner<ResolutionId, LoadOutcome>);

impl Loads {
    /// A resolution, its task and its steps (`None` when the resolution or its task is gone).
    pub async fn load(&self, store: &Store, id: ResolutionId) -> LoadOutcome {
        let s = store.clone();
        match self
            .0
            .submit(id, move |batch| read_many(s.clone(), batch))
            .await
        {
            Some(answer) => answer,
            None => read_one(store, id).await,
        }
    }
}

impl From<store_res::Loaded> for Loaded {
    fn from((resolution, task, steps): store_res::Loaded) -> Loaded {
        Loaded {
            resolution,
            task,
            steps,
        }
    }
}

async fn read_one(store: &Store, id: ResolutionId) -> LoadOutcome {
    Ok(store_res::load_many(store, &[id])
        .await?
        .pop()
        .map(Loaded::from))
}

async fn read_many(store: Store, ids: Vec<ResolutionId>) -> Vec<LoadOutcome> {
    if ids.len() > 1 {
        match store_res::load_many(&store, &ids).await {
            Ok(rows) => {
                let mut found: std::collections::HashMap<ResolutionId, Loaded> = rows
                    .into_iter()
                    .map(|row| (row.0.id, Loaded::from(row)))
                    .collect();
                return ids.iter().map(|id| Ok(found.remove(id))).collect();
            }
            Err(e) => {
                tracing::debug!(error = %e, reads = ids.len(), "batched cycle reads failed; reading them one by one");
            }
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(read_one(&store, id).await);
    }
    out
}
