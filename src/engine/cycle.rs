//! One execution cycle of a resolution (µTask's `resolve`), see the module doc of
//! [`crate::engine`]. The loop: launch every available step (foreach parents expand or
//! contract in place, regular steps get their skip conditions evaluated, then run on their own
//! task), wait for one result, apply its check conditions and PRUNE propagation, persist the
//! changed steps (fenced), repeat; a step set to RETRY_NOW is immediately available again;
//! WAITING steps (other than batch) get one extra pass before the cycle ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use crate::domain::{ResolutionId, ResolutionState, StepState, TaskState};
use crate::store::resolution::{self as store_res, CycleEnd, StartRefused, StepWrite};
use crate::store::{self, StoreError};
use crate::template::dialect::{self, Dialect};
use crate::template::model::{
    Condition, ConditionForeach, ConditionType, Dialect as ModelDialect, ForeachStrategy,
    STATE_ANY, THIS_STEP, TaskTemplate, dependency_parts,
};

use super::condition::{self, Eval};
use super::model::{RunResolution, RunStep, StepDef};
use super::resolve;
use super::step::{self, Executed, StepEnv};
use super::templating::Templater;
use super::values::{self, BaseValues, Scope};
use super::{Engine, EngineError};

/// The template's dialect: explicit, else detected over all its strings.
/// Values masked in step logs: password inputs, and every resolver input (resolvers often
/// type credentials there) — string values and the strings of lists.
fn log_secrets(t: &TaskTemplate, input: &Value, resolver_input: &Value) -> Vec<String> {
    use crate::template::model::InputType;
    let mut out = Vec::new();
    let mut push = |v: &Value| match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .for_each(|s| out.push(s.to_string())),
        _ => {}
    };
    for i in t
        .inputs
        .iter()
        .filter(|i| i.input_type == InputType::Password)
    {
        if let Some(v) = input.get(&i.name) {
            push(v);
        }
    }
    if let Value::Object(m) = resolver_input {
        m.values().for_each(&mut push);
    }
    // longest first, so a secret containing another is masked whole
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

pub fn template_dialect(t: &TaskTemplate) -> Dialect {
    match t.dialect {
        Some(ModelDialect::Jinja) => return Dialect::Jinja,
        Some(ModelDialect::Utask) => return Dialect::Utask,
        None => {}
    }
    let mut texts: Vec<String> = vec![t.title_format.clone()];
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            Value::Object(m) => m.values().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    if let Ok(v) = serde_json::to_value(t) {
        collect(&v, &mut texts);
    }
    dialect::detect(texts.iter().map(String::as_str))
}

struct Cycle<'a> {
    engine: &'a Engine,
    claim: store_res::Claim,
    res: RunResolution,
    env: StepEnv,
    positions: HashMap<String, i32>,
    executed: HashSet<String>,
    in_flight: HashSet<String>,
    /// The steps in flight that were written RUNNING first (side effects, a pre-hook or a
    /// delay: [`Cycle::marks_running`]); the others are `echo`s, done in no time.
    durable_in_flight: HashSet<String>,
    contracted: HashSet<String>,
    dirty: HashSet<String>,
    removed: HashSet<String>,
    tags: Map<String, Value>,
    tags_changed: bool,
    /// The task's `steps_done` as last written (written again only when it changes).
    written_done: Option<i32>,
    join: JoinSet<(String, Executed)>,
    task_names: HashMap<tokio::task::Id, String>,
}

impl Cycle<'_> {
    fn templater(&self) -> &Templater {
        &self.env.templater
    }

    fn ctx(&self, this: &str, item: Option<&Value>) -> Value {
        values::context(
            &self.env.base,
            &self.res,
            &Scope {
                this: Some(this),
                iterator: item,
                ..Default::default()
            },
        )
    }

    fn set_state(
        &mut self,
        step: &str,
        state: StepState,
        message: Option<String>,
        modified: &mut HashSet<String>,
    ) {
        if let Some(s) = self.res.steps.get_mut(step) {
            s.state = state;
            if let Some(m) = message {
                s.error = Some(m);
            }
            modified.insert(step.to_string());
        }
    }

    /// Applies a matched condition's `then`.
    fn apply_then(&mut self, this: &str, c: &Condition, modified: &mut HashSet<String>) {
        let message = if c.message.is_empty() {
            None
        } else {
            let item = self.res.steps.get(this).and_then(|s| s.def.item.clone());
            let ctx = self.ctx(this, item.as_ref());
            let ev = self.templater().evaluator(&ctx);
            Some(
                self.templater()
                    .render_str(&c.message, &ctx, &ev)
                    .unwrap_or_else(|e| e),
            )
        };
        for (target, state) in &c.then {
            let target = if target == THIS_STEP {
                this.to_string()
            } else {
                target.clone()
            };
            self.set_state(&target, StepState::parse(state), message.clone(), modified);
        }
    }

    /// Conditions of a step for the given phase.
    fn conditions(&self, name: &str, kind: ConditionType) -> Vec<Condition> {
        let Some(s) = self.res.steps.get(name) else {
            return Vec::new();
        };
        s.def
            .step
            .effective_conditions(&self.env.functions)
            .into_iter()
            .filter(|c| c.condition_type == kind)
            .filter(|c| {
                if s.is_foreach() {
                    // on the parent itself only `foreach: parent` skip conditions run
                    kind == ConditionType::Skip && c.foreach == Some(ConditionForeach::Parent)
                } else if s.is_child() && kind == ConditionType::Skip {
                    c.foreach != Some(ConditionForeach::Parent)
                } else {
                    true
                }
            })
            .collect()
    }

    /// Skip conditions (µTask PreRun); returns true when the step must not run.
    fn pre_run(&mut self, name: &str, modified: &mut HashSet<String>) -> bool {
        let mut skipped = false;
        for c in self.conditions(name, ConditionType::Skip) {
            let item = self.res.steps.get(name).and_then(|s| s.def.item.clone());
            let ctx = self.ctx(name, item.as_ref());
            match condition::evaluate(self.templater(), &c, &ctx) {
                Eval::NotMet(_) => continue,
                Eval::Error(e) => {
                    self.set_state(name, StepState::ServerError, Some(e), modified);
                    skipped = true;
                    break;
                }
                Eval::Met => {
                    skipped = true;
                    self.apply_then(name, &c, modified);
                    if c.is_final {
                        break;
                    }
                }
            }
        }
        if skipped {
            self.executed.insert(name.to_string());
        }
        skipped
    }

    /// Check conditions (µTask AfterRun).
    fn after_run(&mut self, name: &str, modified: &mut HashSet<String>) {
        let Some(s) = self.res.steps.get(name) else {
            return;
        };
        if s.is_foreach()
            || !matches!(
                s.state,
                StepState::Done | StepState::ClientError | StepState::AfterrunError
            )
        {
            return;
        }
        for c in self.conditions(name, ConditionType::Check) {
            let item = self.res.steps.get(name).and_then(|s| s.def.item.clone());
            let ctx = self.ctx(name, item.as_ref());
            match condition::evaluate(self.templater(), &c, &ctx) {
                Eval::NotMet(_) => continue,
                Eval::Error(e) => {
                    self.set_state(name, StepState::AfterrunError, Some(e), modified);
                    break;
                }
                Eval::Met => {
                    self.apply_then(name, &c, modified);
                    if c.is_final {
                        break;
                    }
                }
            }
        }
    }

    fn next_position(&self) -> i32 {
        self.positions.values().copied().max().unwrap_or(0) + 1
    }

    /// Expands a foreach parent into its children.
    fn expand(&mut self, name: &str, modified: &mut HashSet<String>) {
        let Some(parent) = self.res.steps.get(name).cloned() else {
            return;
        };
        let foreach = parent.def.step.foreach.clone().unwrap_or_default();
        let ctx = self.ctx(name, None);
        let ev = self.templater().evaluator(&ctx);
        let rendered = self.templater().render_str(&foreach, &ctx, &ev);
        let items: Vec<Value> = match rendered.and_then(|r| {
            serde_json::from_str::<Vec<Value>>(&r)
                .map_err(|e| format!("foreach is not a JSON list: {e}"))
        }) {
            Ok(items) => items,
            Err(e) => {
                self.set_state(name, StepState::FatalError, Some(e), modified);
                return;
            }
        };
        let first = self.next_position();
        let mut children = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let pos = first + i as i32;
            let child_name = format!("{name}-{i}");
            let mut def = parent.def.step.clone();
            def.description = format!("{i} - {}", parent.def.step.description);
            def.foreach = None;
            def.foreach_strategy = None;
            def.conditions.retain(|c| {
                c.condition_type == ConditionType::Check
                    || (c.condition_type == ConditionType::Skip
                        && c.foreach != Some(ConditionForeach::Parent))
            });
            if parent.def.step.foreach_strategy() == ForeachStrategy::Sequence && i > 0 {
                def.dependencies.push(format!("{name}-{}", i - 1));
            }
            let child = RunStep {
                name: child_name.clone(),
                def: StepDef {
                    step: def,
                    item: Some(item),
                    parent: Some(name.to_string()),
                    children_steps: Vec::new(),
                },
                state: StepState::Todo,
                try_count: 0,
                last_run: None,
                output: None,
                metadata: None,
                children: None,
                error: None,
            };
            self.contracted.remove(&child_name);
            self.removed.remove(&child_name);
            self.res.steps.insert(child_name.clone(), child);
            self.positions.insert(child_name.clone(), pos);
            self.dirty.insert(child_name.clone());
            children.push(child_name);
        }
        if let Some(p) = self.res.steps.get_mut(name) {
            for c in &children {
                p.def.step.dependencies.push(format!("{c}:{STATE_ANY}"));
            }
            p.def.children_steps = children;
            p.state = StepState::Expanded;
        }
        modified.insert(name.to_string());
    }

    /// Collects the children's results into the parent and removes the children.
    fn contract(&mut self, name: &str) {
        let Some(parent) = self.res.steps.get(name).cloned() else {
            return;
        };
        let mut collected = Vec::new();
        for child in &parent.def.children_steps {
            self.contracted.insert(child.clone());
            if let Some(c) = self.res.steps.shift_remove(child) {
                self.positions.remove(child);
                self.removed.insert(child.clone());
                self.dirty.remove(child);
                if c.state != StepState::Prune {
                    let mut entry = Map::new();
                    if let Some(o) = c.output {
                        entry.insert("output".into(), o);
                    }
                    let mut meta = match c.metadata {
                        Some(Value::Object(m)) => m,
                        Some(other) => {
                            let mut m = Map::new();
                            m.insert("value".into(), other);
                            m
                        }
                        None => Map::new(),
                    };
                    meta.insert("iterator".into(), c.def.item.clone().unwrap_or(Value::Null));
                    entry.insert("metadata".into(), Value::Object(meta));
                    entry.insert("state".into(), Value::String(c.state.as_str().to_string()));
                    collected.push(Value::Object(entry));
                }
            }
        }
        let children: HashSet<&String> = parent.def.children_steps.iter().collect();
        if let Some(p) = self.res.steps.get_mut(name) {
            p.def
                .step
                .dependencies
                .retain(|d| !children.contains(&dependency_parts(d).step));
            p.def.children_steps.clear();
            p.children = Some(Value::Array(collected));
            p.error = None;
        }
        self.dirty.insert(name.to_string());
    }

    /// Launches everything available (µTask runAvailableSteps, looping while skip conditions or
    /// expansions unlock more).
    /// Marks what can run now (µTask runAvailableSteps, looping while skip conditions or
    /// expansions unlock more) and returns the steps to start. The caller persists the RUNNING
    /// states BEFORE starting them, so a crash never leaves a started step looking unstarted.
    fn launch_available(&mut self) -> Vec<String> {
        let mut to_start = Vec::new();
        if self.engine.shutdown.is_cancelled() {
            return to_start;
        }
        loop {
            let available: Vec<String> = resolve::available_steps(&self.res, &self.executed)
                .into_iter()
                .filter(|n| !self.in_flight.contains(n))
                .collect();
            if available.is_empty() {
                return to_start;
            }
            let mut modified = HashSet::new();
            let mut again = false;
            for name in available {
                let Some(s) = self.res.steps.get(&name) else {
                    continue;
                };
                if s.is_foreach() {
                    match s.state {
                        StepState::Todo | StepState::ToRetry => {
                            if !s.def.children_steps.is_empty() {
                                // retried loop: drop the previous children; expand next cycle
                                self.contract(&name);
                                if let Some(p) = self.res.steps.get_mut(&name) {
                                    p.output = None;
                                }
                                self.executed.insert(name.clone());
                                modified.insert(name.clone());
                            } else if !self.pre_run(&name, &mut modified) {
                                self.expand(&name, &mut modified);
                                again = true;
                            }
                        }
                        StepState::Expanded => {
                            self.contract(&name);
                            self.set_state(&name, StepState::Done, None, &mut modified);
                        }
                        _ => continue,
                    }
                    self.dirty.insert(name.clone());
                    continue;
                }
                if s.state == StepState::AfterrunError {
                    // the action already ran: only the check conditions are evaluated again
                    self.set_state(&name, StepState::Done, None, &mut modified);
                    let mut m2 = HashSet::new();
                    self.after_run(&name, &mut m2);
                    modified.extend(m2);
                    self.executed.insert(name.clone());
                    self.dirty.insert(name.clone());
                    continue;
                }
                self.set_state(&name, StepState::Running, None, &mut modified);
                if self.pre_run(&name, &mut modified) {
                    self.dirty.insert(name.clone());
                    continue;
                }
                self.in_flight.insert(name.clone());
                to_start.push(name);
            }
            if !modified.is_empty() {
                resolve::prune_steps(&mut self.res, &mut modified);
                self.dirty.extend(modified.iter().cloned());
                again = true;
            }
            if !again {
                return to_start;
            }
        }
    }

    /// Starts the given steps, each on its own task, from a snapshot of the resolution.
    fn start(&mut self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        let snapshot = Arc::new(self.res.clone());
        for name in names {
            let Some(step) = self.res.steps.get(&name).cloned() else {
                continue;
            };
            let env = self.env.clone();
            let snapshot = snapshot.clone();
            let n = name.clone();
            let handle = self
                .join
                .spawn(async move { (n, step::execute(env, snapshot, step).await) });
            self.task_names.insert(handle.id(), name);
        }
    }

    /// Applies one step's result (µTask: commit step, AfterRun, prune, mark executed).
    fn apply(&mut self, done: Executed) {
        let name = done.step.name.clone();
        self.in_flight.remove(&name);
        if self.contracted.contains(&name) || !self.res.steps.contains_key(&name) {
            return;
        }
        if let Some(tags) = done.tags {
            for (k, v) in tags {
                match v {
                    Value::String(s) if s.is_empty() => {
                        self.tags.remove(&k);
                    }
                    Value::Null => {
                        self.tags.remove(&k);
                    }
                    other => {
                        self.tags.insert(k, other);
                    }
                }
            }
            self.tags_changed = true;
        }
        self.res.steps.insert(name.clone(), done.step);
        let mut modified: HashSet<String> = [name.clone()].into();
        self.after_run(&name, &mut modified);
        resolve::prune_steps(&mut self.res, &mut modified);
        if self.res.state_of(&name) != Some(&StepState::RetryNow) {
            self.executed.insert(name.clone());
        }
        self.dirty.extend(modified);
    }

    fn step_writes(&mut self) -> Result<Vec<StepWrite>, EngineError> {
        let mut out = Vec::new();
        let mut names: Vec<String> = self.dirty.drain().collect();
        names.sort();
        for name in names {
            let Some(s) = self.res.steps.get(&name) else {
                continue;
            };
            let position = match self.positions.get(&name) {
                Some(p) => *p,
                None => {
                    let p = self.next_position();
                    self.positions.insert(name.clone(), p);
                    p
                }
            };
            out.push(StepWrite {
                name: name.clone(),
                position,
                state: s.state.clone(),
                try_count: s.try_count,
                last_run: s.last_run,
                definition: serde_json::to_value(&s.def)
                    .map_err(|e| EngineError::Invalid(self.res.id, e.to_string()))?,
                output: s.output.clone(),
                metadata: s.metadata.clone(),
                error: s.error.clone(),
                children: s.children.clone(),
            });
        }
        Ok(out)
    }

    async fn persist(&mut self) -> Result<(), EngineError> {
        let writes = self.step_writes()?;
        let removed: Vec<String> = self.removed.drain().collect();
        if writes.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let done = self.steps_done();
        let changed = (self.written_done != Some(done)).then_some(done);
        let (store, claim) = (&self.engine.store, &self.claim);
        with_db_retry(|| store_res::write_steps(store, claim, &writes, &removed, changed))
            .await??;
        self.written_done = Some(done);
        Ok(())
    }

    /// Whether a step must be persisted as RUNNING before it starts: its action (through any
    /// function wrapping it) has side effects, or it runs a pre-hook, or it waits first
    /// (`execution_delay`, so that the wait shows). Running a step without side effects twice
    /// after a crash is harmless, so it is written once, with its result.
    fn marks_running(&self, name: &str) -> bool {
        let Some(s) = self.res.steps.get(name) else {
            return true;
        };
        if s.def.step.effective_pre_hook(&self.env.functions).is_some()
            || !s.def.step.execution_delay().is_zero()
        {
            return true;
        }
        let chain = self.env.functions.chain(&s.def.step.action.action_type);
        chain.cycle.is_some()
            || self
                .env
                .actions
                .get(&chain.final_type)
                .is_none_or(|a| a.has_side_effects())
    }

    fn steps_done(&self) -> i32 {
        self.res
            .steps
            .values()
            .filter(|s| s.state.is_final() && !s.is_child())
            .count() as i32
    }
}

/// Retries a write while the database is unreachable (a restart, a failover), with backoff
/// from 0.5 s to 5 s, for at most a minute; other errors return at once. A write that lands
/// after another instance took the resolution over is refused by the claim check (fencing).
async fn with_db_retry<T, F, Fut>(mut f: F) -> Result<T, crate::store::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut delay = std::time::Duration::from_millis(500);
    loop {
        match f().await {
            Err(crate::store::StoreError::Db(e))
                if crate::store::db_unavailable(&e) && tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!(error = %e, "database unavailable, retrying the write");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Renders `result_format`: map keys and string values, recursively in maps (arrays as is).
fn render_result(t: &Templater, format: &Map<String, Value>, ctx: &Value) -> Result<Value, String> {
    let ev = t.evaluator(ctx);
    fn walk(
        t: &Templater,
        v: &Value,
        ctx: &Value,
        ev: &super::templating::Evaluator<'_>,
    ) -> Result<Value, String> {
        Ok(match v {
            Value::String(s) => Value::String(t.render_str(s, ctx, ev)?),
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    out.insert(t.render_str(k, ctx, ev)?, walk(t, x, ctx, ev)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
    walk(t, &Value::Object(format.clone()), ctx, &ev)
}

impl Engine {
    /// A template version (a version number names one definition forever: cached by the
    /// store).
    async fn template_version(
        &self,
        id: ResolutionId,
        name: &str,
        version: i32,
    ) -> Result<Arc<TaskTemplate>, EngineError> {
        match store::template::version_model(&self.store, name, version).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(EngineError::Invalid(
                id,
                "its template version is missing".into(),
            )),
            Err(StoreError::Corrupt(m)) => Err(EngineError::Invalid(id, m)),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs one synchronous cycle of a resolution. `Ok(None)` when crash recovery blocked it for
    /// a human check; otherwise the resolution state at the end of the cycle.
    pub async fn run_cycle(
        &self,
        id: ResolutionId,
    ) -> Result<Option<ResolutionState>, EngineError> {
        let store = &self.store;
        let (claim, previous) =
            match store_res::start_cycle(store, id, self.instance, self.settings.lease).await? {
                Ok(v) => v,
                Err(StartRefused::NotFound) => return Err(EngineError::NotFound(id)),
                Err(StartRefused::Cancelled) => return Err(EngineError::Refused("cancelled")),
                Err(StartRefused::AlreadyRunning) => {
                    return Err(EngineError::Refused("already running"));
                }
                Err(StartRefused::AlreadyDone) => return Err(EngineError::Refused("already done")),
            };
        self.run_claimed(claim, previous).await
    }

    /// Runs a cycle on a resolution already claimed (by [`Engine::run_cycle`] or a collector),
    /// extending its lease while it runs.
    pub async fn run_claimed(
        &self,
        claim: store_res::Claim,
        previous: ResolutionState,
    ) -> Result<Option<ResolutionState>, EngineError> {
        self.run_claimed_loaded(claim, previous, None).await
    }

    /// [`Engine::run_claimed`] with the cycle's first read already done (by
    /// [`store_res::claim_due_loaded`]); `None` reads it.
    pub async fn run_claimed_loaded(
        &self,
        claim: store_res::Claim,
        previous: ResolutionState,
        loaded: Option<Result<store_res::Loaded, StoreError>>,
    ) -> Result<Option<ResolutionState>, EngineError> {
        let store = &self.store;
        let id = claim.resolution;
        let lease = self.settings.lease;
        let hb_store = store.clone();
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                match store_res::extend_lease(&hb_store, &claim, lease).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(resolution = %claim.resolution, error = %e, "lease extension failed")
                    }
                }
            }
        });
        let result = self.cycle(claim, previous, loaded).await;
        heartbeat.abort();
        match result {
            Ok(v) => Ok(v),
            Err(EngineError::LostClaim(l)) => Err(EngineError::LostClaim(l)),
            // The database went away mid-cycle (a restart, a dropped connection): a step may
            // have run without its result being written. Recover it as a crash would be —
            // idempotent steps run again, others block for a check — not by blocking the
            // whole resolution. If even the hand-back fails, the lease expires and the
            // collectors do the same.
            Err(EngineError::Store(e)) if e.is_unavailable() => {
                tracing::warn!(resolution = %id, error = %e, "database unavailable mid-cycle; handing the resolution back");
                if let Err(e2) = store_res::hand_back_claim(store, &claim).await {
                    tracing::warn!(resolution = %id, error = %e2, "hand-back failed; the lease will expire");
                }
                Err(EngineError::Store(e))
            }
            Err(e) => {
                // leave the resolution retryable rather than stuck RUNNING
                tracing::error!(resolution = %id, error = %e, "cycle failed");
                let end = CycleEnd {
                    state: ResolutionState::BlockedToCheck,
                    next_retry: None,
                    task_state: TaskState::Blocked,
                    task_result: None,
                    steps_done: 0,
                    task_tags: None,
                    has_parent: false,
                };
                let _ = store_res::end_cycle(store, &claim, None, &[], &[], &end).await;
                Err(e)
            }
        }
    }

    async fn cycle(
        &self,
        claim: store_res::Claim,
        previous: ResolutionState,
        loaded: Option<Result<store_res::Loaded, StoreError>>,
    ) -> Result<Option<ResolutionState>, EngineError> {
        let store = &self.store;
        let id = claim.resolution;
        let loaded = match loaded {
            Some(l) => super::batch::Loaded::from(l?),
            None => self
                .loads
                .load(store, id)
                .await?
                .ok_or(EngineError::NotFound(id))?,
        };
        let (rec, task, records) = (loaded.resolution, loaded.task, loaded.steps);
        let template = self
            .template_version(id, &task.template_name, task.template_version)
            .await?;
        let mut positions = HashMap::new();
        let mut steps = indexmap::IndexMap::new();
        for r in records {
            let def: StepDef = serde_json::from_value(r.definition)
                .map_err(|e| EngineError::Invalid(id, format!("step {}: {e}", r.name)))?;
            positions.insert(r.name.clone(), r.position);
            steps.insert(
                r.name.clone(),
                RunStep {
                    name: r.name,
                    def,
                    state: r.state,
                    try_count: r.try_count,
                    last_run: r.last_run,
                    output: r.output,
                    metadata: r.metadata,
                    children: r.children,
                    error: r.error,
                },
            );
        }
        let mut res = RunResolution {
            id,
            task_id: rec.task_id,
            state: ResolutionState::Running,
            run_count: rec.run_count,
            run_max: rec.run_max,
            next_retry: rec.next_retry,
            steps,
        };

        // crash recovery: RUNNING steps of a crashed run
        if previous == ResolutionState::Crashed {
            let mut blocked = false;
            let mut writes = Vec::new();
            for s in res.steps.values_mut() {
                if s.state == StepState::Running {
                    if s.def.step.idempotent {
                        s.state = StepState::Todo;
                    } else {
                        s.state = StepState::Crashed;
                        blocked = true;
                    }
                    writes.push(s.name.clone());
                }
            }
            if blocked {
                let mut c = Cycle::bare(self, claim, res, positions);
                c.dirty.extend(writes);
                let w = c.step_writes()?;
                let end = CycleEnd {
                    state: ResolutionState::BlockedToCheck,
                    next_retry: None,
                    task_state: TaskState::Blocked,
                    task_result: None,
                    steps_done: c.steps_done(),
                    task_tags: None,
                    has_parent: false,
                };
                store_res::end_cycle(store, &claim, Some(c.res.task_id), &w, &[], &end).await??;
                return Ok(None);
            }
        }
        // template-level resource, held for the whole cycle
        let template_label = format!("template:{}", template.name);
        let _template_slot = match self.resources.acquire([template_label]).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(resolution = %id, error = %e, "template resource unavailable; retrying in 10 minutes");
                let end = CycleEnd {
                    state: ResolutionState::ToAutorunDelayed,
                    next_retry: Some(Utc::now() + chrono::Duration::minutes(10)),
                    task_state: TaskState::Blocked,
                    task_result: None,
                    steps_done: res
                        .steps
                        .values()
                        .filter(|s| s.state.is_final() && !s.is_child())
                        .count() as i32,
                    task_tags: None,
                    has_parent: false,
                };
                with_db_retry(|| {
                    store_res::end_cycle(store, &claim, Some(res.task_id), &[], &[], &end)
                })
                .await??;
                return Ok(Some(ResolutionState::ToAutorunDelayed));
            }
        };

        let templater = Arc::new(Templater::new(
            self.renderer.clone(),
            template_dialect(&template),
            template.variables.clone(),
            self.js.clone(),
        ));
        let base = BaseValues {
            input: task.input.clone(),
            resolver_input: rec.resolver_input.clone(),
            task: json!({
                "task_id": task.id.to_string(),
                "created": task.created.to_rfc3339(),
                "requester_username": task.requester_username,
                "requester_groups": task.requester_groups.join(","),
                "resolver_username": rec.resolver_username.clone().unwrap_or_default(),
                "resolver_groups": task.resolver_groups.join(","),
                "watcher_usernames": task.watcher_usernames.join(","),
                "watcher_groups": task.watcher_groups.join(","),
                "last_activity": task.last_activity.to_rfc3339(),
                "region": "default",
                "resolution_id": id.to_string(),
            }),
            config: self.settings.config_values.clone(),
        };
        let env = StepEnv {
            templater: templater.clone(),
            base: Arc::new(base),
            base_configurations: Arc::new(
                template.base_configurations.clone().into_iter().collect(),
            ),
            functions: self.functions.clone(),
            actions: self.actions.clone(),
            action_env: self.action_env.clone(),
            task_id: task.id,
            resolution_id: id,
            requester: task.requester_username.clone(),
            default_timeout: self.settings.default_step_timeout,
            log_keep_executions: self.settings.log_keep_executions,
            resources: self.resources.clone(),
            secrets: Arc::new(log_secrets(&template, &task.input, &rec.resolver_input)),
        };
        let tags = match &task.tags {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let mut c = Cycle::bare(self, claim, res, positions);
        c.env = env;
        c.tags = tags;
        let mut waiting_pass = false;
        loop {
            let starts = c.launch_available();
            // persisted before anything with side effects starts (the RUNNING marks); other
            // changes ride along with the next write
            let durable: Vec<String> = starts
                .iter()
                .filter(|n| c.marks_running(n))
                .cloned()
                .collect();
            if !durable.is_empty() {
                c.persist().await?;
            }
            c.durable_in_flight.extend(durable);
            c.start(starts);
            if c.join.is_empty() {
                if !waiting_pass {
                    waiting_pass = true;
                    let waiting: Vec<String> = c
                        .res
                        .steps
                        .values()
                        .filter(|s| {
                            s.state == StepState::Waiting
                                && s.def.step.action.action_type != "batch"
                        })
                        .filter(|s| c.executed.contains(&s.name))
                        .map(|s| s.name.clone())
                        .collect();
                    if !waiting.is_empty() {
                        for w in waiting {
                            c.executed.remove(&w);
                        }
                        continue;
                    }
                }
                break;
            }
            let Some(joined) = c.join.join_next_with_id().await else {
                break;
            };
            let executed = match joined {
                Ok((_, (_, e))) => e,
                Err(err) => {
                    let name = c.task_names.get(&err.id()).cloned().unwrap_or_default();
                    let Some(mut s) = c.res.steps.get(&name).cloned() else {
                        continue;
                    };
                    s.state = StepState::ServerError;
                    s.error = Some("internal error while running the step".into());
                    tracing::error!(resolution = %id, step = %name, error = %err, "step task failed");
                    Executed {
                        step: s,
                        tags: None,
                    }
                }
            };
            let finished_durable = c.durable_in_flight.remove(&executed.step.name);
            c.apply(executed);
            // while other steps run, the result of a step with side effects is made durable at
            // once, and so is any result while a step that may take long runs (so that it
            // shows); otherwise (`echo`s finishing among `echo`s: a foreach of them) the next
            // launch or the end of the cycle writes them, in one statement
            if !c.in_flight.is_empty() && (finished_durable || !c.durable_in_flight.is_empty()) {
                c.persist().await?;
            }
        }

        // end of cycle
        let mut state = resolve::end_state(&c.res, self.shutdown.is_cancelled());
        let mut task_state = TaskState::Running;
        let mut next_retry = None;
        let mut result = None;
        match state {
            ResolutionState::Done => {
                task_state = TaskState::Done;
                if let Some(format) = &template.result_format {
                    let ctx = values::context(&c.env.base, &c.res, &Scope::default());
                    let t = c.env.templater.clone();
                    let f = format.clone();
                    result = match tokio::task::spawn_blocking(move || render_result(&t, &f, &ctx))
                        .await
                    {
                        Ok(Ok(r)) => Some(r),
                        Ok(Err(e)) => {
                            tracing::warn!(resolution = %id, error = %e, "result_format failed");
                            None
                        }
                        Err(_) => None,
                    };
                }
            }
            ResolutionState::Error | ResolutionState::Crashed => {
                if c.res.run_count >= c.res.run_max {
                    state = ResolutionState::BlockedMaxRetries;
                    task_state = TaskState::Blocked;
                } else {
                    let delay = super::retry::next_retry_delay(&c.res);
                    next_retry =
                        Some(Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default());
                }
            }
            ResolutionState::Waiting => task_state = TaskState::Waiting,
            ResolutionState::BlockedBadRequest
            | ResolutionState::BlockedFatal
            | ResolutionState::BlockedDeadlock => task_state = TaskState::Blocked,
            _ => {}
        }
        let writes = c.step_writes()?;
        let removed: Vec<String> = c.removed.drain().collect();
        let end = CycleEnd {
            state,
            next_retry,
            task_state,
            task_result: result,
            steps_done: c.steps_done(),
            task_tags: c.tags_changed.then(|| Value::Object(c.tags.clone())),
            has_parent: task.parent_task_id.is_some(),
        };
        if end.has_parent && end.task_state.is_final() {
            // wakes the parent in the same transaction
            with_db_retry(|| {
                store_res::end_cycle(store, &c.claim, Some(task.id), &writes, &removed, &end)
            })
            .await??;
        } else {
            let whole = store_res::EndOfCycle {
                claim: c.claim,
                task: task.id,
                steps: writes,
                removed,
                end,
            };
            with_db_retry(|| self.ends.end(store, whole.clone())).await??;
        }
        tracing::debug!(resolution = %id, state = %state, "cycle ended");
        if let Some(at) = next_retry {
            // wake the claim loops when the retry is due (polling still finds it if this
            // instance is gone by then)
            let delay = (at - Utc::now()).to_std().unwrap_or_default();
            let store = store.clone();
            let shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(delay) => {
                        if let Err(e) = store_res::hint_due(&store).await {
                            tracing::debug!(error = %e, "retry wake-up hint not sent");
                        }
                    }
                }
            });
        }
        Ok(Some(state))
    }
}

impl<'a> Cycle<'a> {
    fn bare(
        engine: &'a Engine,
        claim: store_res::Claim,
        res: RunResolution,
        positions: HashMap<String, i32>,
    ) -> Cycle<'a> {
        let templater = Arc::new(Templater::new(
            engine.renderer.clone(),
            Dialect::Jinja,
            Vec::new(),
            None,
        ));
        Cycle {
            engine,
            claim,
            env: StepEnv {
                templater,
                base: Arc::new(BaseValues::default()),
                base_configurations: Arc::new(Map::new()),
                functions: engine.functions.clone(),
                actions: engine.actions.clone(),
                action_env: engine.action_env.clone(),
                task_id: res.task_id,
                resolution_id: res.id,
                requester: String::new(),
                default_timeout: None,
                log_keep_executions: engine.settings.log_keep_executions,
                resources: engine.resources.clone(),
                secrets: Arc::new(Vec::new()),
            },
            res,
            positions,
            executed: HashSet::new(),
            in_flight: HashSet::new(),
            durable_in_flight: HashSet::new(),
            contracted: HashSet::new(),
            dirty: HashSet::new(),
            removed: HashSet::new(),
            tags: Map::new(),
            tags_changed: false,
            written_done: None,
            join: JoinSet::new(),
            task_names: HashMap::new(),
        }
    }
}
