//! Loading templates and functions from YAML files and directories.
//!
//! A document goes through: size check (1 MiB) → TAB indentation fix (µTask's harness turns each
//! TAB into two spaces; we do it for leading indentation and warn) → YAML parse (syntax errors and
//! duplicate keys, located) → key scan (unknown keys are warnings, runtime-only step fields are
//! errors) → typed parse (type errors, located; more than the first one when possible) →
//! normalization → [`validate_template`] / [`validate_function`]. Every problem gets the file
//! label, and a line/column from the serde error or from the [`PositionIndex`] of its path.
//!
//! Directories are read recursively (`*.yaml`/`*.yml`, sorted, dotfiles skipped, symlinked
//! directories not followed). One bad template is reported and skipped, the others load.
//! Templates referencing templates (subtask/batch) are validated after all are parsed, so file
//! order does not matter. A missing directory gives an empty result with a warning. Nothing here
//! panics on any input.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml::Value as Yaml;

use crate::yaml::{MAX_FLOW_DEPTH, YamlError, max_flow_depth};

use super::model::{Function, FunctionSet, RUNTIME_ONLY_STEP_FIELDS, TaskTemplate, normalize_name};
use super::position::{PositionIndex, join_index, join_key};
use super::validate::{Problem, ValidationContext, validate_function, validate_template};

/// Largest accepted template or function file.
pub const MAX_FILE_SIZE: usize = 1 << 20;

/// Deepest directory recursion.
const MAX_DIR_DEPTH: usize = 32;

/// Most key-scan warnings kept for one document.
const MAX_KEY_PROBLEMS: usize = 100;

/// A template that loaded without errors.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedTemplate {
    /// Normalized name.
    pub name: String,
    /// File label (path as given).
    pub file: String,
    /// Source text as parsed (after the TAB fix).
    pub source: String,
    /// Normalized template.
    pub template: TaskTemplate,
    /// Warnings, located.
    pub warnings: Vec<super::validate::Problem>,
}

/// A function that parsed (see [`FunctionSet::is_invalid`] for its validation outcome).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedFunction {
    pub name: String,
    pub file: String,
    pub source: String,
    pub function: Function,
    pub warnings: Vec<Problem>,
}

/// Result of loading a directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Templates without errors, in file order.
    pub templates: Vec<LoadedTemplate>,
    /// Functions (filled by [`load_all`]; empty from [`load_templates_dir`]).
    pub functions: Vec<LoadedFunction>,
    /// Errors AND warnings, each with file:line:column when known.
    pub problems: Vec<Problem>,
}

impl LoadReport {
    /// Error problems.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }

    /// Warning problems.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_error())
    }

    /// True when at least one error was found.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// The loaded template with that (normalized) name.
    pub fn template(&self, name: &str) -> Option<&LoadedTemplate> {
        self.templates.iter().find(|t| t.name == name)
    }
}

// ---------------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------------

/// What kind of document is read (decides the key tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocKind {
    Template,
    Function,
}

/// A document parsed into `T`, not validated yet.
struct Parsed<T> {
    file: String,
    source: String,
    index: PositionIndex,
    value: T,
    /// Problems found so far (warnings only, since parsing succeeded), located.
    problems: Vec<Problem>,
}

fn locate(mut p: Problem, file: &str, index: &PositionIndex) -> Problem {
    p.file = Some(file.to_string());
    if p.line.is_none()
        && let Some((l, c)) = index.lookup(&p.path)
    {
        p.line = Some(l);
        p.column = Some(c);
    }
    p
}

/// Replace TABs in leading indentation by two spaces; returns the fixed text and the 1-based
/// lines that had some.
fn fix_tabs(src: &str) -> (String, Vec<u32>) {
    if !src.contains('\t') {
        return (src.to_string(), Vec::new());
    }
    let mut out = String::with_capacity(src.len() + 64);
    let mut lines = Vec::new();
    for (i, line) in src.split_inclusive('\n').enumerate() {
        let indent_len = line
            .find(|c: char| c != ' ' && c != '\t')
            .unwrap_or(line.len());
        let (indent, rest) = line.split_at(indent_len);
        if indent.contains('\t') {
            lines.push(u32::try_from(i + 1).unwrap_or(u32::MAX));
            out.push_str(&indent.replace('\t', "  "));
        } else {
            out.push_str(indent);
        }
        out.push_str(rest);
    }
    (out, lines)
}

/// Strip serde_yaml's ` at line N column M` suffix and `path: ` prefix from an error message;
/// returns (path, message).
fn split_serde_message(e: &serde_yaml::Error) -> (String, String) {
    let mut msg = e.to_string();
    if let Some(loc) = e.location() {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(stripped) = msg.strip_suffix(&suffix) {
            msg = stripped.to_string();
        }
    }
    if let Some((head, rest)) = msg.split_once(": ") {
        let looks_like_path = !head.is_empty()
            && !head.contains(' ')
            && !rest.is_empty()
            && head
                .chars()
                .all(|c| !c.is_control() && c != '"' && c != '`');
        if looks_like_path {
            return (head.to_string(), rest.to_string());
        }
    }
    (String::new(), msg)
}

fn serde_problem(e: &serde_yaml::Error, file: &str, index: &PositionIndex, base: &str) -> Problem {
    let (rel, msg) = split_serde_message(e);
    let path = match (base.is_empty(), rel.is_empty()) {
        (true, _) => rel,
        (false, true) => base.to_string(),
        (false, false) => {
            if rel.starts_with('[') {
                format!("{base}{rel}")
            } else {
                join_key(base, &rel)
            }
        }
    };
    let mut p = Problem::error(path, msg);
    if base.is_empty()
        && let Some(loc) = e.location()
    {
        p = p.at(
            u32::try_from(loc.line()).unwrap_or(u32::MAX),
            u32::try_from(loc.column()).unwrap_or(u32::MAX),
        );
    }
    locate(p, file, index)
}

/// The first segment after `steps.` of a path (`steps.a.b` → `a`).
fn step_of_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("steps.")?;
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// After a typed-parse failure, look for type errors in the other sections (each step on its
/// own, and the template head) so that several can be reported at once.
fn more_type_errors(
    value: &Yaml,
    primary_path: &str,
    file: &str,
    index: &PositionIndex,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let Yaml::Mapping(root) = value else {
        return out;
    };
    let primary_step = step_of_path(primary_path);
    if let Some(Yaml::Mapping(steps)) = root.get("steps") {
        for (k, v) in steps {
            let Some(name) = k.as_str() else { continue };
            if Some(name) == primary_step {
                continue;
            }
            let Ok(text) = serde_yaml::to_string(v) else {
                continue;
            };
            if let Err(e) = serde_yaml::from_str::<super::model::Step>(&text) {
                out.push(serde_problem(&e, file, index, &join_key("steps", name)));
            }
        }
    }
    if primary_step.is_some() {
        let mut head = root.clone();
        head.remove("steps");
        if let Ok(text) = serde_yaml::to_string(&Yaml::Mapping(head))
            && let Err(e) = serde_yaml::from_str::<TaskTemplate>(&text)
        {
            let mut p = serde_problem(&e, file, index, "");
            // Lines of the re-serialized head are meaningless: relocate by path.
            p.line = None;
            p.column = None;
            out.push(locate(p, file, index));
        }
    }
    out
}

fn parse_document<T: DeserializeOwned>(
    file: &str,
    raw: &str,
    kind: DocKind,
) -> Result<Parsed<T>, Vec<Problem>> {
    if raw.len() > MAX_FILE_SIZE {
        return Err(vec![
            Problem::error(
                "",
                format!(
                    "file too large: {} bytes (at most {MAX_FILE_SIZE})",
                    raw.len()
                ),
            )
            .with_file(file),
        ]);
    }
    let mut problems = Vec::new();
    let (source, tab_lines) = fix_tabs(raw);
    if let Some(&first) = tab_lines.first() {
        let more = match tab_lines.len() {
            1 => String::new(),
            n => format!(" (and {} more lines)", n - 1),
        };
        problems.push(
            Problem::warning(
                "",
                format!(
                    "TAB characters in indentation were replaced by two spaces (µTask compatibility): line {first}{more}"
                ),
            )
            .with_file(file)
            .at(first, 1),
        );
    }
    if max_flow_depth(&source) > MAX_FLOW_DEPTH {
        problems.push(Problem::error("", YamlError::TooDeep.to_string()).with_file(file));
        return Err(problems);
    }

    let value: Yaml = match serde_yaml::from_str(&source) {
        Ok(v) => v,
        Err(e) => {
            let mut p = Problem::error(
                "",
                format!("YAML syntax error: {}", split_serde_message(&e).1),
            )
            .with_file(file);
            if let Some(loc) = e.location() {
                p = p.at(
                    u32::try_from(loc.line()).unwrap_or(u32::MAX),
                    u32::try_from(loc.column()).unwrap_or(u32::MAX),
                );
            }
            problems.push(p);
            return Err(problems);
        }
    };
    let index = PositionIndex::build(&source);
    let what = match kind {
        DocKind::Template => "template",
        DocKind::Function => "function",
    };
    match &value {
        Yaml::Mapping(_) => {}
        Yaml::Null => {
            problems.push(Problem::error("", format!("empty {what} file")).with_file(file));
            return Err(problems);
        }
        _ => {
            problems.push(locate(
                Problem::error("", format!("a {what} must be a YAML mapping")),
                file,
                &index,
            ));
            return Err(problems);
        }
    }
    let name = value
        .get("name")
        .and_then(Yaml::as_str)
        .map(|n| match kind {
            DocKind::Template => normalize_name(n),
            DocKind::Function => n.trim().to_string(),
        });

    let mut key_problems = Vec::new();
    match kind {
        DocKind::Template => scan_template_keys(&value, &mut key_problems),
        DocKind::Function => scan_function_keys(&value, &mut key_problems),
    }
    let dropped = key_problems.len().saturating_sub(MAX_KEY_PROBLEMS);
    key_problems.truncate(MAX_KEY_PROBLEMS);
    if dropped > 0 {
        key_problems.push(Problem::warning(
            "",
            format!("{dropped} more unknown keys are not reported"),
        ));
    }
    for p in key_problems {
        let p = if kind == DocKind::Function {
            let n = name.clone().unwrap_or_default();
            Problem {
                message: format!("function {n:?}: {}", p.message),
                ..p
            }
        } else {
            p
        };
        problems.push(locate(p, file, &index));
    }

    let typed: Result<T, _> = serde_yaml::from_str(&source);
    let parsed = match typed {
        Ok(v) => v,
        Err(e) => {
            let primary = serde_problem(&e, file, &index, "");
            let primary_path = primary.path.clone();
            problems.push(primary);
            if kind == DocKind::Template {
                problems.extend(more_type_errors(&value, &primary_path, file, &index));
            }
            return Err(with_name(problems, kind, name.as_deref()));
        }
    };
    if problems.iter().any(Problem::is_error) {
        return Err(with_name(problems, kind, name.as_deref()));
    }
    Ok(Parsed {
        file: file.to_string(),
        source,
        index,
        value: parsed,
        problems: with_name(problems, kind, name.as_deref()),
    })
}

fn with_name(problems: Vec<Problem>, kind: DocKind, name: Option<&str>) -> Vec<Problem> {
    match (kind, name) {
        (DocKind::Template, Some(n)) => problems
            .into_iter()
            .map(|p| {
                if p.template.is_none() {
                    p.with_template(n)
                } else {
                    p
                }
            })
            .collect(),
        _ => problems,
    }
}

// ---------------------------------------------------------------------------------------------
// Key scan
// ---------------------------------------------------------------------------------------------

const TEMPLATE_KEYS: &[&str] = &[
    "name",
    "description",
    "long_description",
    "doc_link",
    "title_format",
    "result_format",
    "allowed_resolver_usernames",
    "allowed_resolver_groups",
    "allow_all_resolver_usernames",
    "auto_runnable",
    "blocked",
    "hidden",
    "retry_max",
    "allow_task_start_over",
    "inputs",
    "resolver_inputs",
    "variables",
    "tags",
    "steps",
    "base_configurations",
    "dialect",
    "expected_duration",
    "notify",
];
const INPUT_KEYS: &[&str] = &[
    "name",
    "description",
    "type",
    "regex",
    "legal_values",
    "collection",
    "optional",
    "default",
    "hidden",
];
const VARIABLE_KEYS: &[&str] = &["name", "value", "expression", "expression_timeout"];
const STEP_KEYS: &[&str] = &[
    "name",
    "description",
    "action",
    "pre_hook",
    "dependencies",
    "conditions",
    "custom_states",
    "foreach",
    "foreach_strategy",
    "retry_pattern",
    "max_retries",
    "idempotent",
    "json_schema",
    "resources",
    "execution_delay",
    "timeout",
];
const EXECUTOR_KEYS: &[&str] = &[
    "type",
    "configuration",
    "base_configuration",
    "output",
    "base_output",
];
const OUTPUT_KEYS: &[&str] = &["strategy", "format"];
const CONDITION_KEYS: &[&str] = &["type", "if", "then", "final", "foreach", "message"];
const ASSERT_KEYS: &[&str] = &["value", "operator", "expected", "list_separator", "message"];
const FUNCTION_KEYS: &[&str] = &[
    "name",
    "description",
    "action",
    "pre_hook",
    "conditions",
    "custom_states",
];

/// Warn about every key of `map` not in `known`; returns the (string) entries for recursion.
fn check_keys<'a>(
    map: &'a Yaml,
    path: &str,
    known: &[&str],
    problems: &mut Vec<Problem>,
) -> Vec<(&'a str, &'a Yaml)> {
    let mut out = Vec::new();
    let Yaml::Mapping(m) = map else {
        return out;
    };
    for (k, v) in m {
        let Some(key) = k.as_str() else {
            problems.push(Problem::warning(path, "a non-string key is ignored"));
            continue;
        };
        if known.contains(&key) {
            out.push((key, v));
        } else {
            problems.push(Problem::warning(
                join_key(path, key),
                format!("unknown key {key:?} is ignored"),
            ));
        }
    }
    out
}

fn seq_items(v: &Yaml) -> impl Iterator<Item = (usize, &Yaml)> {
    v.as_sequence().into_iter().flatten().enumerate()
}

fn scan_template_keys(doc: &Yaml, problems: &mut Vec<Problem>) {
    for (key, v) in check_keys(doc, "", TEMPLATE_KEYS, problems) {
        match key {
            "inputs" | "resolver_inputs" => {
                for (i, item) in seq_items(v) {
                    check_keys(item, &join_index(key, i), INPUT_KEYS, problems);
                }
            }
            "variables" => {
                for (i, item) in seq_items(v) {
                    check_keys(item, &join_index(key, i), VARIABLE_KEYS, problems);
                }
            }
            "steps" => {
                if let Yaml::Mapping(steps) = v {
                    for (name, step) in steps {
                        if let Some(name) = name.as_str() {
                            scan_step_keys(step, &join_key("steps", name), problems);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn scan_step_keys(step: &Yaml, path: &str, problems: &mut Vec<Problem>) {
    let Yaml::Mapping(m) = step else { return };
    for (k, v) in m {
        let Some(key) = k.as_str() else {
            problems.push(Problem::warning(path, "a non-string key is ignored"));
            continue;
        };
        let kp = join_key(path, key);
        if RUNTIME_ONLY_STEP_FIELDS.contains(&key) {
            problems.push(Problem::error(
                kp,
                format!(
                    "field {key:?} is set by the engine at run time and may not appear in a template step"
                ),
            ));
            continue;
        }
        if !STEP_KEYS.contains(&key) {
            problems.push(Problem::warning(
                kp,
                format!("unknown key {key:?} is ignored"),
            ));
            continue;
        }
        match key {
            "action" | "pre_hook" => scan_executor_keys(v, &kp, problems),
            "conditions" => scan_conditions_keys(v, &kp, problems),
            _ => {}
        }
    }
}

fn scan_executor_keys(ex: &Yaml, path: &str, problems: &mut Vec<Problem>) {
    let entries = check_keys(ex, path, EXECUTOR_KEYS, problems);
    let has = |k: &str| entries.iter().any(|(key, v)| *key == k && !v.is_null());
    if has("base_output") && has("output") {
        problems.push(Problem::warning(
            join_key(path, "base_output"),
            "base_output overrides output (base_output is deprecated: use output with strategy merge)",
        ));
    }
    for (key, v) in entries {
        if key == "output" {
            check_keys(v, &join_key(path, key), OUTPUT_KEYS, problems);
        }
    }
}

fn scan_conditions_keys(conds: &Yaml, path: &str, problems: &mut Vec<Problem>) {
    for (i, c) in seq_items(conds) {
        let cp = join_index(path, i);
        for (key, v) in check_keys(c, &cp, CONDITION_KEYS, problems) {
            if key == "if" {
                for (j, a) in seq_items(v) {
                    check_keys(
                        a,
                        &join_index(&join_key(&cp, "if"), j),
                        ASSERT_KEYS,
                        problems,
                    );
                }
            }
        }
    }
}

fn scan_function_keys(doc: &Yaml, problems: &mut Vec<Problem>) {
    for (key, v) in check_keys(doc, "", FUNCTION_KEYS, problems) {
        match key {
            "action" | "pre_hook" => scan_executor_keys(v, key, problems),
            "conditions" => scan_conditions_keys(v, key, problems),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------

fn parse_template_stage(file: &str, source: &str) -> Result<Parsed<TaskTemplate>, Vec<Problem>> {
    let mut parsed = parse_document::<TaskTemplate>(file, source, DocKind::Template)?;
    parsed.value.normalize();
    Ok(parsed)
}

fn validate_stage(
    parsed: Parsed<TaskTemplate>,
    ctx: &ValidationContext,
) -> Result<LoadedTemplate, Vec<Problem>> {
    let mut problems = parsed.problems;
    for p in validate_template(&parsed.value, ctx) {
        problems.push(locate(p, &parsed.file, &parsed.index));
    }
    sort_problems(&mut problems);
    if problems.iter().any(Problem::is_error) {
        return Err(problems);
    }
    Ok(LoadedTemplate {
        name: parsed.value.name.clone(),
        file: parsed.file,
        source: parsed.source,
        template: parsed.value,
        warnings: problems,
    })
}

/// Stable order: by line (unlocated first), then column; the original order otherwise.
fn sort_problems(problems: &mut [Problem]) {
    problems.sort_by_key(|p| (p.line.unwrap_or(0), p.column.unwrap_or(0)));
}

/// Parse, normalize and validate one template source. `Err` holds every problem (errors and
/// warnings); `Ok` keeps the warnings. Subtask/batch references are checked only when
/// `ctx.known_templates` is set.
pub fn parse_template(
    file_label: &str,
    source: &str,
    ctx: &ValidationContext,
) -> Result<LoadedTemplate, Vec<Problem>> {
    let parsed = parse_template_stage(file_label, source)?;
    validate_stage(parsed, ctx)
}

/// Every `*.yaml`/`*.yml` file under `dir`, recursively, sorted; dotfiles and dot-directories
/// skipped; symlinked directories not followed.
fn yaml_files(dir: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, 0, &mut out, problems);
    out.sort();
    out
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>, problems: &mut Vec<Problem>) {
    if depth > MAX_DIR_DEPTH {
        problems.push(Problem::warning(
            "",
            format!("{}: directory nesting too deep, not read", dir.display()),
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem::error("", format!("{}: {e}", dir.display())));
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        if ft.is_dir() {
            walk(&path, depth + 1, out, problems);
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
}

/// Read a file as text, refusing files larger than [`MAX_FILE_SIZE`].
fn read_source(path: &Path, label: &str) -> Result<String, Problem> {
    let meta =
        std::fs::metadata(path).map_err(|e| Problem::error("", e.to_string()).with_file(label))?;
    if meta.len() > MAX_FILE_SIZE as u64 {
        return Err(Problem::error(
            "",
            format!(
                "file too large: {} bytes (at most {MAX_FILE_SIZE})",
                meta.len()
            ),
        )
        .with_file(label));
    }
    let bytes =
        std::fs::read(path).map_err(|e| Problem::error("", e.to_string()).with_file(label))?;
    String::from_utf8(bytes)
        .map_err(|_| Problem::error("", "file is not valid UTF-8").with_file(label))
}

fn missing_dir_report(dir: &Path, what: &str) -> Option<Problem> {
    if dir.is_dir() {
        None
    } else {
        Some(
            Problem::warning(
                "",
                format!("{what} directory does not exist, nothing loaded"),
            )
            .with_file(dir.display().to_string()),
        )
    }
}

/// Load every template under `dir`. Bad templates are reported and skipped; the others load.
/// Duplicate names across files: the second one is an error. Subtask/batch references must name
/// a template of the directory. `report.functions` stays empty (see [`load_all`]).
pub fn load_templates_dir(dir: &Path, functions: &FunctionSet) -> LoadReport {
    load_templates_dir_with_plugins(dir, functions, None)
}

/// [`load_templates_dir`] knowing the plugin action types (`MUTASK_PLUGINS_DIR`).
pub fn load_templates_dir_with_plugins(
    dir: &Path,
    functions: &FunctionSet,
    plugin_types: Option<&crate::template::validate::PluginTypes>,
) -> LoadReport {
    let mut report = LoadReport::default();
    if let Some(p) = missing_dir_report(dir, "templates") {
        report.problems.push(p);
        return report;
    }
    let files = yaml_files(dir, &mut report.problems);
    load_files(&files, functions, true, plugin_types, report)
}

/// Load the given template files (same rules as [`load_templates_dir`]), e.g. for
/// `mutask template validate a.yaml b.yaml`. Subtask/batch references are not checked (the
/// referenced templates may live elsewhere).
pub fn load_template_files(paths: &[PathBuf], functions: &FunctionSet) -> LoadReport {
    load_files(paths, functions, false, None, LoadReport::default())
}

/// [`load_template_files`] knowing the plugin action types.
pub fn load_template_files_with_plugins(
    paths: &[PathBuf],
    functions: &FunctionSet,
    plugin_types: Option<&crate::template::validate::PluginTypes>,
) -> LoadReport {
    load_files(paths, functions, false, plugin_types, LoadReport::default())
}

fn load_files(
    files: &[PathBuf],
    functions: &FunctionSet,
    check_references: bool,
    plugin_types: Option<&crate::template::validate::PluginTypes>,
    mut report: LoadReport,
) -> LoadReport {
    // Stage 1: parse everything, so that cross-template references do not depend on order.
    let mut parsed: Vec<Parsed<TaskTemplate>> = Vec::new();
    let mut first_file: HashMap<String, String> = HashMap::new();
    for path in files {
        let label = path.display().to_string();
        let source = match read_source(path, &label) {
            Ok(s) => s,
            Err(p) => {
                report.problems.push(p);
                continue;
            }
        };
        match parse_template_stage(&label, &source) {
            Ok(p) => {
                let name = p.value.name.clone();
                if let Some(first) = first_file.get(&name) {
                    let dup = Problem::error(
                        "name",
                        format!("template name {name:?} is already used by {first}"),
                    )
                    .with_template(name.clone());
                    report.problems.extend(p.problems.iter().cloned());
                    report.problems.push(locate(dup, &p.file, &p.index));
                } else {
                    first_file.insert(name, label);
                    parsed.push(p);
                }
            }
            Err(problems) => report.problems.extend(problems),
        }
    }

    // Stage 2: validate with the full set of names.
    let known: HashSet<String> = parsed.iter().map(|p| p.value.name.clone()).collect();
    let ctx = ValidationContext {
        functions,
        known_templates: check_references.then_some(&known),
        plugin_types,
    };
    for p in parsed {
        match validate_stage(p, &ctx) {
            Ok(t) => {
                report.problems.extend(t.warnings.iter().cloned());
                report.templates.push(t);
            }
            Err(problems) => report.problems.extend(problems),
        }
    }
    // Group by file (sorted), then by position; stable otherwise.
    report.problems.sort_by(|a, b| {
        (&a.file, a.line.unwrap_or(0), a.column.unwrap_or(0)).cmp(&(
            &b.file,
            b.line.unwrap_or(0),
            b.column.unwrap_or(0),
        ))
    });
    report
}

// ---------------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------------

/// Parse and normalize one function source (no validation: that needs every function, see
/// [`load_functions_dir`]).
pub fn parse_function(file_label: &str, source: &str) -> Result<LoadedFunction, Vec<Problem>> {
    let mut parsed = parse_document::<Function>(file_label, source, DocKind::Function)?;
    parsed.value.normalize();
    Ok(LoadedFunction {
        name: parsed.value.name.clone(),
        file: parsed.file,
        source: parsed.source,
        function: parsed.value,
        warnings: parsed.problems,
    })
}

/// Load every function under `dir` with their problems (validation against the whole set
/// included); invalid functions stay in the set, marked invalid.
fn load_functions(dir: &Path) -> (FunctionSet, Vec<LoadedFunction>, Vec<Problem>) {
    let mut set = FunctionSet::new();
    let mut loaded: Vec<LoadedFunction> = Vec::new();
    let mut problems = Vec::new();
    if let Some(p) = missing_dir_report(dir, "functions") {
        problems.push(p);
        return (set, loaded, problems);
    }
    let mut indexes: Vec<PositionIndex> = Vec::new();
    for path in yaml_files(dir, &mut problems) {
        let label = path.display().to_string();
        let source = match read_source(&path, &label) {
            Ok(s) => s,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        match parse_function(&label, &source) {
            Ok(f) => {
                problems.extend(f.warnings.iter().cloned());
                let index = PositionIndex::build(&f.source);
                match set.insert(f.function.clone(), Some(label.clone())) {
                    Ok(()) => {
                        indexes.push(index);
                        loaded.push(f);
                    }
                    Err(first) => {
                        let first = first.unwrap_or_else(|| "another file".to_string());
                        problems.push(locate(
                            Problem::error(
                                "name",
                                format!(
                                    "function {:?}: function already exists and was declared in {first}",
                                    f.name
                                ),
                            ),
                            &label,
                            &index,
                        ));
                    }
                }
            }
            Err(ps) => problems.extend(ps),
        }
    }
    let mut invalid = Vec::new();
    {
        let ctx = ValidationContext::new(&set);
        for (f, index) in loaded.iter_mut().zip(&indexes) {
            let mut found = Vec::new();
            for p in validate_function(&f.function, &ctx) {
                found.push(locate(p, &f.file, index));
            }
            if found.iter().any(Problem::is_error) {
                invalid.push(f.name.clone());
            }
            f.warnings
                .extend(found.iter().filter(|p| !p.is_error()).cloned());
            problems.extend(found);
        }
    }
    for name in invalid {
        set.mark_invalid(&name);
    }
    (set, loaded, problems)
}

/// Load every function under `dir`: recursive `*.yaml`/`*.yml`, dotfiles skipped; a duplicate
/// name is an error (the first one is kept). Functions failing validation are kept but marked
/// invalid, so steps using them get a clear error.
pub fn load_functions_dir(dir: &Path) -> (FunctionSet, Vec<Problem>) {
    let (set, _, problems) = load_functions(dir);
    (set, problems)
}

/// Load the functions directory, then the templates directory against those functions.
/// The report's `functions` lists the parsed functions; `problems` has both kinds of files'.
pub fn load_all(templates_dir: &Path, functions_dir: &Path) -> (FunctionSet, LoadReport) {
    let (set, functions, mut problems) = load_functions(functions_dir);
    let mut report = load_templates_dir(templates_dir, &set);
    problems.append(&mut report.problems);
    report.problems = problems;
    report.functions = functions;
    (set, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_none() -> FunctionSet {
        FunctionSet::new()
    }

    #[test]
    fn tabs_are_fixed_with_one_warning() {
        let (fixed, lines) = fix_tabs("a:\n\tb: 1\n\t\tc:\td\n");
        assert_eq!(fixed, "a:\n  b: 1\n    c:\td\n");
        assert_eq!(lines, vec![2, 3]);
    }

    #[test]
    fn syntax_error_is_located() {
        let fs = ctx_none();
        let err = parse_template(
            "x.yaml",
            "name: a\nsteps: [\n",
            &ValidationContext::new(&fs),
        )
        .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].file.as_deref(), Some("x.yaml"));
        assert!(
            err[0].line.is_some() && err[0].column.is_some(),
            "{:?}",
            err[0]
        );
        assert!(err[0].message.contains("YAML syntax error"), "{}", err[0]);
    }

    #[test]
    fn type_errors_are_located_and_name_the_field() {
        let fs = ctx_none();
        let ctx = ValidationContext::new(&fs);
        let err = parse_template(
            "x.yaml",
            "name: abc\ndescription: desc\ntitle_format: title\nretry_max: \"abc\"\nsteps: {}\n",
            &ctx,
        )
        .unwrap_err();
        let e: Vec<&Problem> = err.iter().filter(|p| p.is_error()).collect();
        assert_eq!(e.len(), 1, "{err:?}");
        assert_eq!(e[0].path, "retry_max");
        assert_eq!((e[0].line, e[0].column), (Some(4), Some(12)));
        assert!(e[0].message.contains("invalid type"), "{}", e[0]);
        assert_eq!(e[0].template.as_deref(), Some("abc"));

        let err = parse_template(
            "x.yaml",
            "name: abc\ndescription: desc\ntitle_format: title\nsteps: 3\n",
            &ctx,
        )
        .unwrap_err();
        assert_eq!(err[0].path, "steps");
        assert_eq!(err[0].line, Some(4));
        assert!(err[0].to_string().starts_with("x.yaml:4:"), "{}", err[0]);
    }

    #[test]
    fn several_type_errors_at_once() {
        let fs = ctx_none();
        let src = "name: abc\ndescription: desc\ntitle_format: title\nsteps:\n  a:\n    action: {type: echo}\n    max_retries: lots\n  b:\n    action: {type: echo}\n  c:\n    dependencies: {x: y}\n    action: {type: echo}\nretry_max: [1]\n";
        let err = parse_template("x.yaml", src, &ValidationContext::new(&fs)).unwrap_err();
        let got: Vec<(String, Option<u32>)> =
            err.iter().map(|p| (p.path.clone(), p.line)).collect();
        assert!(
            got.contains(&("steps.a.max_retries".to_string(), Some(7))),
            "{got:?}"
        );
        assert!(
            got.contains(&("steps.c.dependencies".to_string(), Some(11))),
            "{got:?}"
        );
        assert!(
            got.contains(&("retry_max".to_string(), Some(13))),
            "{got:?}"
        );
    }

    #[test]
    fn unknown_keys_warn_and_runtime_fields_fail() {
        let fs = ctx_none();
        let ctx = ValidationContext::new(&fs);
        let ok = parse_template(
            "x.yaml",
            "name: abc\ndescription: desc\ntitle_format: title\nfoo: 1\nsteps:\n  a:\n    action: {type: echo, bar: 2}\n    conditions: [{type: check, if: [{value: 1, operator: EQ, expected: 1, zap: 3}], then: {this: DONE}}]\n",
            &ctx,
        )
        .unwrap();
        let w: Vec<String> = ok
            .warnings
            .iter()
            .map(|p| format!("{}@{:?}", p.path, p.line))
            .collect();
        assert_eq!(
            w,
            vec![
                "foo@Some(4)",
                "steps.a.action.bar@Some(7)",
                "steps.a.conditions[0].if[0].zap@Some(8)"
            ]
        );
        let err = parse_template(
            "x.yaml",
            "name: abc\ndescription: desc\ntitle_format: title\nsteps:\n  a:\n    action: {type: echo}\n    state: DONE\n    output: {}\n",
            &ctx,
        )
        .unwrap_err();
        let e: Vec<String> = err
            .iter()
            .filter(|p| p.is_error())
            .map(|p| format!("{}@{:?}: {}", p.path, p.line, p.message))
            .collect();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("steps.a.state@Some(7): field \"state\""),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("steps.a.output@Some(8): field \"output\""),
            "{e:?}"
        );
    }

    #[test]
    fn oversized_and_empty_files() {
        let fs = ctx_none();
        let ctx = ValidationContext::new(&fs);
        let big = format!("name: x\ndescription: \"{}\"\n", "a".repeat(MAX_FILE_SIZE));
        let err = parse_template("big.yaml", &big, &ctx).unwrap_err();
        assert!(err[0].message.contains("file too large"));
        let err = parse_template("e.yaml", "", &ctx).unwrap_err();
        assert!(err[0].message.contains("empty template"));
        let err = parse_template("l.yaml", "- a\n- b\n", &ctx).unwrap_err();
        assert!(err[0].message.contains("must be a YAML mapping"));
    }

    #[test]
    fn duplicate_yaml_keys_are_errors() {
        let fs = ctx_none();
        let err = parse_template(
            "d.yaml",
            "name: x\nsteps:\n  a: {action: {type: echo}}\n  a: {action: {type: echo}}\n",
            &ValidationContext::new(&fs),
        )
        .unwrap_err();
        assert!(err[0].line.is_some(), "{err:?}");
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let fs = ctx_none();
        let ctx = ValidationContext::new(&fs);
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep_map = "{a: ".repeat(200_000);
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
        for src in [
            deep.as_str(),
            deep_map.as_str(),
            bomb,
            "steps: {a: {dependencies: [a, a, 'a:', ':', 'a:ANY,ANY']}}",
            "name: [1]\nsteps: {\"\": {}}",
            "? [x]\n: y",
            "steps: {a: {conditions: [{then: {this: ~}}]}, b: {json_schema: {$ref: '#/x/~9'}}}",
            "\u{feff}name: x",
            "name: x\n---\nname: y",
        ] {
            let _ = parse_template("h.yaml", src, &ctx);
            let _ = parse_function("h.yaml", src);
        }
    }
}
