//! The values a template string sees while a resolution runs (µTask's `.input`, `.step`, …):
//! built from the resolution's current state each time, so conditions evaluated one after the
//! other observe each other's effects.
//!
//! Shape: `input`, `resolver_input`, `step.<name>.{output, metadata, children, error, state,
//! try_count}` (nil output/metadata are `{}` as in µTask), `step.this` = the step being
//! templated, `config`, `task.{task_id, created, requester_username, requester_groups,
//! resolver_username, resolver_groups, watcher_usernames, watcher_groups, region,
//! resolution_id, last_activity}`, `iterator` (foreach element), `pre_hook`,
//! `function_args`.

use serde_json::{Map, Value, json};

use super::model::{RunResolution, RunStep};

/// Per-resolution constant values.
#[derive(Debug, Clone, Default)]
pub struct BaseValues {
    pub input: Value,
    pub resolver_input: Value,
    pub task: Value,
    pub config: Value,
}

fn step_entry(s: &RunStep) -> Value {
    let empty = || Value::Object(Map::new());
    json!({
        "output": s.output.clone().unwrap_or_else(empty),
        "metadata": s.metadata.clone().unwrap_or_else(empty),
        "children": s.children.clone().unwrap_or(Value::Null),
        "error": s.error.clone().unwrap_or_default(),
        "state": s.state.as_str(),
        "try_count": s.try_count,
        "max_retries": s.def.step.max_retries.unwrap_or(0),
    })
}

/// Extra values of one evaluation.
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    /// The step bound to `step.this`.
    pub this: Option<&'a str>,
    /// Overrides `step.this` (e.g. the raw output during output templating).
    pub this_override: Option<Value>,
    pub iterator: Option<&'a Value>,
    pub pre_hook: Option<&'a Value>,
    pub function_args: Option<&'a Value>,
}

/// Builds the root value of a render.
pub fn context(base: &BaseValues, res: &RunResolution, scope: &Scope<'_>) -> Value {
    let mut steps = Map::new();
    for (name, s) in &res.steps {
        steps.insert(name.clone(), step_entry(s));
    }
    if let Some(v) = &scope.this_override {
        steps.insert("this".into(), v.clone());
    } else if let Some(this) = scope.this
        && let Some(s) = res.steps.get(this)
    {
        steps.insert("this".into(), step_entry(s));
    }
    let mut root = Map::new();
    root.insert("input".into(), base.input.clone());
    root.insert("resolver_input".into(), base.resolver_input.clone());
    root.insert("step".into(), Value::Object(steps));
    root.insert("config".into(), base.config.clone());
    root.insert("task".into(), base.task.clone());
    if let Some(i) = scope.iterator {
        root.insert("iterator".into(), i.clone());
    }
    if let Some(p) = scope.pre_hook {
        root.insert("pre_hook".into(), p.clone());
    }
    if let Some(f) = scope.function_args {
        root.insert("function_args".into(), f.clone());
    }
    Value::Object(root)
}

/// The `step.this` value for a raw output (output strategy `template`).
pub fn this_with_output(s: &RunStep, output: &Option<Value>, metadata: &Option<Value>) -> Value {
    let mut e = step_entry(s);
    if let Value::Object(m) = &mut e {
        m.insert(
            "output".into(),
            output.clone().unwrap_or_else(|| Value::Object(Map::new())),
        );
        m.insert(
            "metadata".into(),
            metadata
                .clone()
                .unwrap_or_else(|| Value::Object(Map::new())),
        );
    }
    e
}
