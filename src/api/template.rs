//! `GET /template`, `GET /template/{name}`, `GET /template/{name}/version`, and the editor's
//! `POST /template/validate`, `POST /template/plan`, `PUT /template/{name}` (admins) and
//! `GET /template/schema` (the template JSON schema, [`schema`]; `schema` is therefore a
//! reserved template name).
//!
//! The list omits steps, variables and base configurations (as µTask); hidden templates are
//! listed to admins only, but any caller may fetch one by name.

use std::collections::{BTreeMap, HashSet};

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[path = "template_schema.rs"]
pub mod schema;

use super::body::Body;
use super::error::ErrorBody;
use super::{ApiError, AppState, Caller, FieldError};
use crate::store;
use crate::template::load::{LoadedTemplate, parse_template};
use crate::template::model::{TaskTemplate, normalize_name};
use crate::template::validate::{Problem, ValidationContext};

/// A template input (requester or resolver) as declared by the template (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct TemplateInput {
    pub name: String,
    pub description: String,
    /// `string` (default), `password` (masked for non-admins), `bool` or `number`.
    #[schema(example = "string")]
    pub r#type: String,
    /// Go regexp the stringified value must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The only accepted values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Option<Vec<Value>>)]
    pub legal_values: Vec<Value>,
    /// The value is a list.
    pub collection: bool,
    pub optional: bool,
    /// Applied when the value is missing, null or `""`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// UI only: the form field is hidden.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// A template as listed by `GET /template`: its definition without `steps`, `variables`,
/// `base_configurations` and `result_format` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct TemplateSummary {
    /// Unique id (lower case).
    #[schema(example = "hello-world")]
    pub name: String,
    /// Version of the definition (a changed file gets a new version).
    pub version: i32,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_link: Option<String>,
    /// Task title, templated at task creation.
    pub title_format: String,
    pub allowed_resolver_usernames: Vec<String>,
    pub allowed_resolver_groups: Vec<String>,
    pub allow_all_resolver_usernames: bool,
    /// Tasks run as soon as they are created (when there are no resolver inputs).
    pub auto_runnable: bool,
    /// No task can be created from it.
    pub blocked: bool,
    /// Listed to admins only.
    pub hidden: bool,
    /// Max resolution runs (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_max: Option<i64>,
    pub allow_task_start_over: bool,
    pub inputs: Vec<TemplateInput>,
    pub resolver_inputs: Vec<TemplateInput>,
    /// Tags given to every task (values templated).
    pub tags: BTreeMap<String, String>,
    /// Template string syntax: `utask` (Go templates, translated) or `jinja`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "jinja")]
    pub dialect: Option<String>,
    /// Expected duration of a task (Go duration, e.g. `15m`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_duration: Option<String>,
}

/// A variable of a template: a fixed (templated) value or a JS expression (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct TemplateVariable {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Go duration (default 10s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_timeout: Option<String>,
}

/// A whole template definition as answered by `GET /template/{name}` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct Template {
    #[serde(flatten)]
    pub summary: TemplateSummary,
    /// Task result: keys and templated values, rendered when the resolution is DONE.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result_format: Option<Map<String, Value>>,
    pub variables: Vec<TemplateVariable>,
    /// Steps by name, in file order (µTask's step definition: `action`, `dependencies`,
    /// `conditions`, `foreach`, `retry_pattern`, `custom_states`…).
    #[schema(value_type = BTreeMap<String, Object>)]
    pub steps: Map<String, Value>,
    /// Named raw configurations referenced by `action.base_configuration`.
    #[schema(value_type = BTreeMap<String, Object>)]
    pub base_configurations: Map<String, Value>,
    /// The YAML source as written (what the editor opens).
    pub source: String,
}

fn summary(rec: &store::template::TemplateRecord) -> Value {
    let mut m = match &rec.definition {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for k in ["steps", "variables", "base_configurations", "result_format"] {
        m.remove(k);
    }
    m.insert("name".into(), Value::String(rec.name.clone()));
    m.insert("version".into(), Value::from(rec.version));
    Value::Object(m)
}

/// The templates (hidden ones are listed to admins only).
#[utoipa::path(
    get,
    path = "/template",
    tag = "template",
    operation_id = "list_templates",
    responses((status = 200, description = "Every template the caller may list, without steps.", body = Vec<TemplateSummary>)),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Value>>, ApiError> {
    let rows = store::template::list(&state.store, caller.is_admin).await?;
    Ok(Json(rows.iter().map(summary).collect()))
}

/// One template, in full (any caller may fetch a hidden one by name).
#[utoipa::path(
    get,
    path = "/template/{name}",
    tag = "template",
    operation_id = "get_template",
    params(("name" = String, Path, description = "Template name (case-insensitive).", example = "hello-world")),
    responses(
        (status = 200, description = "The template.", body = Template),
        (status = 404, description = "No such template.", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = name.trim().to_lowercase();
    let rec = store::template::get(&state.store, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("template `{name}` not found")))?;
    let mut def = match rec.definition {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    def.insert("name".into(), Value::String(rec.name));
    def.insert("version".into(), Value::from(rec.version));
    def.insert("source".into(), Value::String(rec.source));
    Ok(Json(Value::Object(def)))
}

// ---------------------------------------------------------------------------------------------
// Editor: validate, plan, save, versions
// ---------------------------------------------------------------------------------------------

/// Body of `POST /template/validate` and `PUT /template/{name}`: a template's YAML text.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateSource {
    /// The template, as YAML (µTask's template format).
    #[schema(
        example = "name: hello\ndescription: Say hello\ntitle_format: hello\nsteps:\n  a:\n    action:\n      type: echo\n      configuration: {output: {msg: hi}}\n"
    )]
    pub source: String,
}

/// One problem found in a template (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct TemplateProblem {
    /// `error` (the template is refused) or `warning`.
    #[schema(example = "error")]
    pub severity: String,
    /// 1-based line in the source, when known.
    pub line: Option<u32>,
    /// 1-based column in the source, when known.
    pub column: Option<u32>,
    /// Path of the offending field (`steps.a.dependencies[0]`).
    pub path: String,
    pub message: String,
}

/// A step of the template's graph (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct GraphStep {
    pub name: String,
    pub description: String,
    pub action_type: String,
    /// `step` or `step:STATE[,STATE…]`.
    pub dependencies: Vec<String>,
}

/// The answer of `POST /template/validate` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct ValidationReport {
    /// No error (warnings allowed).
    pub valid: bool,
    /// The template's (normalized) name, when it could be read.
    pub name: Option<String>,
    pub problems: Vec<TemplateProblem>,
    /// The steps and their dependencies (empty when the YAML does not parse).
    pub steps: Vec<GraphStep>,
}

/// Body of `POST /template/plan`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// A template's YAML text (the editor's buffer)…
    #[serde(default)]
    pub source: Option<String>,
    /// …or the name of a stored template.
    #[serde(default)]
    pub template: Option<String>,
    /// Sample requester inputs.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    /// Sample resolver inputs.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub resolver_input: Map<String, Value>,
}

/// A step of a plan (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct PlannedStep {
    pub name: String,
    pub description: String,
    pub action_type: String,
    pub dependencies: Vec<String>,
    /// Depth in the graph (0: no dependency).
    pub level: u32,
    /// `run`, `skip` (a skip condition on inputs is met), `prune` (a dependency ends in a state
    /// this step does not accept) or `runtime` (decided by values known only while running).
    #[schema(example = "run")]
    pub outcome: String,
    pub reason: String,
    /// State a skip condition gives the step.
    pub state: Option<String>,
    /// Configuration as the action would receive it (password inputs masked).
    #[schema(value_type = Object)]
    pub configuration: Value,
    /// Some values are only known at run time and are shown as written.
    pub runtime_values: bool,
    pub foreach: Option<String>,
    pub errors: Vec<String>,
    /// Check conditions evaluated after the step runs.
    pub checks: u32,
}

/// The answer of `POST /template/plan` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct Plan {
    pub template: String,
    /// The title a task would get.
    pub title: String,
    /// Problems of the sample inputs (`input.x: message`).
    pub input_errors: Vec<String>,
    pub steps: Vec<PlannedStep>,
}

/// The answer of `PUT /template/{name}` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct SavedTemplate {
    pub name: String,
    /// The version now current (unchanged when the definition did not change).
    pub version: i32,
    /// `created`, `updated` or `unchanged`.
    pub outcome: String,
    pub problems: Vec<TemplateProblem>,
    /// Set when a file of `MUTASK_TEMPLATES_DIR` defines the same template (it is loaded again
    /// at the next start).
    pub warning: Option<String>,
}

/// A version of a template (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct TemplateVersion {
    pub version: i32,
    pub created: chrono::DateTime<chrono::Utc>,
}

/// The file label problems of an editor buffer carry.
const EDITOR_FILE: &str = "template.yaml";

fn problem_json(p: &Problem) -> Value {
    json!({
        "severity": p.severity.to_string(),
        "line": p.line,
        "column": p.column,
        "path": p.path,
        "message": p.message,
    })
}

fn graph_json(t: &TaskTemplate) -> Vec<Value> {
    t.steps
        .iter()
        .map(|(name, s)| {
            json!({
                "name": name,
                "description": s.description,
                "action_type": s.action.action_type,
                "dependencies": s.dependencies,
            })
        })
        .collect()
}

/// Parses and validates `source` off the async runtime, knowing the stored templates (for
/// subtask references), the functions and the plugins.
async fn check_source(
    state: &AppState,
    source: String,
) -> Result<Result<LoadedTemplate, Vec<Problem>>, ApiError> {
    if source.len() > crate::template::load::MAX_FILE_SIZE {
        return Err(ApiError::PayloadTooLarge(
            crate::template::load::MAX_FILE_SIZE,
        ));
    }
    let mut known: HashSet<String> = store::template::list(&state.store, true)
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    let functions = state.functions.clone();
    let plugins = state.plugin_types.clone();
    tokio::task::spawn_blocking(move || {
        // the template may name itself (a subtask of its own kind); a line scan, since the
        // loader guards the YAML parse against hostile nesting
        if let Some(n) = source.lines().find_map(|l| l.strip_prefix("name:")) {
            known.insert(normalize_name(n.trim().trim_matches(['"', '\''])));
        }
        let ctx = ValidationContext {
            functions: &functions,
            known_templates: Some(&known),
            plugin_types: Some(&plugins),
        };
        parse_template(EDITOR_FILE, &source, &ctx)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("template validation failed: {e}")))
}

/// Checks a template's YAML and reports every problem with its line and column (the editor's
/// validation as you type). Nothing is stored.
#[utoipa::path(
    post,
    path = "/template/validate",
    tag = "template",
    operation_id = "validate_template",
    request_body(description = "The template's YAML text (JSON or YAML body).", content((TemplateSource = "application/json"), (TemplateSource = "application/x-yaml"))),
    responses(
        (status = 200, description = "The problems found (`valid` is false when one is an error).", body = ValidationReport),
        (status = 400, description = "Unreadable body.", body = ErrorBody),
        (status = 413, description = "Template larger than 1 MiB.", body = ErrorBody),
    ),
)]
pub async fn validate(
    State(state): State<AppState>,
    _caller: Caller,
    Body(body): Body<TemplateSource>,
) -> Result<Json<Value>, ApiError> {
    let answer = match check_source(&state, body.source).await? {
        Ok(t) => json!({
            "valid": true,
            "name": t.name,
            "problems": t.warnings.iter().map(problem_json).collect::<Vec<_>>(),
            "steps": graph_json(&t.template),
        }),
        Err(problems) => json!({
            "valid": !problems.iter().any(Problem::is_error),
            "name": problems.iter().find_map(|p| p.template.clone()),
            "problems": problems.iter().map(problem_json).collect::<Vec<_>>(),
            "steps": [],
        }),
    };
    Ok(Json(answer))
}

fn invalid_template(problems: &[Problem]) -> ApiError {
    let errors: Vec<&Problem> = problems.iter().filter(|p| p.is_error()).collect();
    ApiError::Invalid {
        message: format!("the template has {} error(s)", errors.len()),
        fields: errors
            .iter()
            .map(|p| FieldError {
                field: match (p.line, p.column) {
                    (Some(l), Some(c)) => format!("{EDITOR_FILE}:{l}:{c}"),
                    _ => p.path.clone(),
                },
                message: if p.path.is_empty() {
                    p.message.clone()
                } else {
                    format!("{}: {}", p.path, p.message)
                },
            })
            .collect(),
    }
}

/// What a template would do with sample inputs, without running anything: every step with its
/// rendered configuration (password inputs masked) and whether conditions would skip it. The
/// rendering runs in the sandbox worker pool (the template text comes from the caller).
#[utoipa::path(
    post,
    path = "/template/plan",
    tag = "template",
    operation_id = "plan_template",
    request_body(description = "A template and sample inputs (JSON or YAML body).", content((PlanBody = "application/json"), (PlanBody = "application/x-yaml"))),
    responses(
        (status = 200, description = "The plan.", body = Plan),
        (status = 400, description = "Neither or both of `source` and `template`; a template whose rendering fails, runs away or exhausts memory.", body = ErrorBody),
        (status = 422, description = "An invalid template: every error with its line and column (`template.yaml:L:C`).", body = ErrorBody),
        (status = 404, description = "No such stored template.", body = ErrorBody),
        (status = 503, description = "The sandbox could not render the plan in time, or the database is unreachable: retry.", body = ErrorBody),
    ),
)]
pub async fn plan(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<PlanBody>,
) -> Result<Json<Value>, ApiError> {
    let template: TaskTemplate = match (body.source, body.template) {
        (Some(source), None) => match check_source(&state, source).await? {
            Ok(t) => t.template,
            Err(problems) => return Err(invalid_template(&problems)),
        },
        (None, Some(name)) => {
            let name = name.trim().to_lowercase();
            let rec = store::template::get(&state.store, &name)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("template `{name}` not found")))?;
            serde_json::from_value(rec.definition).map_err(|e| {
                ApiError::Internal(format!("stored template `{name}` does not load: {e}"))
            })?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give either `source` (a template's YAML) or `template` (a stored template's name)"
                    .into(),
            ));
        }
    };
    let sandbox = state
        .sandbox
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no sandbox on this instance".into()))?;
    let request = serde_json::to_value(crate::engine::plan::PlanRequest {
        template,
        input: body.input,
        resolver_input: body.resolver_input,
        requester: caller.username.clone(),
    })
    .map_err(|e| ApiError::Internal(format!("encoding a plan request: {e}")))?;
    let text = sandbox
        .run(crate::sandbox::Job::Plan {
            request,
            timeout_ms: PLAN_TIMEOUT_MS,
        })
        .await
        .map_err(|e| {
            use crate::sandbox::SandboxError as E;
            match e {
                // the template's own rendering failed, ran away or used too much memory
                E::Script { .. } | E::Timeout { .. } | E::Crashed { .. } => {
                    ApiError::BadRequest(format!("the plan could not be computed: {e}"))
                }
                E::Unavailable(_) | E::Protocol(_) | E::Closed => {
                    ApiError::Unavailable(format!("the plan could not be computed: {e}"))
                }
            }
        })?;
    let plan: Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::Internal(format!("unreadable plan from the sandbox: {e}")))?;
    Ok(Json(plan))
}

/// Wall-clock budget of one plan.
const PLAN_TIMEOUT_MS: u64 = 10_000;

/// Saves a template (admins only): validated like a file of `MUTASK_TEMPLATES_DIR`; a changed
/// definition becomes a new version (old versions are kept, and a task records the version it
/// was created from).
#[utoipa::path(
    put,
    path = "/template/{name}",
    tag = "template",
    operation_id = "save_template",
    params(("name" = String, Path, description = "Template name; must match the `name` in the source.", example = "hello-world")),
    request_body(description = "The template's YAML text (JSON or YAML body).", content((TemplateSource = "application/json"), (TemplateSource = "application/x-yaml"))),
    responses(
        (status = 200, description = "Saved (or unchanged).", body = SavedTemplate),
        (status = 403, description = "Not an admin.", body = ErrorBody),
        (status = 422, description = "Invalid template (every error with its line and column, `template.yaml:L:C`) or a name that is not the path's.", body = ErrorBody),
        (status = 413, description = "Template larger than 1 MiB.", body = ErrorBody),
    ),
)]
pub async fn save(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<TemplateSource>,
) -> Result<Json<Value>, ApiError> {
    if !caller.is_admin {
        return Err(ApiError::Forbidden("only admins may save templates".into()));
    }
    let name = normalize_name(&name);
    if name == RESERVED_NAME {
        return Err(reserved_name());
    }
    let source = body.source;
    let loaded = match check_source(&state, source.clone()).await? {
        Ok(t) => t,
        Err(problems) => return Err(invalid_template(&problems)),
    };
    if loaded.name != name {
        return Err(ApiError::Invalid {
            message: format!(
                "the source names template `{}`, the path `{name}`",
                loaded.name
            ),
            fields: vec![FieldError {
                field: "source.name".into(),
                message: format!("must be `{name}` (the name in the path)"),
            }],
        });
    }
    let previous = store::template::get(&state.store, &name).await?;
    let definition = serde_json::to_value(&loaded.template)
        .map_err(|e| ApiError::Internal(format!("encoding the template: {e}")))?;
    let outcome = store::template::upsert(
        &state.store,
        &store::template::TemplateUpsert {
            name: &name,
            description: &loaded.template.description,
            definition: &definition,
            source: &loaded.source,
            source_file: None,
            hidden: loaded.template.hidden,
            blocked: loaded.template.blocked,
        },
    )
    .await?;
    let (outcome, version) = match outcome {
        store::template::UpsertOutcome::Created => ("created", 1),
        store::template::UpsertOutcome::Updated { version } => ("updated", version),
        store::template::UpsertOutcome::Unchanged => (
            "unchanged",
            previous.as_ref().map(|p| p.version).unwrap_or(1),
        ),
    };
    tracing::info!(template = %name, version, outcome, by = %caller.username, "template saved through the API");
    let warning = previous.and_then(|p| p.source_file).map(|f| {
        format!("`{f}` defines this template too: it is loaded again at the next start, so change the file as well")
    });
    Ok(Json(json!({
        "name": name,
        "version": version,
        "outcome": outcome,
        "problems": loaded.warnings.iter().map(problem_json).collect::<Vec<_>>(),
        "warning": warning,
    })))
}

/// The versions of a template, newest first.
#[utoipa::path(
    get,
    path = "/template/{name}/version",
    tag = "template",
    operation_id = "list_template_versions",
    params(("name" = String, Path, description = "Template name (case-insensitive).", example = "hello-world")),
    responses(
        (status = 200, description = "Every version kept.", body = Vec<TemplateVersion>),
        (status = 404, description = "No such template.", body = ErrorBody),
    ),
)]
pub async fn versions(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = name.trim().to_lowercase();
    let rows = store::template::versions(&state.store, &name).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(format!("template `{name}` not found")));
    }
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|(version, created)| json!({"version": version, "created": created}))
            .collect(),
    )))
}

/// A template name the API keeps for itself (`GET /template/schema`).
pub const RESERVED_NAME: &str = "schema";

fn reserved_name() -> ApiError {
    ApiError::Invalid {
        message: "the template name `schema` is reserved: `GET /template/schema` answers the \
                  template JSON schema"
            .into(),
        fields: vec![FieldError {
            field: "name".into(),
            message: "`schema` is reserved".into(),
        }],
    }
}

/// `PUT /template/schema`: the reserved name, refused (422) like any invalid name.
pub async fn save_reserved(_caller: Caller) -> ApiError {
    reserved_name()
}

/// The template JSON schema: every key a template may carry, with its type and description
/// (the editor's completion reads it). Any signed-in caller; the same document is committed as
/// `template.schema.json`.
#[utoipa::path(
    get,
    path = "/template/schema",
    tag = "template",
    operation_id = "template_schema",
    responses(
        (status = 200, description = "The template JSON schema (JSON Schema 2020-12).", body = Object),
    ),
)]
pub async fn json_schema(_caller: Caller) -> Json<Value> {
    Json(schema::json_schema())
}
