//! Executing one step (µTask's `step.Run`): max-retries guard, pre_hook, output formats,
//! configuration rendering (base configuration underneath, function chains resolved), the
//! action itself under the step timeout, output strategies, JSON-schema check, resulting state.
//!
//! Rendering happens on a blocking thread (it may evaluate JavaScript variables through the
//! sandbox); the action runs on the async runtime. The function is given a snapshot of the
//! resolution and returns the step's new runtime fields; it never touches the database.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::action::{ActionEnv, ActionError, ActionRequest, ActionResult, Registry};
use crate::domain::{ResolutionId, StepState, TaskId};
use crate::template::dialect::Dialect;
use crate::template::model::{Executor, Function, FunctionSet, OutputStrategy};

use super::model::{RunResolution, RunStep};
use super::templating::Templater;
use super::values::{self, BaseValues, Scope};

/// What a step execution needs besides the step.
#[derive(Clone)]
pub struct StepEnv {
    pub templater: Arc<Templater>,
    pub base: Arc<BaseValues>,
    pub base_configurations: Arc<Map<String, Value>>,
    pub functions: Arc<FunctionSet>,
    pub actions: Registry,
    pub action_env: Arc<ActionEnv>,
    pub task_id: TaskId,
    pub resolution_id: ResolutionId,
    pub requester: String,
    /// Used when the step sets no `timeout`.
    pub default_timeout: Option<Duration>,
    /// Executions of a step whose logs are kept (`MUTASK_LOG_KEEP_EXECUTIONS`).
    pub log_keep_executions: i32,
    /// Named concurrency limits.
    pub resources: Arc<super::resources::Resources>,
    /// Values masked in step logs (password inputs and resolver inputs).
    pub secrets: Arc<Vec<String>>,
}

/// Resource labels of one execution: the step's own, plus what its action implies.
pub fn resource_labels(step: &RunStep, action_type: &str, config: &Value) -> Vec<String> {
    let mut labels = step.def.step.resources.clone();
    match action_type {
        "script" => {
            labels.push("fork".into());
            if let Some(f) = config.get("file_path").and_then(Value::as_str) {
                labels.push(format!("script:{f}"));
            }
        }
        "http" | "ping" => {
            labels.push("socket".into());
            let host = config
                .get("url")
                .and_then(Value::as_str)
                .and_then(|u| url::Url::parse(u).ok())
                .and_then(|u| u.host_str().map(str::to_string))
                .or_else(|| {
                    // µTask's `host` may carry a scheme and port: keep the host part only
                    let h = config.get("host").and_then(Value::as_str)?;
                    Some(
                        url::Url::parse(h)
                            .ok()
                            .and_then(|u| u.host_str().map(str::to_string))
                            .unwrap_or_else(|| h.to_string()),
                    )
                })
                .or_else(|| {
                    config
                        .get("hostname")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
            if let Some(h) = host {
                labels.push(format!("url:{h}"));
            }
        }
        "ssh" | "email" => labels.push("socket".into()),
        _ => {}
    }
    labels
}

/// The result of one execution: the step with its new runtime fields, and task tags.
#[derive(Debug, Clone)]
pub struct Executed {
    pub step: RunStep,
    pub tags: Option<Map<String, Value>>,
}

fn fatal(mut step: RunStep, msg: String) -> Executed {
    step.state = StepState::FatalError;
    step.error = Some(msg);
    Executed { step, tags: None }
}

/// Deep-merges `over` onto `base` (objects merge key by key; anything else replaces).
pub fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(existing) => merge(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, Value::Null) => base.clone(),
        _ => over.clone(),
    }
}

/// One executor level of a function chain: its executor, the function args it sees, and the
/// dialect of the file it comes from.
struct Layer<'a> {
    exec: &'a Executor,
    args: Option<Value>,
    dialect: Dialect,
}

/// An output spec to apply: strategy, format, function args, dialect.
type OutputLayer = (OutputStrategy, Value, Option<Value>, Dialect);

struct Prepared {
    final_type: String,
    config: Value,
    /// Output specs innermost first.
    outputs: Vec<OutputLayer>,
    pre_hook: Option<Value>,
}

/// The dialect of a function file (explicitly µTask when it uses `.function_args`).
pub fn function_dialect(f: &Function) -> Dialect {
    let mut texts = Vec::new();
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            Value::Object(m) => m.values().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    if let Ok(v) = serde_json::to_value(f) {
        collect(&v, &mut texts);
    }
    crate::template::dialect::detect(texts.iter().map(String::as_str))
}

/// Renders everything that happens before the action (blocking: may evaluate JS).
fn prepare(
    env: &StepEnv,
    res: &RunResolution,
    step: &RunStep,
    hook: Option<Value>,
) -> Result<Prepared, String> {
    let t = &env.templater;
    fn scope<'a>(step: &'a RunStep, hook: Option<&'a Value>, args: Option<&'a Value>) -> Scope<'a> {
        Scope {
            this: Some(step.name.as_str()),
            this_override: None,
            iterator: step.def.item.as_ref(),
            pre_hook: hook,
            function_args: args,
        }
    }
    // level 0: the step's own executor
    let ctx0 = values::context(&env.base, res, &scope(step, hook.as_ref(), None));
    let ev = t.evaluator(&ctx0);
    let mut config = t
        .render_value(&step.def.step.action.configuration, &ctx0, &ev, false)
        .map_err(|e| format!("failed to template configuration: {e}"))?;
    if let Some(name) = &step.def.step.action.base_configuration {
        let base = env
            .base_configurations
            .get(name)
            .ok_or_else(|| format!("could not find base configuration '{name}'"))?;
        let base = t
            .render_value(base, &ctx0, &ev, false)
            .map_err(|e| format!("failed to template base configuration: {e}"))?;
        config = merge(&base, &config);
    }
    let chain = env.functions.chain(&step.def.step.action.action_type);
    if let Some(c) = &chain.cycle {
        return Err(format!("function `{c}` calls itself"));
    }
    let mut layers = vec![Layer {
        exec: &step.def.step.action,
        args: None,
        dialect: t.dialect(),
    }];
    for f in &chain.functions {
        let args = config.clone();
        let dialect = function_dialect(f);
        let ctx = values::context(&env.base, res, &scope(step, hook.as_ref(), Some(&args)));
        let ev = t.evaluator(&ctx);
        config = t
            .render_value_in(dialect, &f.action.configuration, &ctx, &ev, false)
            .map_err(|e| {
                format!(
                    "failed to template configuration of function {}: {e}",
                    f.name
                )
            })?;
        layers.push(Layer {
            exec: &f.action,
            args: Some(args),
            dialect,
        });
    }
    // merge formats are rendered before the action, template formats after it
    let mut outputs = Vec::new();
    for layer in layers.iter().rev() {
        let Some(spec) = &layer.exec.output else {
            continue;
        };
        let format = match spec.strategy {
            OutputStrategy::Merge => {
                let ctx = values::context(
                    &env.base,
                    res,
                    &scope(step, hook.as_ref(), layer.args.as_ref()),
                );
                let ev = t.evaluator(&ctx);
                let f = t
                    .render_value_in(layer.dialect, &spec.format, &ctx, &ev, false)
                    .map_err(|e| format!("failed to template base output: {e}"))?;
                if !f.is_object() && !f.is_null() {
                    return Err("failed to template base output: Base output not a map".into());
                }
                f
            }
            _ => spec.format.clone(),
        };
        outputs.push((
            spec.strategy.clone(),
            format,
            layer.args.clone(),
            layer.dialect,
        ));
    }
    Ok(Prepared {
        final_type: chain.final_type,
        config,
        outputs,
        pre_hook: hook,
    })
}

/// Applies the output strategies (innermost first); template formats render here.
fn post_process(
    env: &StepEnv,
    res: &RunResolution,
    step: &RunStep,
    prepared: &Prepared,
    mut result: ActionResult,
) -> Result<ActionResult, String> {
    let t = &env.templater;
    for (strategy, format, args, dialect) in &prepared.outputs {
        match strategy {
            OutputStrategy::Merge => {
                let base = if format.is_null() {
                    Value::Object(Map::new())
                } else {
                    format.clone()
                };
                result.output = Some(match &result.output {
                    Some(o) => merge(&base, o),
                    None => base,
                });
            }
            OutputStrategy::Template => {
                let this = values::this_with_output(step, &result.output, &result.metadata);
                let ctx = values::context(
                    &env.base,
                    res,
                    &Scope {
                        this: Some(step.name.as_str()),
                        this_override: Some(this),
                        iterator: step.def.item.as_ref(),
                        pre_hook: prepared.pre_hook.as_ref(),
                        function_args: args.as_ref(),
                    },
                );
                let ev = t.evaluator(&ctx);
                let out = t
                    .render_value_in(*dialect, format, &ctx, &ev, false)
                    .map_err(|e| format!("unable to format output: {e}"))?;
                result.output = Some(out);
            }
            _ => {}
        }
    }
    Ok(result)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("internal error while rendering: {e}"))
}

async fn run_action(
    env: &StepEnv,
    step: &RunStep,
    action_type: &str,
    config: Value,
    timeout: Option<Duration>,
) -> ActionResult {
    let Some(action) = env.actions.get(action_type) else {
        return ActionResult::err(ActionError::Fatal(format!(
            "unknown action type `{action_type}`"
        )));
    };
    // the execution about to run is number try_count + 1
    let (log, writer) = match &env.action_env.store {
        Some(store) => {
            let (log, w) = super::logs::start(
                store.clone(),
                env.resolution_id,
                step.name.clone(),
                step.try_count + 1,
                env.log_keep_executions,
                env.secrets.clone(),
            );
            (log, Some(w))
        }
        None => (crate::action::log::StepLog::discard(), None),
    };
    let req = ActionRequest {
        step_name: step.name.clone(),
        task_id: env.task_id,
        resolution_id: env.resolution_id,
        requester_username: env.requester.clone(),
        config,
        previous_output: step.output.clone(),
        previous_metadata: step.metadata.clone(),
        env: env.action_env.clone(),
        log: log.clone(),
    };
    let result = match timeout {
        Some(d) => match tokio::time::timeout(d, action.run(req)).await {
            Ok(r) => r,
            Err(_) => {
                log.line(
                    crate::action::log::Stream::System,
                    &format!("step timed out after {d:?}"),
                );
                ActionResult::err(ActionError::Server(format!("step timed out after {d:?}")))
            }
        },
        None => action.run(req).await,
    };
    drop(log);
    if let Some(w) = writer {
        // the last lines are flushed once every copy of the handle is gone; a process the
        // action left behind (a grandchild holding the pipe) must not hold the step: after a
        // short wait the writer finishes on its own
        let _ = tokio::time::timeout(Duration::from_secs(2), w).await;
    }
    result
}

/// Runs one step (already marked RUNNING, skip conditions evaluated and not skipping).
pub async fn execute(env: StepEnv, res: Arc<RunResolution>, mut step: RunStep) -> Executed {
    if let Some(max) = step.def.step.max_retries()
        && i64::from(step.try_count) > max
    {
        let prev = step.error.clone().unwrap_or_default();
        return fatal(step, format!("Step reached max retries {max}: {prev}"));
    }
    let delay = step.def.step.execution_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    // pre_hook: its result is visible to the rest of the step as `.pre_hook`
    let mut hook_value = None;
    if let Some(hook) = step.def.step.effective_pre_hook(&env.functions).cloned() {
        // rendered in the dialect of the file that declares it
        let hook_dialect = env
            .functions
            .chain(&step.def.step.action.action_type)
            .functions
            .iter()
            .rev()
            .find(|f| f.pre_hook.is_some())
            .map(|f| function_dialect(f))
            .unwrap_or(env.templater.dialect());
        let (e, r, s) = (env.clone(), res.clone(), step.clone());
        let rendered = blocking(move || {
            let ctx = values::context(
                &e.base,
                &r,
                &Scope {
                    this: Some(s.name.as_str()),
                    iterator: s.def.item.as_ref(),
                    ..Default::default()
                },
            );
            let ev = e.templater.evaluator(&ctx);
            e.templater
                .render_value_in(hook_dialect, &hook.configuration, &ctx, &ev, false)
                .map(|c| (hook.action_type.clone(), c))
        })
        .await
        .and_then(|r| r);
        let (hook_type, hook_config) = match rendered {
            Ok(v) => v,
            Err(e) => return fatal(step, format!("prehook: {e}")),
        };
        let r = run_action(&env, &step, &hook_type, hook_config, None).await;
        if let Some(err) = r.error {
            return fatal(step, format!("prehook: {}", err.message()));
        }
        let mut m = Map::new();
        m.insert("output".into(), r.output.unwrap_or(Value::Null));
        m.insert("metadata".into(), r.metadata.unwrap_or(Value::Null));
        hook_value = Some(Value::Object(m));
    }
    let (e, r, s) = (env.clone(), res.clone(), step.clone());
    let prepared = match blocking(move || prepare(&e, &r, &s, hook_value))
        .await
        .and_then(|p| p)
    {
        Ok(p) => Arc::new(p),
        Err(msg) => return fatal(step, msg),
    };
    let timeout = step.def.step.timeout().or(env.default_timeout);
    let labels = resource_labels(&step, &prepared.final_type, &prepared.config);
    let _held = match env.resources.acquire(labels).await {
        Ok(h) => h,
        Err(e) => {
            // µTask: a step-level resource that is not available makes the step TO_RETRY
            step.state = StepState::ToRetry;
            step.error = Some(e.to_string());
            return Executed { step, tags: None };
        }
    };
    let mut result = run_action(
        &env,
        &step,
        &prepared.final_type,
        prepared.config.clone(),
        timeout,
    )
    .await;
    let timed_out = matches!(&result.error, Some(ActionError::Server(m)) if m.starts_with("step timed out after"));
    step.try_count += 1;
    step.last_run = Some(chrono::Utc::now());
    if !prepared.outputs.is_empty() {
        let (e, r, s, p) = (env.clone(), res.clone(), step.clone(), prepared.clone());
        let taken = std::mem::take(&mut result);
        match blocking(move || post_process(&e, &r, &s, &p, taken))
            .await
            .and_then(|x| x)
        {
            Ok(r) => result = r,
            Err(msg) => return fatal(step, msg),
        }
    }
    step.output = result.output.clone();
    step.metadata = result.metadata.clone();
    let tags = result.tags.clone();
    match result.error {
        Some(err) => {
            step.state = if timed_out {
                StepState::Timeout
            } else {
                match &err {
                    ActionError::Client(_) => StepState::ClientError,
                    ActionError::Server(_) => StepState::ServerError,
                    ActionError::Fatal(_) => StepState::FatalError,
                    ActionError::Waiting(_) => StepState::Waiting,
                    ActionError::Retry(_) => StepState::ToRetry,
                }
            };
            step.error = Some(err.message().to_string());
        }
        None => {
            if let Some(schema) = &step.def.step.json_schema
                && let Err(msg) = super::schema::validate(schema, step.output.as_ref())
            {
                step.state = StepState::FatalError;
                step.error = Some(msg);
            } else {
                step.state = StepState::Done;
                step.error = None;
            }
        }
    }
    Executed { step, tags }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resource_labels_of_actions() {
        let step = RunStep::new(
            "s",
            crate::template::model::Step {
                resources: vec!["db".into()],
                ..Default::default()
            },
        );
        let labels = |t: &str, c: Value| resource_labels(&step, t, &c);
        assert_eq!(
            labels("http", json!({"url": "https://api.example.org:8443/x"})),
            ["db", "socket", "url:api.example.org"]
        );
        assert_eq!(
            labels("http", json!({"host": "https://h.example:1", "path": "/"})),
            ["db", "socket", "url:h.example"]
        );
        assert_eq!(
            labels("script", json!({"file_path": "a.sh"})),
            ["db", "fork", "script:a.sh"]
        );
        assert_eq!(labels("echo", json!({})), ["db"]);
    }

    #[test]
    fn merge_is_deep_and_over_wins() {
        let base = json!({"a": 1, "n": {"x": 1, "y": 2}, "l": [1]});
        let over = json!({"a": 2, "n": {"y": 3}, "l": [2, 3], "z": null});
        assert_eq!(
            merge(&base, &over),
            json!({"a": 2, "n": {"x": 1, "y": 3}, "l": [2, 3], "z": null})
        );
        assert_eq!(merge(&json!({"a": 1}), &Value::Null), json!({"a": 1}));
    }
}
