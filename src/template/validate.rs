//! Pure template and function validation: every problem at once, each naming its path.
//!
//! [`validate_template`] implements µTask's `TaskTemplate.Valid` (inventory §1, §1.7, §3 and the
//! lint rows of the conformance suite) without stopping at the first error: metadata lengths,
//! inputs, variables, tags, every step (action/pre_hook/function chains, retry pattern, foreach,
//! custom states, conditions, json_schema, dependencies, cycles) and the handle scan of template
//! strings (`.step.X.output.a.b` linted against the step's JSON schema, `.input.X`,
//! `.resolver_input.X`, `.task.X`), in both the µTask dialect (`{{ .input.a }}`) and native Jinja
//! (`{{ input.a }}`). Messages contain µTask's text where µTask has one, so µTask users recognise
//! them. [`validate_function`] checks a function definition against the other functions.
//!
//! Invariants: no IO, no panics on any input, deterministic output order (file order of steps,
//! then of fields). Problems carry a path (`steps.stepTwo.dependencies[0]`); the loader adds
//! file, line and column.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use super::model::{
    CONDITION_THEN_STATES, ConditionForeach, ConditionType, Dialect, Executor, Function,
    FunctionSet, Input, InputType, MAX_EXECUTION_DELAY_NANOS, OperatorKind, OutputStrategy,
    RESERVED_STATE_NAMES, RESERVED_TAG_PARENT_TASK, STATE_ANY, STATE_DONE, STATE_TIMEOUT, Step,
    TASK_INFO_KEYS, THIS_STEP, TaskTemplate, config_has_path, dependency_parts, is_builtin_action,
    is_reserved_state, normalize_name, parse_go_duration,
};
use super::position::{join_index, join_key};

/// Most steps a template may have (keeps graph checks cheap on hostile input).
pub const MAX_STEPS: usize = 2_000;
/// Most cycle problems reported for one template.
const MAX_CYCLE_PROBLEMS: usize = 50;
/// Regex size limit for author-provided regular expressions.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How bad a problem is: errors refuse the template, warnings are informational.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding about a template or function file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// File label (as given to the loader).
    pub file: Option<String>,
    /// 1-based line.
    pub line: Option<u32>,
    /// 1-based column.
    pub column: Option<u32>,
    /// Normalized template name, when known.
    pub template: Option<String>,
    /// Path of the offending field (`steps.a.dependencies[0]`), empty for the whole document.
    pub path: String,
    pub message: String,
}

impl Problem {
    /// An error at `path`.
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(Severity::Error, path, message)
    }

    /// A warning at `path`.
    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(Severity::Warning, path, message)
    }

    fn new(severity: Severity, path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            severity,
            file: None,
            line: None,
            column: None,
            template: None,
            path: path.into(),
            message: message.into(),
        }
    }

    /// True for an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Set the template name.
    pub fn with_template(mut self, name: impl Into<String>) -> Problem {
        self.template = Some(name.into());
        self
    }

    /// Set the file label.
    pub fn with_file(mut self, file: impl Into<String>) -> Problem {
        self.file = Some(file.into());
        self
    }

    /// Set the position.
    pub fn at(mut self, line: u32, column: u32) -> Problem {
        self.line = Some(line);
        self.column = Some(column);
        self
    }
}

impl fmt::Display for Problem {
    /// `templates/x.yaml:12:5: error: template 'x': steps.a.dependencies[0]: message`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            f.write_str(file)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(col) = self.column {
                    write!(f, ":{col}")?;
                }
            }
            f.write_str(": ")?;
        }
        write!(f, "{}: ", self.severity)?;
        if let Some(t) = &self.template {
            write!(f, "template '{t}': ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// The plugin action types a template may use: name → the plugin's `config_schema` (if any),
/// against which steps of that type are checked like builtin ones.
pub type PluginTypes = HashMap<String, Option<Value>>;

/// What validation may consult besides the template itself.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext<'a> {
    /// Functions usable as action types.
    pub functions: &'a FunctionSet,
    /// Normalized names of the templates a subtask/batch may reference; `None` skips the check.
    pub known_templates: Option<&'a HashSet<String>>,
    /// Extra (plugin) action types and their configuration schemas; builtins are always known.
    pub plugin_types: Option<&'a PluginTypes>,
}

impl<'a> ValidationContext<'a> {
    /// A context with these functions, no template or plugin knowledge.
    pub fn new(functions: &'a FunctionSet) -> ValidationContext<'a> {
        ValidationContext {
            functions,
            known_templates: None,
            plugin_types: None,
        }
    }

    fn is_known_final_type(&self, t: &str) -> bool {
        is_builtin_action(t) || self.plugin_types.is_some_and(|p| p.contains_key(t))
    }
}

// ---------------------------------------------------------------------------------------------
// Template validation
// ---------------------------------------------------------------------------------------------

/// Validate a template: every problem, in a deterministic order. Works on a normalized or raw
/// template. Problems have a path and the template name, no file/line (see `load`).
pub fn validate_template(t: &TaskTemplate, ctx: &ValidationContext) -> Vec<Problem> {
    let index: HashMap<&str, usize> = t
        .steps
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let adj = if t.steps.len() > MAX_STEPS {
        Vec::new()
    } else {
        t.steps
            .values()
            .map(|s| {
                s.dependency_names()
                    .filter_map(|d| index.get(d).copied())
                    .collect()
            })
            .collect()
    };
    let mut v = TemplateValidator {
        t,
        ctx,
        problems: Vec::new(),
        index,
        adj,
        ancestors: RefCell::new(HashMap::new()),
    };
    v.run();
    let name = normalize_name(&t.name);
    let mut seen = HashSet::new();
    v.problems
        .into_iter()
        .filter(|p| seen.insert((p.path.clone(), p.message.clone())))
        .map(|p| p.with_template(name.clone()))
        .collect()
}

struct TemplateValidator<'t, 'c> {
    t: &'t TaskTemplate,
    ctx: &'c ValidationContext<'c>,
    problems: Vec<Problem>,
    index: HashMap<&'t str, usize>,
    /// Dependency edges by step index (existing steps only).
    adj: Vec<Vec<usize>>,
    /// Memoized ancestor sets.
    ancestors: RefCell<HashMap<usize, Rc<Vec<bool>>>>,
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

impl<'t> TemplateValidator<'t, '_> {
    fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.problems.push(Problem::error(path, msg));
    }

    fn warn(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.problems.push(Problem::warning(path, msg));
    }

    fn run(&mut self) {
        self.metadata();
        let input_names = validate_inputs("inputs", &self.t.inputs, &mut self.problems);
        let resolver_names = validate_inputs(
            "resolver_inputs",
            &self.t.resolver_inputs,
            &mut self.problems,
        );
        self.variables();
        self.tags();
        if self.t.steps.len() > MAX_STEPS {
            self.err(
                "steps",
                format!(
                    "too many steps: {} (at most {MAX_STEPS})",
                    self.t.steps.len()
                ),
            );
            return;
        }
        if self.t.steps.is_empty() {
            self.warn("steps", "the template has no steps");
        }
        for (name, step) in &self.t.steps {
            self.step(name, step);
        }
        self.cycles();
        self.references(&input_names, &resolver_names);
    }

    fn metadata(&mut self) {
        let t = self.t;
        let name = normalize_name(&t.name);
        if name.is_empty() {
            self.err("name", "template name is required");
        } else {
            self.length("name", "template name", &name, 3, 1000);
            // `GET /template/schema` answers the template JSON schema, so no template can
            // have that name
            if name == "schema" {
                self.err(
                    "name",
                    "`schema` is reserved (GET /template/schema is the template JSON schema)",
                );
            }
        }
        if t.description.is_empty() {
            self.err("description", "template description is required");
        } else {
            self.length(
                "description",
                "template description",
                &t.description,
                3,
                1000,
            );
        }
        if t.title_format.is_empty() {
            self.err("title_format", "template title format is required");
        } else {
            self.length(
                "title_format",
                "template title format",
                &t.title_format,
                3,
                1000,
            );
        }
        if let Some(ld) = &t.long_description {
            self.length(
                "long_description",
                "template long description",
                ld,
                3,
                100_000,
            );
        }
        if let Some(dl) = &t.doc_link {
            self.length("doc_link", "template doc link", dl, 3, 1000);
        }
        if t.auto_runnable && !t.resolver_inputs.is_empty() {
            self.err(
                "resolver_inputs",
                "A template can't be auto runnable if it has resolver inputs",
            );
        }
        if t.allow_all_resolver_usernames && !t.auto_runnable {
            self.err(
                "allow_all_resolver_usernames",
                "A template that can be resolved by everybody have to be auto-runnable",
            );
        }
        if let Some(n) = t.retry_max
            && n < 0
        {
            self.err("retry_max", format!("retry_max must be positive, got {n}"));
        }
        if let Some(d) = &t.expected_duration
            && let Err(e) = parse_go_duration(d)
        {
            self.err("expected_duration", format!("expected_duration: {e}"));
        }
        if let Some(n) = &t.notify {
            if let Some(ev) = &n.events
                && !matches!(
                    ev.as_str(),
                    "always" | "failure_only" | "failure_or_done" | "none"
                )
            {
                self.err(
                    "notify.events",
                    format!(
                        "notify.events must be always, failure_only, failure_or_done or none, not {ev:?}"
                    ),
                );
            }
            for (i, b) in n.backends.iter().enumerate() {
                if !matches!(b.as_str(), "webhook" | "slack" | "email") {
                    self.err(
                        format!("notify.backends[{i}]"),
                        format!("unknown notification backend {b:?} (webhook, slack or email)"),
                    );
                }
            }
        }
    }

    fn length(&mut self, path: &str, what: &str, value: &str, min: usize, max: usize) {
        let n = char_len(value);
        if n < min || n > max {
            self.err(
                path,
                format!(
                    "Invalid {what}: must be between {min} and {max} characters long (got {n})"
                ),
            );
        }
    }

    fn variables(&mut self) {
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, var) in self.t.variables.iter().enumerate() {
            let p = join_index("variables", i);
            if var.name.is_empty() {
                self.err(join_key(&p, "name"), "variable name can't be empty");
            } else if !seen.insert(var.name.as_str()) {
                self.warn(
                    join_key(&p, "name"),
                    format!("variable {:?} is declared more than once", var.name),
                );
            }
            let has_value = var.value.as_ref().is_some_and(|v| !v.is_null());
            let has_expr = var.expression().is_some();
            if has_value && has_expr {
                self.err(
                    p.clone(),
                    format!(
                        "variable {:?} can't have both value and expression defined",
                        var.name
                    ),
                );
            }
            if !has_value && !has_expr {
                self.err(
                    p.clone(),
                    format!(
                        "variable {:?} expression and value can't be empty at the same time",
                        var.name
                    ),
                );
            }
            if let Some(timeout) = &var.expression_timeout {
                let tp = join_key(&p, "expression_timeout");
                if !has_expr {
                    self.err(
                        tp.clone(),
                        format!(
                            "variable {:?}: expression_timeout is only allowed with an expression",
                            var.name
                        ),
                    );
                }
                match parse_go_duration(timeout) {
                    Ok(d) if d.is_zero() => self.err(
                        tp,
                        format!(
                            "variable {:?}: expression_timeout must be positive",
                            var.name
                        ),
                    ),
                    Ok(_) => {}
                    Err(e) => self.err(tp, format!("variable {:?}: {e}", var.name)),
                }
            }
        }
    }

    fn tags(&mut self) {
        if self.t.tags.contains_key(RESERVED_TAG_PARENT_TASK) {
            self.err(
                join_key("tags", RESERVED_TAG_PARENT_TASK),
                format!("Tag key {RESERVED_TAG_PARENT_TASK:?} is reserved"),
            );
        }
        for k in self.t.tags.keys() {
            if k.is_empty() {
                self.err("tags", "a tag key can't be empty");
            }
        }
    }

    // ---- steps ------------------------------------------------------------------------------

    fn step(&mut self, name: &str, step: &Step) {
        let sp = join_key("steps", name);
        if name == THIS_STEP {
            self.err(sp.clone(), format!("'{THIS_STEP}' step name is reserved"));
        }
        if name.is_empty() {
            self.err(sp.clone(), "a step name can't be empty");
        }
        if name.contains([':', ',']) {
            self.warn(
                sp.clone(),
                format!("step name {name:?} contains ':' or ',': other steps cannot depend on it"),
            );
        }

        self.action(&sp, step);
        self.pre_hook(&sp, step);

        let foreach = step.is_foreach();
        if let Some(fs) = &step.foreach_strategy {
            let p = join_key(&sp, "foreach_strategy");
            if !foreach {
                self.err(
                    p.clone(),
                    "step foreach_strategy can't be set without foreach",
                );
            }
            if !fs.is_known() {
                self.err(
                    p,
                    format!(
                        "step foreach_strategy {:?} is not a valid value",
                        fs.as_str()
                    ),
                );
            }
        }
        if let Some(d) = step.execution_delay
            && !(0..=MAX_EXECUTION_DELAY_NANOS).contains(&d)
        {
            self.err(
                    join_key(&sp, "execution_delay"),
                    format!(
                        "execution_delay: expected {d}ns to be a duration between 0s and 20s (in nanoseconds)"
                    ),
                );
        }
        if let Some(rp) = &step.retry_pattern
            && !rp.is_known()
        {
            self.err(
                join_key(&sp, "retry_pattern"),
                format!(
                    "Invalid retry pattern: {} Expecting(seconds|minutes|hours)",
                    rp.as_str()
                ),
            );
        }
        if let Some(timeout) = &step.timeout {
            let p = join_key(&sp, "timeout");
            match parse_go_duration(timeout) {
                Ok(d) if d.is_zero() => self.err(p, "timeout must be positive"),
                Ok(_) => {}
                Err(e) => self.err(p, format!("timeout: {e}")),
            }
        }
        for (i, r) in step.resources.iter().enumerate() {
            if r.trim().is_empty() {
                self.err(
                    join_index(&join_key(&sp, "resources"), i),
                    "a resource label can't be empty",
                );
            }
        }
        check_custom_states(
            &join_key(&sp, "custom_states"),
            &step.custom_states,
            &mut self.problems,
        );
        self.conditions(name, &sp, step);
        if let Some(schema) = &step.json_schema {
            check_json_schema(
                &join_key(&sp, "json_schema"),
                name,
                schema,
                &mut self.problems,
            );
        }
        self.dependencies(&sp, step);
    }

    fn action(&mut self, sp: &str, step: &Step) {
        let ap = join_key(sp, "action");
        check_executor(
            &ap,
            &step.action,
            self.ctx,
            Some(&self.t.base_configurations),
            &mut self.problems,
        );
        // Only one pre_hook along the step + function chain.
        let chain = self.ctx.functions.chain(&step.action.action_type);
        let mut hooks = usize::from(step.pre_hook.is_some());
        for f in &chain.functions {
            if f.pre_hook.is_some() {
                hooks += 1;
                if hooks > 1 {
                    self.err(
                        join_key(&ap, "type"),
                        format!(
                            "Invalid executor action: function {:?}: pre_hook override",
                            f.name
                        ),
                    );
                    break;
                }
            }
        }
        // Sub-task templates must exist.
        self.subtask_reference(&ap, &step.action);
        self.config_fields(&ap, &step.action);
    }

    /// Missing required fields, unknown fields and mistyped literal values of a builtin or
    /// plugin action's configuration (its base configuration underneath) are reported as
    /// warnings ([`crate::action::schema`]); the plugin's own `config_schema` is used for a
    /// plugin type.
    fn config_fields(&mut self, ap: &str, ex: &Executor) {
        let schema = match crate::action::schema::builtin(&ex.action_type) {
            Some(s) => s,
            None => match self
                .ctx
                .plugin_types
                .and_then(|p| p.get(&ex.action_type))
                .and_then(Option::as_ref)
            {
                Some(s) => s.clone(),
                None => return,
            },
        };
        let mut config = ex.configuration.clone();
        if let Some(base) = &ex.base_configuration
            && let Some(b) = self.t.base_configurations.get(base)
        {
            config = crate::engine::step::merge(b, &config);
        }
        let cp = join_key(ap, "configuration");
        for (field, message) in crate::action::schema::check(&schema, &config) {
            let path = if field.is_empty() {
                cp.clone()
            } else {
                join_key(&cp, &field)
            };
            // a field already reported as an error (subtask's `template`) is not repeated
            if self.problems.iter().any(|p| p.path == path && p.is_error()) {
                continue;
            }
            self.warn(path, format!("{} action: {message}", ex.action_type));
        }
    }

    fn subtask_reference(&mut self, ap: &str, ex: &Executor) {
        let field = match ex.action_type.as_str() {
            "subtask" => "template",
            "batch" => "template_name",
            _ => return,
        };
        let cp = join_key(ap, "configuration");
        let fp = join_key(&cp, field);
        match ex.configuration.get(field) {
            None | Some(Value::Null) => {
                self.err(fp, format!("Invalid executor action: missing {field}"));
            }
            Some(Value::String(s)) => {
                if s.trim().is_empty() {
                    self.err(fp, format!("Invalid executor action: missing {field}"));
                } else if !is_templated(s)
                    && let Some(known) = self.ctx.known_templates
                    && !known.contains(&normalize_name(s))
                {
                    self.err(
                        fp,
                        format!("Invalid executor action: template {s:?} not found"),
                    );
                }
            }
            Some(_) => self.err(
                fp,
                format!("Invalid executor action: {field} must be a string"),
            ),
        }
    }

    fn pre_hook(&mut self, sp: &str, step: &Step) {
        let Some(hook) = &step.pre_hook else { return };
        let hp = join_key(sp, "pre_hook");
        check_executor(
            &hp,
            hook,
            self.ctx,
            Some(&self.t.base_configurations),
            &mut self.problems,
        );
        let chain = self.ctx.functions.chain(&hook.action_type);
        if chain.functions.iter().any(|f| f.pre_hook.is_some()) {
            self.err(join_key(&hp, "type"), "Invalid prehook on a prehook");
        }
    }

    fn conditions(&mut self, name: &str, sp: &str, step: &Step) {
        let foreach = step.is_foreach();
        for (ci, c) in step.conditions.iter().enumerate() {
            let cp = join_index(&join_key(sp, "conditions"), ci);
            check_condition_shape(&cp, c, &mut self.problems);
            for (target, state) in &c.then {
                let tp = join_key(&join_key(&cp, "then"), target);
                if target == name && !foreach {
                    self.err(
                        tp.clone(),
                        format!("Step condition should not reference itself, use '{THIS_STEP}'"),
                    );
                    continue;
                }
                let target_name = if target == THIS_STEP {
                    name
                } else {
                    target.as_str()
                };
                let Some(target_step) = self.t.steps.get(target_name) else {
                    self.err(
                        tp,
                        format!("Step condition points to non-existing step: {target_name}"),
                    );
                    continue;
                };
                if !self.can_impact(name, target_name) {
                    self.err(
                        tp,
                        format!(
                            "Step condition cannot impact the state of step {target_name}, only those who belong to the dependency chain are allowed"
                        ),
                    );
                    continue;
                }
                let custom = target_step.effective_custom_states(self.ctx.functions);
                if !CONDITION_THEN_STATES.contains(&state.as_str()) && !custom.contains(state) {
                    self.err(
                        tp,
                        format!(
                            "Step condition implies invalid state for step {target_name}: {state}"
                        ),
                    );
                }
            }
            if c.condition_type == ConditionType::Skip
                && !c.then.contains_key(THIS_STEP)
                && !c.then.contains_key(name)
            {
                self.warn(
                    join_key(&cp, "then"),
                    "skip condition does not set the state of 'this': when it matches, the step is left RUNNING",
                );
            }
            if let Some(f) = &c.foreach
                && f.is_known()
            {
                let fp = join_key(&cp, "foreach");
                if !foreach {
                    self.err(
                        fp,
                        "Step condition cannot set foreach on a non-foreach step",
                    );
                } else if c.condition_type != ConditionType::Skip {
                    self.err(fp, "Step condition can set foreach on a skip condition");
                }
            }
        }
    }

    fn dependencies(&mut self, sp: &str, step: &Step) {
        let dp = join_key(sp, "dependencies");
        let mut seen: HashSet<String> = HashSet::new();
        for (i, d) in step.dependencies.iter().enumerate() {
            let p = join_index(&dp, i);
            let dep = dependency_parts(d);
            let Some(dep_step) = self.t.steps.get(&dep.step) else {
                self.err(
                    p,
                    format!("Invalid dependency, no step with that name: {:?}", dep.step),
                );
                continue;
            };
            if !seen.insert(dep.step.clone()) {
                self.err(
                    p.clone(),
                    format!(
                        "Invalid dependency, already defined dependency to: {:?}",
                        dep.step
                    ),
                );
            }
            let mut states = HashSet::new();
            if dep.states.iter().any(|s| !states.insert(s.as_str())) {
                self.err(p.clone(), "Invalid dependency, duplicated state detected");
            }
            let custom = dep_step.effective_custom_states(self.ctx.functions);
            for s in &dep.states {
                // mutask: TIMEOUT (a step that exceeded its timeout) is a final builtin state
                if s == STATE_DONE || s == STATE_TIMEOUT {
                    continue;
                }
                if s == STATE_ANY {
                    if dep.states.len() != 1 {
                        self.err(
                            p.clone(),
                            "Invalid dependency, no other state allowed if ANY is declared",
                        );
                    }
                    continue;
                }
                if !custom.contains(s) {
                    self.err(
                        p.clone(),
                        format!(
                            "Invalid dependency on step {}, step state not allowed: {s:?}",
                            dep.step
                        ),
                    );
                }
            }
        }
    }

    // ---- graph ------------------------------------------------------------------------------

    /// All (transitive) ancestors of step `i` (memoized).
    fn ancestors(&self, i: usize) -> Rc<Vec<bool>> {
        if let Some(a) = self.ancestors.borrow().get(&i) {
            return Rc::clone(a);
        }
        let n = self.adj.len();
        let mut seen = vec![false; n];
        let mut queue: Vec<usize> = self.adj.get(i).cloned().unwrap_or_default();
        while let Some(j) = queue.pop() {
            if j < n && !seen[j] {
                seen[j] = true;
                queue.extend(self.adj[j].iter().copied());
            }
        }
        let seen = Rc::new(seen);
        self.ancestors.borrow_mut().insert(i, Rc::clone(&seen));
        seen
    }

    /// µTask `canImpactState`: same step, an ancestor or a descendant.
    fn can_impact(&self, source: &str, target: &str) -> bool {
        if source == target {
            return true;
        }
        let (Some(&s), Some(&t)) = (self.index.get(source), self.index.get(target)) else {
            return false;
        };
        self.ancestors(s)[t] || self.ancestors(t)[s]
    }

    /// One problem per dependency cycle (strongly connected component with a cycle).
    fn cycles(&mut self) {
        let n = self.adj.len();
        let mut found: Vec<(String, String)> = Vec::new();
        let mut truncated = false;
        for scc in tarjan_scc(&self.adj) {
            let Some(&rep) = scc.iter().min() else {
                continue;
            };
            let cyclic = scc.len() > 1 || self.adj[rep].contains(&rep);
            if !cyclic {
                continue;
            }
            if found.len() == MAX_CYCLE_PROBLEMS {
                truncated = true;
                break;
            }
            let Some((rep_name, rep_step)) = self.t.steps.get_index(rep) else {
                continue;
            };
            let members: HashSet<usize> = scc.iter().copied().collect();
            let anc = self.ancestors(rep);
            let mut chain: Vec<&str> = (0..n)
                .filter(|&j| anc[j])
                .filter_map(|j| self.t.steps.get_index(j).map(|(k, _)| k.as_str()))
                .collect();
            chain.sort_unstable();
            let dep_idx = rep_step
                .dependency_names()
                .position(|d| self.index.get(d).is_some_and(|j| members.contains(j)))
                .unwrap_or(0);
            let path = join_index(
                &join_key(&join_key("steps", rep_name), "dependencies"),
                dep_idx,
            );
            found.push((
                path,
                format!(
                    "Invalid: circular dependency [{}] <-> {rep_name}",
                    chain.join(" ")
                ),
            ));
        }
        for (path, msg) in found {
            self.err(path, msg);
        }
        if truncated {
            self.err(
                "steps",
                "too many circular dependencies, the rest are not reported",
            );
        }
    }

    // ---- handle scan --------------------------------------------------------------------------

    fn references(&mut self, input_names: &HashSet<String>, resolver_names: &HashSet<String>) {
        let Ok(value) = serde_json::to_value(self.t) else {
            return;
        };
        let mut strings: Vec<(String, String)> = Vec::new();
        collect_strings(&value, "", &mut strings);
        let dialect = self.t.dialect;
        for (path, s) in &strings {
            for r in scan_handles(s, dialect) {
                self.reference(path, &r, input_names, resolver_names);
            }
        }
    }

    fn reference(
        &mut self,
        path: &str,
        r: &Handle,
        input_names: &HashSet<String>,
        resolver_names: &HashSet<String>,
    ) {
        let key = r.parts[0].as_str();
        match r.root.as_str() {
            "step" => {
                if key != THIS_STEP && !self.t.steps.contains_key(key) {
                    self.err(path, format!("step: Wrong step key: {key}"));
                    return;
                }
                if key == THIS_STEP || r.parts.len() < 3 {
                    return;
                }
                let Some(step) = self.t.steps.get(key) else {
                    return;
                };
                let rest: Vec<&str> = r.parts[2..].iter().map(String::as_str).collect();
                match r.parts[1].as_str() {
                    "output" => {
                        if let Some(schema) = &step.json_schema
                            && !lint_schema_path(schema, &rest)
                        {
                            self.err(
                                path,
                                format!(
                                    "Linting error: step {key}: Variable {} does not exist",
                                    rest.join(".")
                                ),
                            );
                        }
                    }
                    "metadata" => {
                        let final_type = self
                            .ctx
                            .functions
                            .chain(&step.action.action_type)
                            .final_type;
                        if let Some(keys) = metadata_keys(&final_type)
                            && !keys.contains(&rest[0])
                        {
                            self.err(
                                    path,
                                    format!(
                                        "Linting error: step details for step {key:?}: Variable {} does not exist",
                                        rest.join(".")
                                    ),
                                );
                        }
                    }
                    _ => {}
                }
            }
            "input" if !input_names.contains(key) => {
                self.err(path, format!("Wrong input key: {key}"));
            }
            "resolver_input" if !resolver_names.contains(key) => {
                self.err(
                    path,
                    format!("Wrong input key: {key} (not a resolver input)"),
                );
            }
            "task" if !TASK_INFO_KEYS.contains(&key) => {
                self.err(path, format!("Wrong task key: {key}"));
            }
            _ => {}
        }
    }
}

/// Plugin metadata keys linted for `.step.X.metadata.K` (µTask lints http/apiovh).
fn metadata_keys(action_type: &str) -> Option<&'static [&'static str]> {
    match action_type {
        "http" | "apiovh" => Some(&["HTTPStatus", "HTTPHeaders", "HTTPCookies"]),
        _ => None,
    }
}

/// Tarjan's strongly connected components, iterative (no recursion on hostile input).
fn tarjan_scc(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = adj.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut counter = 0usize;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        // (node, next edge position)
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(top) = work.last_mut() {
            let (v, ei) = *top;
            if let Some(&w) = adj[v].get(ei) {
                top.1 += 1;
                if w >= n {
                    continue;
                }
                if index[w] == usize::MAX {
                    index[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    out.push(comp);
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shared checks (templates and functions)
// ---------------------------------------------------------------------------------------------

fn is_templated(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

fn compile_regex(re: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(re)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| regex_error_text(&e))
}

/// One-line text of a regex error (the syntax error display spans several lines).
fn regex_error_text(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().trim_start_matches("error: ").to_string())
            .unwrap_or_else(|| s.replace('\n', " ")),
        other => other.to_string().replace('\n', " "),
    }
}

fn check_custom_states(path: &str, states: &[String], problems: &mut Vec<Problem>) {
    let mut seen = HashSet::new();
    for (i, s) in states.iter().enumerate() {
        let p = join_index(path, i);
        if s.is_empty() {
            problems.push(Problem::error(p, "Custom state \"\" is not valid"));
        } else if is_reserved_state(s) {
            problems.push(Problem::error(
                p,
                format!(
                    "Custom state {s:?} is not allowed as it's a reserved state. Reserved state are: \"{}\"",
                    RESERVED_STATE_NAMES.join("\", \"")
                ),
            ));
        } else if s.contains([',', ':']) {
            problems.push(Problem::error(
                p,
                format!("Custom state {s:?} can't contain ',' or ':'"),
            ));
        } else if !seen.insert(s.as_str()) {
            problems.push(Problem::warning(
                p,
                format!("Custom state {s:?} is declared twice"),
            ));
        }
    }
}

/// Type, foreach and assert checks of a condition (no `then` analysis).
fn check_condition_shape(cp: &str, c: &super::model::Condition, problems: &mut Vec<Problem>) {
    if !c.condition_type.is_known() {
        problems.push(Problem::error(
            join_key(cp, "type"),
            format!("Unknown condition type: {}", c.condition_type.as_str()),
        ));
    }
    if let Some(ConditionForeach::Unknown(f)) = &c.foreach {
        problems.push(Problem::error(
            join_key(cp, "foreach"),
            format!("Unknown condition foreach: {f}"),
        ));
    }
    for (ai, a) in c.asserts.iter().enumerate() {
        let ap = join_index(&join_key(cp, "if"), ai);
        match a.operator.kind() {
            None => problems.push(Problem::error(
                join_key(&ap, "operator"),
                format!("Unknown condition operator: {}", a.operator.raw),
            )),
            Some(OperatorKind::Regexp | OperatorKind::NotRegexp) => {
                if !is_templated(&a.expected)
                    && let Err(e) = compile_regex(&a.expected)
                {
                    problems.push(Problem::error(
                        join_key(&ap, "expected"),
                        format!("invalid regular expression {:?}: {e}", a.expected),
                    ));
                }
            }
            Some(_) => {}
        }
    }
}

/// Executor checks shared by steps, pre_hooks and functions: action type (builtin, plugin or
/// function chain), function arguments, base configuration, output strategy.
fn check_executor(
    path: &str,
    ex: &Executor,
    ctx: &ValidationContext,
    base_configurations: Option<&indexmap::IndexMap<String, Value>>,
    problems: &mut Vec<Problem>,
) {
    let tp = join_key(path, "type");
    let cp = join_key(path, "configuration");
    if ex.action_type.is_empty() {
        problems.push(Problem::error(
            tp,
            "Invalid executor action: missing action type",
        ));
    } else {
        let chain = ctx.functions.chain(&ex.action_type);
        if let Some(bad) = chain
            .functions
            .iter()
            .find(|f| ctx.functions.is_invalid(&f.name))
        {
            problems.push(Problem::error(
                tp.clone(),
                format!(
                    "Invalid executor action: function {:?} is invalid (see the problems of its file)",
                    bad.name
                ),
            ));
        } else if let Some(cycle) = &chain.cycle {
            problems.push(Problem::error(
                tp.clone(),
                format!("Invalid executor action: invalid cyclic import in function for {cycle:?}"),
            ));
        } else {
            if !ctx.is_known_final_type(&chain.final_type) {
                let via = chain
                    .functions
                    .last()
                    .map(|f| format!("function {:?}: ", f.name))
                    .unwrap_or_default();
                let message = match crate::template::model::unsupported_action(&chain.final_type) {
                    Some(why) => format!("Invalid executor action: {via}{why}"),
                    None => format!(
                        "Invalid executor action: {via}unknown action type {:?} (not a builtin action, a plugin or a function)",
                        chain.final_type
                    ),
                };
                problems.push(Problem::error(tp.clone(), message));
            }
            // Each level's configuration must provide the next function's arguments.
            let mut config = &ex.configuration;
            let mut via: Vec<&str> = Vec::new();
            for f in &chain.functions {
                for arg in f.args() {
                    if !config_has_path(config, &arg) {
                        let prefix: String = via
                            .iter()
                            .rev()
                            .map(|n| format!("function {n:?}: "))
                            .collect();
                        problems.push(Problem::error(
                            cp.clone(),
                            format!(
                                "Invalid executor action: {prefix}missing function_args {arg:?}"
                            ),
                        ));
                    }
                }
                via.push(&f.name);
                config = &f.action.configuration;
            }
        }
    }
    if let Some(base) = &ex.base_configuration {
        match base_configurations {
            Some(bc) if bc.contains_key(base) => {}
            Some(_) => problems.push(Problem::error(
                join_key(path, "base_configuration"),
                format!("Invalid executor action: BaseConfiguration key not found: {base:?}"),
            )),
            None => problems.push(Problem::warning(
                join_key(path, "base_configuration"),
                "base_configuration is ignored here (only a step's action uses it)",
            )),
        }
    }
    if let Some(out) = &ex.output {
        let op = join_key(path, "output");
        match &out.strategy {
            OutputStrategy::Unknown(s) => problems.push(Problem::error(
                join_key(&op, "strategy"),
                format!(
                    "Invalid executor action: unknown output strategy {s:?} (none, merge, template)"
                ),
            )),
            OutputStrategy::Merge => {
                if !matches!(out.format, Value::Object(_) | Value::Null) {
                    problems.push(Problem::error(
                        join_key(&op, "format"),
                        "Invalid executor action: with the merge strategy (or base_output), the output format must be a map",
                    ));
                }
            }
            OutputStrategy::None | OutputStrategy::Template => {}
        }
    }
    if let Some(base) = &ex.base_output
        && !matches!(base, Value::Object(_) | Value::Null)
    {
        problems.push(Problem::error(
            join_key(path, "base_output"),
            "Invalid executor action: base_output must be a map",
        ));
    }
}

/// Validate inputs; returns the declared names.
fn validate_inputs(path: &str, inputs: &[Input], problems: &mut Vec<Problem>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, input) in inputs.iter().enumerate() {
        let p = join_index(path, i);
        let name = &input.name;
        if name.is_empty() {
            problems.push(Problem::error(
                join_key(&p, "name"),
                "input name can't be empty",
            ));
        } else if !names.insert(name.clone()) {
            problems.push(Problem::error(
                join_key(&p, "name"),
                format!("Invalid input '{name}': declared more than once"),
            ));
        }
        let mut regex = None;
        if let Some(re) = &input.regex {
            if !input.legal_values.is_empty() {
                problems.push(Problem::error(
                    p.clone(),
                    format!("Invalid input '{name}': both regex and legal value list configured"),
                ));
            }
            match compile_regex(re) {
                Ok(r) => regex = Some(r),
                Err(e) => problems.push(Problem::error(
                    join_key(&p, "regex"),
                    format!("Invalid regex for input '{name}': {e}"),
                )),
            }
        }
        if let InputType::Unknown(t) = &input.input_type {
            problems.push(Problem::error(
                join_key(&p, "type"),
                format!("Invalid input type '{t}': must be either [string password bool number]"),
            ));
            continue;
        }
        for (j, lv) in input.legal_values.iter().enumerate() {
            if let Err(m) = check_value_type(input, lv) {
                problems.push(Problem::error(
                    join_index(&join_key(&p, "legal_values"), j),
                    m,
                ));
            }
        }
        if let Some(default) = &input.default
            && let Err(m) = check_value(input, default, regex.as_ref())
        {
            problems.push(Problem::error(join_key(&p, "default"), m));
        }
    }
    names
}

fn check_value_type(input: &Input, v: &Value) -> Result<(), String> {
    let ok = matches!(
        (&input.input_type, v),
        (_, Value::Null)
            | (InputType::String | InputType::Password, Value::String(_))
            | (InputType::Bool, Value::Bool(_))
            | (InputType::Number, Value::Number(_))
            | (InputType::Unknown(_), _)
    );
    if ok {
        return Ok(());
    }
    let want = match input.input_type {
        InputType::Bool => "a boolean",
        InputType::Number => "a number",
        _ => "a string",
    };
    Err(format!("Invalid value '{}': expected {want}", input.name))
}

/// Go `%v` of a JSON value (close enough for messages and regex checks).
fn go_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_string(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// µTask `Input.CheckValue` of a default value.
fn check_value(input: &Input, v: &Value, regex: Option<&Regex>) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    if input.collection {
        let Value::Array(items) = v else {
            return Err(format!("Input '{}' is expected to be an array", input.name));
        };
        for item in items {
            check_single_value(input, item, regex)?;
        }
        return Ok(());
    }
    check_single_value(input, v, regex)
}

fn check_single_value(input: &Input, v: &Value, regex: Option<&Regex>) -> Result<(), String> {
    check_value_type(input, v)?;
    let s = go_string(v);
    let name = &input.name;
    if s.len() > 100_000 {
        return Err(format!(
            "Invalid input '{name}': value can't be longer than 100000"
        ));
    }
    if !input.legal_values.is_empty() {
        if !input.legal_values.iter().any(|l| l == v) {
            return Err(format!(
                "Invalid input '{name}': '{s}' is not a legal value ({})",
                go_string(&Value::Array(input.legal_values.clone()))
            ));
        }
    } else if let Some(re) = &input.regex {
        if let Some(r) = regex
            && !r.is_match(&s)
        {
            return Err(format!(
                "Invalid input '{name}': '{s}' doesnt comply with regex '{re}'"
            ));
        }
    } else if s.contains('"') {
        return Err(format!(
            "Invalid input '{name}': cannot contain double quotes"
        ));
    }
    Ok(())
}

// ---- json schema --------------------------------------------------------------------------------

fn check_json_schema(path: &str, step: &str, schema: &Value, problems: &mut Vec<Problem>) {
    if !matches!(schema, Value::Object(_) | Value::Bool(_)) {
        problems.push(Problem::error(
            path,
            format!("Jsonschema: step {step}: a JSON schema must be an object"),
        ));
        return;
    }
    let mut refs = Vec::new();
    collect_refs(schema, &mut refs, 0);
    for r in refs {
        if r.starts_with('#') && resolve_pointer(schema, r).is_none() {
            problems.push(Problem::error(
                path,
                format!("Jsonschema: step {step}: unresolvable $ref {r:?}"),
            ));
        }
    }
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>, depth: usize) {
    if depth > 256 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Value::String(s) = x {
                        out.push(s);
                    }
                } else {
                    collect_refs(x, out, depth + 1);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out, depth + 1)),
        _ => {}
    }
}

/// Resolve a local `$ref` (`#`, `#/definitions/a`, `#/$defs/a/properties/b`).
fn resolve_pointer<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    let pointer = r.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    let mut cur = root;
    for raw in pointer.strip_prefix('/')?.split('/') {
        let part = raw.replace("~1", "/").replace("~0", "~");
        cur = match cur {
            Value::Object(m) => m.get(&part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Outcome of looking up a key in a set of schemas.
enum Lookup<'a> {
    Found(Vec<&'a Value>),
    /// The schemas accept any key (`additionalProperties: true`, external `$ref`…).
    Open,
    Missing,
}

/// Expand a schema into the schemas that describe the same value: follow `$ref`s and the
/// `allOf`/`anyOf`/`oneOf`/`if`/`then`/`else` combinators (cycle-safe). Returns `None` when a
/// reference cannot be followed (external), meaning "unknown, accept".
fn expand<'a>(root: &'a Value, start: &'a Value, out: &mut Vec<&'a Value>) -> bool {
    let mut visited: HashSet<*const Value> = HashSet::new();
    let mut todo = vec![start];
    let mut open = false;
    while let Some(s) = todo.pop() {
        if !visited.insert(s as *const Value) || visited.len() > 10_000 {
            continue;
        }
        let Value::Object(m) = s else {
            if s == &Value::Bool(true) {
                open = true;
            }
            continue;
        };
        if let Some(Value::String(r)) = m.get("$ref") {
            match resolve_pointer(root, r) {
                Some(target) => todo.push(target),
                None => open = true,
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(items)) = m.get(key) {
                todo.extend(items.iter());
            }
        }
        for key in ["if", "then", "else"] {
            if let Some(x) = m.get(key) {
                todo.push(x);
            }
        }
        out.push(s);
    }
    open
}

/// Can `.output.<parts…>` exist according to `schema`? µTask refuses a key that no
/// `properties` declares; mutask also follows `patternProperties` and schema-valued
/// `additionalProperties`, and accepts anything under an open schema.
pub fn lint_schema_path(schema: &Value, parts: &[&str]) -> bool {
    let mut current: Vec<&Value> = Vec::new();
    if expand(schema, schema, &mut current) {
        return true;
    }
    for part in parts {
        match lookup_key(schema, &current, part) {
            Lookup::Open => return true,
            Lookup::Missing => return false,
            Lookup::Found(next) => current = next,
        }
    }
    true
}

fn lookup_key<'a>(root: &'a Value, schemas: &[&'a Value], key: &str) -> Lookup<'a> {
    let mut next: Vec<&'a Value> = Vec::new();
    let mut open = false;
    for s in schemas {
        let Value::Object(m) = s else { continue };
        let mut matched = false;
        if let Some(Value::Object(props)) = m.get("properties")
            && let Some(p) = props.get(key)
        {
            matched = true;
            open |= expand(root, p, &mut next);
        }
        if let Some(Value::Object(pp)) = m.get("patternProperties") {
            for (pattern, p) in pp {
                if compile_regex(pattern).is_ok_and(|r| r.is_match(key)) {
                    matched = true;
                    open |= expand(root, p, &mut next);
                }
            }
        }
        if !matched {
            match m.get("additionalProperties") {
                Some(Value::Bool(true)) => open = true,
                Some(p @ Value::Object(_)) => open |= expand(root, p, &mut next),
                _ => {}
            }
        }
    }
    if open {
        return Lookup::Open;
    }
    let mut seen = HashSet::new();
    next.retain(|v| seen.insert(*v as *const Value));
    if next.is_empty() {
        Lookup::Missing
    } else {
        Lookup::Found(next)
    }
}

// ---- handle scan ------------------------------------------------------------------------------

/// A root handle found in a template string: `.step.a.output.b` → root `step`, parts
/// `[a, output, b]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handle {
    pub root: String,
    pub parts: Vec<String>,
}

fn go_handle_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?:^|[^A-Za-z0-9_)\]\}])\.(step|input|resolver_input|task)((?:\.[A-Za-z0-9_]+)+)",
        )
        .unwrap_or_else(|_| unreachable!("static regex"))
    })
}

fn jinja_handle_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"(?:^|[^A-Za-z0-9_.$'"\)\]])(step|input|resolver_input|task)((?:\.[A-Za-z0-9_]+)+)"#,
        )
        .unwrap_or_else(|_| unreachable!("static regex"))
    })
}

/// The `{{ … }}` (and, for Jinja, `{% … %}`) blocks of a string.
fn template_blocks(s: &str, jinja: bool) -> Vec<&str> {
    let mut out = Vec::new();
    let opens: &[(&str, &str)] = if jinja {
        &[("{{", "}}"), ("{%", "%}")]
    } else {
        &[("{{", "}}")]
    };
    for (open, close) in opens {
        let mut rest = s;
        while let Some(start) = rest.find(open) {
            let after = &rest[start + open.len()..];
            match after.find(close) {
                Some(end) => {
                    out.push(&after[..end]);
                    rest = &after[end + close.len()..];
                }
                None => break,
            }
        }
    }
    out
}

/// Find the root handles of a template string. `dialect` `None` scans both syntaxes.
pub fn scan_handles(s: &str, dialect: Option<Dialect>) -> Vec<Handle> {
    let mut out = Vec::new();
    if !s.contains('{') {
        return out;
    }
    let go = dialect != Some(Dialect::Jinja);
    let jinja = dialect != Some(Dialect::Utask);
    for block in template_blocks(s, jinja) {
        let mut regexes: Vec<&Regex> = Vec::new();
        if go {
            regexes.push(go_handle_regex());
        }
        if jinja {
            regexes.push(jinja_handle_regex());
        }
        for re in regexes {
            for c in re.captures_iter(block) {
                let (Some(root), Some(rest)) = (c.get(1), c.get(2)) else {
                    continue;
                };
                let parts: Vec<String> = rest
                    .as_str()
                    .split('.')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect();
                if !parts.is_empty() {
                    out.push(Handle {
                        root: root.as_str().to_string(),
                        parts,
                    });
                }
            }
        }
    }
    out
}

fn collect_strings(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((path.to_string(), s.clone())),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_strings(x, &join_index(path, i), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let p = join_key(path, k);
                if is_templated(k) {
                    out.push((p.clone(), k.clone()));
                }
                collect_strings(x, &p, out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Function validation
// ---------------------------------------------------------------------------------------------

/// Validate a function definition against the other functions (`functions` may contain it).
/// Messages start with `function "<name>": `.
pub fn validate_function(f: &Function, ctx: &ValidationContext) -> Vec<Problem> {
    let mut problems = Vec::new();
    if f.name.trim().is_empty() {
        problems.push(Problem::error("name", "function name is required"));
    } else if is_builtin_action(&f.name) {
        problems.push(Problem::error(
            "name",
            format!("function name {:?} is a builtin action type", f.name),
        ));
    }
    if f.action.action_type == f.name && !f.name.is_empty() {
        problems.push(Problem::error(
            "action.type",
            format!(
                "Invalid executor action: invalid cyclic import in function for {:?}",
                f.name
            ),
        ));
    } else {
        check_executor("action", &f.action, ctx, None, &mut problems);
    }
    let chain = ctx.functions.chain(&f.action.action_type);
    let mut hooks = usize::from(f.pre_hook.is_some());
    for inner in &chain.functions {
        if inner.pre_hook.is_some() {
            hooks += 1;
        }
    }
    if hooks > 1 {
        problems.push(Problem::error(
            "pre_hook",
            "Invalid executor action: pre_hook override",
        ));
    }
    if let Some(hook) = &f.pre_hook {
        check_executor("pre_hook", hook, ctx, None, &mut problems);
        if ctx
            .functions
            .chain(&hook.action_type)
            .functions
            .iter()
            .any(|x| x.pre_hook.is_some())
        {
            problems.push(Problem::error(
                "pre_hook.type",
                "Invalid prehook on a prehook",
            ));
        }
    }
    check_custom_states("custom_states", &f.custom_states, &mut problems);
    let mut states: Vec<&str> = f.custom_states.iter().map(String::as_str).collect();
    for inner in &chain.functions {
        states.extend(inner.custom_states.iter().map(String::as_str));
    }
    for (ci, c) in f.conditions.iter().enumerate() {
        let cp = join_index("conditions", ci);
        check_condition_shape(&cp, c, &mut problems);
        for (target, state) in &c.then {
            let tp = join_key(&join_key(&cp, "then"), target);
            if target != THIS_STEP {
                problems.push(Problem::error(
                    tp,
                    format!(
                        "Step condition points to non-existing step: {target} (a function's conditions may only target '{THIS_STEP}')"
                    ),
                ));
            } else if !CONDITION_THEN_STATES.contains(&state.as_str())
                && !states.contains(&state.as_str())
            {
                problems.push(Problem::warning(
                    tp,
                    format!(
                        "Step condition implies a state that is not a custom state of this function chain: {state} (the calling step must declare it)"
                    ),
                ));
            }
        }
    }
    let name = f.name.clone();
    for p in &mut problems {
        p.message = format!("function {name:?}: {}", p.message);
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::model::Condition;
    use serde_json::json;

    fn tpl(yaml: &str) -> TaskTemplate {
        let mut t: TaskTemplate = serde_yaml::from_str(yaml).unwrap();
        t.normalize();
        t
    }

    fn errors(t: &TaskTemplate) -> Vec<String> {
        let fs = FunctionSet::new();
        validate_template(t, &ValidationContext::new(&fs))
            .into_iter()
            .filter(Problem::is_error)
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    const HEAD: &str = "name: tpl\ndescription: a test\ntitle_format: a title\n";

    #[test]
    fn utask_actions_mutask_lacks_are_refused_with_a_way_out() {
        let t = tpl(&format!(
            "{HEAD}steps:\n  a:\n    action: {{type: apiovh}}\n  b:\n    action: {{type: cache}}\n"
        ));
        let e = errors(&t).join("\n");
        assert!(
            e.contains("steps.a.action.type") && e.contains("with `http`"),
            "{e}"
        );
        assert!(
            e.contains("steps.b.action.type") && e.contains("`cache`"),
            "{e}"
        );
    }

    #[test]
    fn minimal_template_is_valid() {
        let t = tpl(&format!("{HEAD}steps:\n  a:\n    action: {{type: echo}}\n"));
        assert!(errors(&t).is_empty(), "{:?}", errors(&t));
    }

    #[test]
    fn schema_is_a_reserved_template_name() {
        let t = tpl(
            "name: Schema\ndescription: a test\ntitle_format: a title\nsteps:\n  a:\n    action: {type: echo}\n",
        );
        let e = errors(&t).join("\n");
        assert!(e.contains("name: `schema` is reserved"), "{e}");
    }

    #[test]
    fn display_format() {
        let p = Problem::error("steps.a.dependencies[0]", "boom")
            .with_template("x")
            .with_file("templates/x.yaml")
            .at(12, 5);
        assert_eq!(
            p.to_string(),
            "templates/x.yaml:12:5: error: template 'x': steps.a.dependencies[0]: boom"
        );
        assert_eq!(Problem::warning("", "hm").to_string(), "warning: hm");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let t = tpl(&format!(
            "{HEAD}auto_runnable: true\nresolver_inputs: [{{name: r}}]\ninputs:\n  - {{name: a, regex: '(', legal_values: [x]}}\n  - {{name: b, type: number, default: abc}}\n  - {{name: c, default: 'say \"hi\"'}}\n  - {{name: d, legal_values: [x, y], default: z}}\n  - {{name: e, type: weird}}\nvariables:\n  - {{name: v}}\n  - {{name: w, value: 1, expression: '1', expression_timeout: nope}}\n  - {{name: x, value: 1, expression_timeout: 1s}}\ntags: {{_utask_parent_task_id: x}}\nsteps:\n  a:\n    action: {{type: nope}}\n    retry_pattern: days\n    foreach_strategy: sequence\n    execution_delay: 30000000000\n    timeout: soon\n    custom_states: [DONE, OK, OK]\n    dependencies: ['b:DONE,DONE', 'b:ANY,DONE', 'b:NOPE', zz]\n  b:\n    action: {{type: echo, base_configuration: missing, output: {{strategy: weird}}}}\n    pre_hook: {{type: echo}}\n"
        ));
        let e = errors(&t).join("\n");
        for want in [
            "resolver_inputs: A template can't be auto runnable if it has resolver inputs",
            "inputs[0]: Invalid input 'a': both regex and legal value list configured",
            "inputs[0].regex: Invalid regex for input 'a'",
            "inputs[1].default: Invalid value 'b': expected a number",
            "inputs[2].default: Invalid input 'c': cannot contain double quotes",
            "inputs[3].default: Invalid input 'd': 'z' is not a legal value",
            "inputs[4].type: Invalid input type 'weird'",
            "variables[0]: variable \"v\" expression and value can't be empty at the same time",
            "variables[1]: variable \"w\" can't have both value and expression defined",
            "variables[1].expression_timeout: variable \"w\": invalid duration",
            "variables[2].expression_timeout: variable \"x\": expression_timeout is only allowed with an expression",
            "tags._utask_parent_task_id: Tag key",
            "steps.a.action.type: Invalid executor action: unknown action type \"nope\"",
            "steps.a.retry_pattern: Invalid retry pattern: days Expecting(seconds|minutes|hours)",
            "steps.a.foreach_strategy: step foreach_strategy can't be set without foreach",
            "steps.a.execution_delay: execution_delay: expected",
            "steps.a.timeout: timeout: invalid duration",
            "steps.a.custom_states[0]: Custom state \"DONE\" is not allowed as it's a reserved state",
            "steps.a.dependencies[0]: Invalid dependency, duplicated state detected",
            "steps.a.dependencies[1]: Invalid dependency, already defined dependency to: \"b\"",
            "steps.a.dependencies[1]: Invalid dependency, no other state allowed if ANY is declared",
            "steps.a.dependencies[2]: Invalid dependency on step b, step state not allowed: \"NOPE\"",
            "steps.a.dependencies[3]: Invalid dependency, no step with that name: \"zz\"",
            "steps.b.action.base_configuration: Invalid executor action: BaseConfiguration key not found",
            "steps.b.action.output.strategy: Invalid executor action: unknown output strategy",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn allow_all_requires_auto_runnable() {
        let t = tpl(&format!(
            "{HEAD}allow_all_resolver_usernames: true\nsteps: {{a: {{action: {{type: echo}}}}}}\n"
        ));
        assert!(errors(&t)[0].contains("have to be auto-runnable"));
    }

    #[test]
    fn conditions_are_checked() {
        let t = tpl(&format!(
            "{HEAD}steps:\n  a:\n    action: {{type: echo}}\n    custom_states: [X]\n    conditions:\n      - type: maybe\n        if: [{{value: a, operator: LIKE, expected: b}}, {{value: a, operator: regexp, expected: '('}}]\n        then: {{a: DONE, nope: DONE, b: DONE, this: WHATEVER}}\n  b:\n    action: {{type: echo}}\n  c:\n    dependencies: [a]\n    action: {{type: echo}}\n    conditions:\n      - type: check\n        then: {{a: X, this: RETRY_NOW}}\n"
        ));
        let e = errors(&t).join("\n");
        for want in [
            "steps.a.conditions[0].type: Unknown condition type: maybe",
            "steps.a.conditions[0].if[0].operator: Unknown condition operator: LIKE",
            "steps.a.conditions[0].if[1].expected: invalid regular expression",
            "steps.a.conditions[0].then.a: Step condition should not reference itself, use 'this'",
            "steps.a.conditions[0].then.nope: Step condition points to non-existing step: nope",
            "steps.a.conditions[0].then.b: Step condition cannot impact the state of step b",
            "steps.a.conditions[0].then.this: Step condition implies invalid state for step a: WHATEVER",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        assert!(!e.contains("steps.c"), "{e}");
    }

    #[test]
    fn references_are_linted() {
        let t = tpl(&format!(
            "{HEAD}inputs: [{{name: a}}]\nresolver_inputs: [{{name: r}}]\nsteps:\n  s:\n    json_schema: {{type: object, properties: {{x: {{type: object, properties: {{y: {{type: string}}}}}}}}}}\n    action: {{type: echo}}\n  t:\n    action:\n      type: echo\n      configuration:\n        ok: '{{{{.input.a}}}} {{{{ .resolver_input.r }}}} {{{{.task.task_id}}}} {{{{.step.s.output.x.y}}}} {{{{.step.this.output.z}}}}'\n        j: '{{{{ input.a ~ step.s.output.x.y }}}} {{% if task.region %}}{{% endif %}}'\n        bad: '{{{{.input.b}}}} {{{{.resolver_input.q}}}} {{{{.task.nope}}}} {{{{.step.zz.output}}}} {{{{.step.s.output.x.nope}}}}'\n        badj: '{{{{ input.c }}}} {{% if step.s.output.w %}}{{% endif %}}'\n        notahandle: '{{{{ (eval `x`).input.zz }}}} {{{{ foo.input.zz }}}} {{{{ \"input.zz\" }}}} plain .input.zz'\n"
        ));
        let e = errors(&t).join("\n");
        for want in [
            "bad: Wrong input key: b",
            "bad: Wrong input key: q (not a resolver input)",
            "bad: Wrong task key: nope",
            "bad: step: Wrong step key: zz",
            "bad: Linting error: step s: Variable x.nope does not exist",
            "badj: Wrong input key: c",
            "badj: Linting error: step s: Variable w does not exist",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        assert!(
            !e.contains(".ok:") && !e.contains(".j:") && !e.contains("notahandle"),
            "{e}"
        );
    }

    #[test]
    fn schema_lint_follows_refs_without_looping() {
        let schema = json!({
            "definitions": {
                "foo": {"type": "object", "properties": {"bar": {"anyOf": [
                    {"$ref": "#/definitions/foo"},
                    {"$ref": "#/definitions/foo/definitions/baz"}
                ]}}, "definitions": {"baz": {"type": "string"}}},
                "loop": {"$ref": "#/definitions/loop"}
            },
            "$defs": {"d": {"properties": {"e": {}}}},
            "properties": {
                "foo": {"$ref": "#/definitions/foo"},
                "l": {"$ref": "#/definitions/loop"},
                "d": {"$ref": "#/$defs/d"},
                "open": {"type": "object", "additionalProperties": true},
                "pat": {"patternProperties": {"^x": {"properties": {"y": {}}}}}
            }
        });
        assert!(lint_schema_path(&schema, &["foo", "bar", "bar", "bar"]));
        assert!(!lint_schema_path(&schema, &["foo", "baz"]));
        assert!(!lint_schema_path(&schema, &["bar"]));
        assert!(!lint_schema_path(&schema, &["l", "x"]));
        assert!(lint_schema_path(&schema, &["d", "e"]));
        assert!(lint_schema_path(&schema, &["open", "anything", "deeper"]));
        assert!(lint_schema_path(&schema, &["pat", "xa", "y"]));
        assert!(!lint_schema_path(&schema, &["pat", "a"]));
        assert!(lint_schema_path(
            &json!({"$ref": "http://example.com/s.json"}),
            &["a"]
        ));
    }

    #[test]
    fn unresolvable_schema_ref() {
        let t = tpl(&format!(
            "{HEAD}steps:\n  a:\n    action: {{type: echo}}\n    json_schema: {{properties: {{x: {{$ref: '#/definitions/nope'}}}}}}\n"
        ));
        assert!(errors(&t)[0].contains("unresolvable $ref \"#/definitions/nope\""));
    }

    #[test]
    fn subtask_templates_must_exist() {
        let t = tpl(&format!(
            "{HEAD}steps:\n  a:\n    action: {{type: subtask, configuration: {{template: Other}}}}\n  b:\n    action: {{type: batch, configuration: {{template_name: '{{{{.task.region}}}}'}}}}\n  c:\n    action: {{type: subtask, configuration: {{template: missing}}}}\n  d:\n    action: {{type: batch, configuration: {{}}}}\n"
        ));
        let fs = FunctionSet::new();
        let known: HashSet<String> = ["other".to_string()].into();
        let ctx = ValidationContext {
            functions: &fs,
            known_templates: Some(&known),
            plugin_types: None,
        };
        let e: Vec<String> = validate_template(&t, &ctx)
            .into_iter()
            .filter(Problem::is_error)
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        assert_eq!(
            e,
            vec![
                "steps.c.action.configuration.template: Invalid executor action: template \"missing\" not found",
                "steps.d.action.configuration.template_name: Invalid executor action: missing template_name",
            ]
        );
    }

    fn func(yaml: &str) -> Function {
        let mut f: Function = serde_yaml::from_str(yaml).unwrap();
        f.normalize();
        f
    }

    #[test]
    fn function_chains() {
        let mut fs = FunctionSet::new();
        for f in [
            "name: hello\naction: {type: echo, configuration: {output: '{{ .function_args.name }}'}}\ncustom_states: [HELLO]",
            "name: outer\naction: {type: hello, configuration: {other: x}}\npre_hook: {type: echo}",
            "name: hook\naction: {type: echo}\npre_hook: {type: echo}",
            "name: loop1\naction: {type: loop2}",
            "name: loop2\naction: {type: loop1}",
            "name: bad\naction: {type: nothing}\ncustom_states: [PRUNE]\nconditions: [{type: check, then: {other: DONE}}]",
        ] {
            fs.insert(func(f), None).unwrap();
        }
        let ctx = ValidationContext::new(&fs);
        let msgs = |name: &str| -> String {
            validate_function(fs.get(name).unwrap(), &ctx)
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(msgs("hello"), "");
        assert!(msgs("outer").contains("missing function_args \"name\""));
        assert!(msgs("loop1").contains("invalid cyclic import"));
        let bad = msgs("bad");
        assert!(bad.contains("unknown action type \"nothing\""), "{bad}");
        assert!(bad.contains("reserved state"), "{bad}");
        assert!(bad.contains("may only target 'this'"), "{bad}");

        let t = tpl(&format!(
            "{HEAD}steps:\n  a:\n    action: {{type: hello, configuration: {{name: x}}}}\n    conditions: [{{type: check, then: {{this: HELLO}}}}]\n  b:\n    action: {{type: hello}}\n  c:\n    action: {{type: outer, configuration: {{name: x}}}}\n    pre_hook: {{type: echo}}\n  d:\n    action: {{type: echo}}\n    pre_hook: {{type: hook}}\n  e:\n    action: {{type: loop1}}\n  f:\n    dependencies: ['a:HELLO']\n    action: {{type: echo}}\n"
        ));
        let e = validate_template(&t, &ctx)
            .into_iter()
            .filter(Problem::is_error)
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!e.contains("steps.a") && !e.contains("steps.f"), "{e}");
        assert!(e.contains("steps.b.action.configuration: Invalid executor action: missing function_args \"name\""), "{e}");
        assert!(e.contains("steps.c.action.configuration: Invalid executor action: function \"outer\": missing function_args \"name\""), "{e}");
        assert!(e.contains("steps.c.action.type: Invalid executor action: function \"outer\": pre_hook override"), "{e}");
        assert!(
            e.contains("steps.d.pre_hook.type: Invalid prehook on a prehook"),
            "{e}"
        );
        assert!(
            e.contains("steps.e.action.type: Invalid executor action: invalid cyclic import"),
            "{e}"
        );
    }

    #[test]
    fn condition_foreach_rules() {
        let t = tpl(&format!(
            "{HEAD}steps:\n  a:\n    foreach: '[1]'\n    action: {{type: echo}}\n    conditions:\n      - {{type: skip, foreach: invalid, then: {{this: DONE}}}}\n      - {{type: check, foreach: children, then: {{this: DONE}}}}\n      - {{type: skip, foreach: parent, then: {{a: PRUNE}}}}\n  b:\n    action: {{type: echo}}\n    conditions:\n      - {{type: skip, foreach: children, then: {{this: DONE}}}}\n"
        ));
        let e = errors(&t);
        assert_eq!(
            e,
            vec![
                "steps.a.conditions[0].foreach: Unknown condition foreach: invalid",
                "steps.a.conditions[1].foreach: Step condition can set foreach on a skip condition",
                "steps.b.conditions[0].foreach: Step condition cannot set foreach on a non-foreach step",
            ]
        );
    }

    #[test]
    fn operator_case_is_accepted() {
        let c: Condition =
            serde_yaml::from_str("type: check\nif: [{value: 1, operator: le, expected: 2}]")
                .unwrap();
        let mut p = Vec::new();
        check_condition_shape("c", &c, &mut p);
        assert!(p.is_empty());
    }

    /// A tiny deterministic generator (no extra crate).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n.max(1)
        }
    }

    fn dag_template(n: usize, rng: &mut Lcg, cycle: Option<(usize, usize)>) -> TaskTemplate {
        let mut t = tpl(&format!("{HEAD}steps: {{}}\n"));
        for i in 0..n {
            let mut deps: Vec<String> = Vec::new();
            for j in 0..i {
                if rng.next(4) == 0 {
                    deps.push(format!("s{j}"));
                }
            }
            if let Some((lo, hi)) = cycle {
                if i == hi && !deps.contains(&format!("s{lo}")) {
                    deps.push(format!("s{lo}"));
                }
                if i == lo {
                    deps.push(format!("s{hi}"));
                }
            }
            let step = Step {
                action: Executor {
                    action_type: "echo".into(),
                    ..Executor::default()
                },
                dependencies: deps,
                ..Step::default()
            };
            t.steps.insert(format!("s{i}"), step);
        }
        t
    }

    #[test]
    fn property_cycles_are_always_found_and_dags_never_flagged() {
        let mut rng = Lcg(42);
        for round in 0..300 {
            let n = 1 + rng.next(25);
            let dag = dag_template(n, &mut rng, None);
            let e = errors(&dag);
            assert!(
                e.iter().all(|m| !m.contains("circular")),
                "round {round}: {e:?}"
            );
            let lo = rng.next(n);
            let hi = lo + rng.next(n - lo);
            let cyclic = dag_template(n, &mut rng, Some((lo, hi)));
            let e = errors(&cyclic);
            let cyc: Vec<&String> = e
                .iter()
                .filter(|m| m.contains("circular dependency"))
                .collect();
            assert!(
                !cyc.is_empty(),
                "round {round}: no cycle reported for s{lo}<->s{hi}"
            );
            assert!(
                cyc.iter().any(|m| m.contains(&format!("s{lo}"))),
                "round {round}: {cyc:?}"
            );
        }
    }

    #[test]
    fn large_templates_stay_cheap() {
        // A chain of MAX_STEPS steps, each with a condition on the first one.
        let mut t = tpl(&format!("{HEAD}steps: {{}}\n"));
        for i in 0..MAX_STEPS {
            let c = Condition {
                condition_type: ConditionType::Check,
                then: [("s0".to_string(), "PRUNE".to_string())]
                    .into_iter()
                    .collect(),
                ..Condition::default()
            };
            let step = Step {
                action: Executor {
                    action_type: "echo".into(),
                    ..Executor::default()
                },
                dependencies: if i == 0 {
                    vec![]
                } else {
                    vec![format!("s{}", i - 1)]
                },
                conditions: if i == 0 { vec![] } else { vec![c] },
                ..Step::default()
            };
            t.steps.insert(format!("s{i}"), step);
        }
        assert!(errors(&t).is_empty());
        t.steps.insert("extra".into(), Step::default());
        assert!(errors(&t).iter().any(|e| e.contains("too many steps")));
    }

    #[test]
    fn cycle_message_matches_utask() {
        let t = tpl(&format!(
            "{HEAD}steps:\n  stepOne: {{dependencies: [stepThree], action: {{type: echo}}}}\n  stepTwo: {{dependencies: [stepOne], action: {{type: echo}}}}\n  stepThree: {{dependencies: [stepTwo], action: {{type: echo}}}}\n  after: {{dependencies: [stepTwo], action: {{type: echo}}}}\n"
        ));
        assert_eq!(
            errors(&t),
            vec![
                "steps.stepOne.dependencies[0]: Invalid: circular dependency [stepOne stepThree stepTwo] <-> stepOne"
            ]
        );
    }

    #[test]
    fn scan_handles_dialects() {
        let h = scan_handles("{{ .step.a.output.b }} {{ input.x }}", None);
        assert_eq!(h.len(), 2);
        assert_eq!(scan_handles("{{ input.x }}", Some(Dialect::Utask)).len(), 0);
        assert_eq!(
            scan_handles("{{ .input.x }}", Some(Dialect::Jinja)).len(),
            0
        );
        assert_eq!(
            scan_handles("{{ $.input.x }}", Some(Dialect::Utask))[0].parts,
            vec!["x"]
        );
        assert!(scan_handles("{{ index .step \"this\" \"output\" }}", None).is_empty());
    }
}
