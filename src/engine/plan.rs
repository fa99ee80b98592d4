//! Plan mode: what a template would do with given inputs, without executing anything.
//!
//! For every step, in dependency order: its action type, its configuration rendered with the
//! inputs (base configuration merged; password inputs replaced by a mask before rendering, so a
//! secret never reaches the answer), and a predicted outcome — `run`, `skip` (a skip condition
//! that depends only on inputs is met, giving the step the `then` state), `prune` (a dependency
//! would end in a state the step does not accept) or `runtime` (a skip condition reads values
//! only known while the task runs). String leaves that read step outputs, foreach iterators or
//! pre-hook/function values are left as written and flagged: they are only known at run time.
//!
//! The same renderer shows a running resolution's step configuration rendered with the
//! resolution's current values ([`render_resolution_step`]): password inputs are masked the
//! same way, and what the caller may not see (step outputs and resolver inputs for requesters
//! and watchers, instance configuration values for everyone) is left as written.
//!
//! Pure apart from rendering: the caller supplies the templater (the API runs plans inside the
//! sandbox worker pool, since the template text comes from the user who asks for the plan).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::template::input::{self, SECRET_MASK};
use crate::template::model::{
    ConditionType, STATE_DONE, STATE_PRUNE, Step, TaskTemplate, dependency_parts,
};
use crate::template::render::Renderer;

use super::condition::{self, Eval};
use super::cycle::template_dialect;
use super::templating::{JsEval, Templater};

/// What to plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanRequest {
    /// The normalized template.
    pub template: TaskTemplate,
    /// Requester inputs as given.
    #[serde(default)]
    pub input: Map<String, Value>,
    /// Resolver inputs as given.
    #[serde(default)]
    pub resolver_input: Map<String, Value>,
    /// Who asks (`task.requester_username`).
    #[serde(default)]
    pub requester: String,
}

/// The predicted fate of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Run,
    Skip,
    Prune,
    Runtime,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub name: String,
    pub description: String,
    pub action_type: String,
    pub dependencies: Vec<String>,
    /// Depth in the DAG (0: no dependency).
    pub level: usize,
    pub outcome: Outcome,
    /// Why this outcome (empty for `run`).
    pub reason: String,
    /// The state a skip condition gives the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Configuration as it would be sent to the action (secrets masked).
    pub configuration: Value,
    /// Some values are only known at run time (left as written).
    pub runtime_values: bool,
    /// The step runs once per element of this list (known at run time or rendered here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreach: Option<String>,
    /// Rendering problems of this step's configuration.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Number of check conditions evaluated after the step runs.
    pub checks: usize,
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub template: String,
    /// The task title the inputs give.
    pub title: String,
    /// Input problems (`input.x: message`); the plan still shows what it can.
    pub input_errors: Vec<String>,
    pub steps: Vec<PlannedStep>,
}

/// What plan mode cannot know before the task runs: step results, foreach iterators,
/// pre-hook and function values.
const PLAN_RUNTIME: &[&str] = &["step.", "iterator", "pre_hook", "function_args"];

/// True when a template string reads one of the `runtime` values — or variables (`eval`) that do.
fn reads(src: &str, runtime: &[&str], variables_read_runtime: bool) -> bool {
    if !src.contains("{{") && !src.contains("{%") {
        return false;
    }
    runtime.iter().any(|k| src.contains(k)) || (variables_read_runtime && src.contains("eval"))
}

/// True when a template string reads values only known while the task runs: step results,
/// foreach iterators, pre-hook and function values — or variables (`eval`) that do.
fn reads_runtime(src: &str, variables_read_runtime: bool) -> bool {
    reads(src, PLAN_RUNTIME, variables_read_runtime)
}

/// True when a variable's value or expression reads run-time values.
fn variables_read_runtime(t: &TaskTemplate) -> bool {
    t.variables.iter().any(|v| {
        v.expression
            .as_deref()
            .is_some_and(|e| reads_runtime(&format!("{{{{{e}"), false))
            || v.value
                .as_ref()
                .is_some_and(|x| reads_runtime(&x.to_string(), false))
    })
}

/// Steps in dependency order (file order among equals) with their DAG depth. Cycles and unknown
/// dependencies (refused by validation anyway) are placed last.
fn order(t: &TaskTemplate) -> Vec<(String, usize)> {
    let mut level: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut remaining: Vec<&str> = t.steps.keys().map(String::as_str).collect();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|name| {
            let step = &t.steps[*name];
            let deps: Vec<&str> = step.dependency_names().collect();
            if deps
                .iter()
                .all(|d| level.contains_key(d) || !t.steps.contains_key(*d))
            {
                let l = deps
                    .iter()
                    .filter_map(|d| level.get(d))
                    .map(|l| l + 1)
                    .max()
                    .unwrap_or(0);
                level.insert(name, l);
                out.push((name.to_string(), l));
                false
            } else {
                true
            }
        });
        if remaining.len() == before {
            for name in remaining.drain(..) {
                out.push((name.to_string(), 0));
            }
        }
    }
    out
}

struct Renderer2<'a> {
    templater: &'a Templater,
    ctx: &'a Value,
    /// Strings reading these are left as written.
    runtime: &'a [&'a str],
    variables_runtime: bool,
}

impl Renderer2<'_> {
    fn value(&self, v: &Value, runtime: &mut bool, errors: &mut Vec<String>) -> Value {
        match v {
            Value::String(s) => {
                if reads(s, self.runtime, self.variables_runtime) {
                    *runtime = true;
                    return v.clone();
                }
                let ev = self.templater.evaluator(self.ctx);
                match self.templater.render_str(s, self.ctx, &ev) {
                    Ok(r) => Value::String(r),
                    Err(e) => {
                        errors.push(e);
                        v.clone()
                    }
                }
            }
            Value::Array(a) => {
                Value::Array(a.iter().map(|x| self.value(x, runtime, errors)).collect())
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.value(x, runtime, errors)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn masked(declared: &[crate::template::model::Input], given: &Map<String, Value>) -> Value {
    let mut m = given.clone();
    for name in input::password_names(declared) {
        if m.get(name).is_some_and(|v| !v.is_null()) {
            m.insert(name.to_string(), Value::String(SECRET_MASK.into()));
        }
    }
    Value::Object(m)
}

/// A step's configuration as written, its base configuration merged under it.
fn written_configuration(t: &TaskTemplate, step: &Step) -> Value {
    let mut config = step.action.configuration.clone();
    if let Some(base) = &step.action.base_configuration
        && let Some(b) = t.base_configurations.get(base)
    {
        config = super::step::merge(b, &config);
    }
    config
}

/// Plans `req` with `renderer` (and `js` for expression variables).
pub fn plan(req: &PlanRequest, renderer: Arc<Renderer>, js: Option<Arc<dyn JsEval>>) -> Plan {
    let t = &req.template;
    let mut input_errors = Vec::new();
    let input = match input::validate(&t.inputs, &req.input, "input") {
        Ok(v) => v,
        Err(errs) => {
            input_errors.extend(errs.iter().map(|e| format!("{}: {}", e.field, e.message)));
            req.input.clone()
        }
    };
    let resolver_input = if req.resolver_input.is_empty() {
        Map::new()
    } else {
        match input::validate(&t.resolver_inputs, &req.resolver_input, "resolver_input") {
            Ok(v) => v,
            Err(errs) => {
                input_errors.extend(errs.iter().map(|e| format!("{}: {}", e.field, e.message)));
                req.resolver_input.clone()
            }
        }
    };
    let mut steps_ctx = Map::new();
    for name in t.steps.keys() {
        steps_ctx.insert(
            name.clone(),
            serde_json::json!({"output": {}, "metadata": {}, "children": null, "error": "",
                               "state": "TODO", "try_count": 0}),
        );
    }
    let ctx = serde_json::json!({
        "input": masked(&t.inputs, &input),
        "resolver_input": masked(&t.resolver_inputs, &resolver_input),
        "step": steps_ctx,
        "config": {},
        "task": {"requester_username": req.requester, "resolver_username": "",
                 "task_id": "", "resolution_id": ""},
    });
    let templater = Templater::new(renderer, template_dialect(t), t.variables.clone(), js);
    let variables_runtime = variables_read_runtime(t);
    let r = Renderer2 {
        templater: &templater,
        ctx: &ctx,
        runtime: PLAN_RUNTIME,
        variables_runtime,
    };
    let title = {
        let mut rt = false;
        let mut errs = Vec::new();
        match r.value(&Value::String(t.title_format.clone()), &mut rt, &mut errs) {
            Value::String(s) if errs.is_empty() => s,
            _ => t.title_format.clone(),
        }
    };

    // predicted final states of the steps planned so far (None: not known before running)
    let mut final_state: HashMap<String, Option<String>> = HashMap::new();
    let mut out = Vec::new();
    for (name, level) in order(t) {
        let step = &t.steps[&name];
        let mut errors = Vec::new();
        let mut runtime = false;
        let configuration = r.value(&written_configuration(t, step), &mut runtime, &mut errors);

        let mut outcome = Outcome::Run;
        let mut reason = String::new();
        let mut state = None;
        // dependencies first: a dependency that ends in a state this step does not accept
        for dep in step.dependencies.iter().map(|d| dependency_parts(d)) {
            let accepts = |s: &str| dep.states.iter().any(|q| q == s || q == "ANY");
            match final_state.get(&dep.step) {
                Some(Some(s)) if !accepts(s) => {
                    outcome = Outcome::Prune;
                    reason = format!("dependency `{}` ends {s}", dep.step);
                    break;
                }
                // a step expected to run is assumed to end DONE (the plan shows the happy path)
                Some(None) if !accepts(STATE_DONE) => {
                    outcome = Outcome::Runtime;
                    reason = format!(
                        "runs only if `{}` ends {}",
                        dep.step,
                        dep.states.join(" or ")
                    );
                }
                _ => {}
            }
        }
        if outcome == Outcome::Run {
            for (i, c) in step.conditions.iter().enumerate() {
                if c.condition_type != ConditionType::Skip {
                    continue;
                }
                if c.asserts.iter().any(|a| {
                    reads_runtime(&a.value, variables_runtime)
                        || reads_runtime(&a.expected, variables_runtime)
                }) {
                    outcome = Outcome::Runtime;
                    reason = format!("skip condition #{} reads run-time values", i + 1);
                    break;
                }
                match condition::evaluate(&templater, c, &ctx) {
                    Eval::Met => {
                        let then = c.then.get("this").or_else(|| c.then.get(&name)).cloned();
                        if let Some(s) = then {
                            outcome = Outcome::Skip;
                            reason = format!("skip condition #{} is met", i + 1);
                            state = Some(s);
                        }
                        if c.is_final {
                            break;
                        }
                    }
                    Eval::NotMet(_) => {}
                    Eval::Error(e) => errors.push(format!("skip condition #{}: {e}", i + 1)),
                }
                if outcome == Outcome::Skip {
                    break;
                }
            }
        }
        let predicted = match outcome {
            Outcome::Run => None,
            Outcome::Skip => state.clone(),
            Outcome::Prune => Some(STATE_PRUNE.to_string()),
            Outcome::Runtime => None,
        };
        final_state.insert(name.clone(), predicted);
        let checks = step
            .conditions
            .iter()
            .filter(|c| c.condition_type == ConditionType::Check)
            .count();
        out.push(PlannedStep {
            name: name.clone(),
            description: step.description.clone(),
            action_type: step.action.action_type.clone(),
            dependencies: step.dependencies.clone(),
            level,
            outcome,
            reason,
            state,
            configuration,
            runtime_values: runtime,
            foreach: step.foreach.clone(),
            errors,
            checks,
        });
    }
    // keep only steps that exist (defensive against cycles listed twice)
    let mut seen = HashSet::new();
    out.retain(|s| seen.insert(s.name.clone()));
    Plan {
        template: t.name.clone(),
        title,
        input_errors,
        steps: out,
    }
}

/// A step's configuration rendered with a resolution's current values (the task detail's step
/// panel): what the action received or would receive, secrets masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedConfiguration {
    pub name: String,
    /// Rendered (password inputs and password resolver inputs masked; values the caller may not
    /// see or only known while the step runs are left as written).
    pub configuration: Value,
    /// As written in the template (base configuration merged).
    pub as_written: Value,
    /// Some values were left as written (see the module doc).
    pub runtime_values: bool,
    /// Rendering problems.
    pub errors: Vec<String>,
    /// A foreach parent: one rendering per element.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<RenderedChild>,
}

/// The values of a resolution a step configuration is rendered with.
pub struct ResolutionValues<'a> {
    pub template: &'a TaskTemplate,
    pub resolution: &'a crate::engine::model::RunResolution,
    /// The task's inputs as stored (password inputs are masked here).
    pub input: &'a Value,
    /// The resolver inputs as stored (password inputs are masked here).
    pub resolver_input: &'a Value,
    /// The `task` values (`task.task_id`, `task.requester_username`…).
    pub task: Value,
    /// The caller sees step outputs and resolver inputs (admins and managers); otherwise
    /// strings reading them are left as written.
    pub outputs_visible: bool,
}

/// One foreach element of a parent step, rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedChild {
    /// The element (`iterator`).
    pub item: Value,
    pub configuration: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Renders the configuration of step `name` of a resolution (None: no such step). Instance
/// configuration values (`config.…`), pre-hook and function values — and the iterator of a
/// foreach parent — are left as written; so are variables computed by JavaScript, which only
/// the engine's sandbox evaluates. A foreach parent also answers one rendering per element:
/// its live children's items while expanded, else the `iterator` of its recorded children.
pub fn render_resolution_step(
    v: &ResolutionValues<'_>,
    name: &str,
    renderer: Arc<Renderer>,
) -> Option<RenderedConfiguration> {
    let step = v.resolution.steps.get(name)?;
    let t = v.template;
    let templater = Templater::new(renderer, template_dialect(t), t.variables.clone(), None);
    let as_written = written_configuration(t, &step.def.step);
    let (configuration, runtime_values, errors) =
        render_in_resolution(v, &templater, name, step.def.item.as_ref(), &as_written);
    let mut children = Vec::new();
    if step.def.item.is_none() && step.def.step.is_foreach() {
        let live: Vec<&Value> = v
            .resolution
            .steps
            .values()
            .filter(|s| s.def.parent.as_deref() == Some(name))
            .filter_map(|s| s.def.item.as_ref())
            .collect();
        let items: Vec<Value> = if !live.is_empty() {
            live.into_iter().cloned().collect()
        } else {
            match &step.children {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|c| c["metadata"]["iterator"].clone())
                    .collect(),
                _ => Vec::new(),
            }
        };
        for item in items {
            let (configuration, _, errors) =
                render_in_resolution(v, &templater, name, Some(&item), &as_written);
            children.push(RenderedChild {
                item,
                configuration,
                errors,
            });
        }
    }
    Some(RenderedConfiguration {
        name: name.to_string(),
        configuration,
        as_written,
        runtime_values,
        errors,
        children,
    })
}

fn render_in_resolution(
    v: &ResolutionValues<'_>,
    templater: &Templater,
    name: &str,
    item: Option<&Value>,
    as_written: &Value,
) -> (Value, bool, Vec<String>) {
    use super::values::{BaseValues, Scope, context};
    let t = v.template;
    let as_object = |x: &Value| match x {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let base = BaseValues {
        input: masked(&t.inputs, &as_object(v.input)),
        resolver_input: if v.outputs_visible {
            masked(&t.resolver_inputs, &as_object(v.resolver_input))
        } else {
            Value::Object(Map::new())
        },
        task: v.task.clone(),
        config: Value::Object(Map::new()),
    };
    let ctx = context(
        &base,
        v.resolution,
        &Scope {
            this: Some(name),
            iterator: item,
            ..Default::default()
        },
    );
    let mut runtime: Vec<&str> = vec!["pre_hook", "function_args", "config.", "config["];
    if item.is_none() {
        runtime.push("iterator");
    }
    if !v.outputs_visible {
        runtime.extend(["step.", "resolver_input"]);
    }
    let variables_runtime = t.variables.iter().any(|x| x.expression().is_some())
        || (!v.outputs_visible && !t.variables.is_empty());
    let r = Renderer2 {
        templater,
        ctx: &ctx,
        runtime: &runtime,
        variables_runtime,
    };
    let mut runtime_values = false;
    let mut errors = Vec::new();
    let configuration = r.value(as_written, &mut runtime_values, &mut errors);
    (configuration, runtime_values, errors)
}
