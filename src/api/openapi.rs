//! The OpenAPI document of the HTTP API (utoipa), served at `GET /unsecured/spec.json`, and the
//! interactive Swagger UI at `/docs` (assets vendored in the binary by `utoipa-swagger-ui`'s
//! `vendored` feature: the page loads nothing from another host).
//!
//! Every route of [`super::router`] is listed in [`ApiDoc`]; each handler carries its own
//! `#[utoipa::path]` (parameters, body, statuses) and the schemas of what it answers sit next to
//! it. What every route shares is added here by [`Common`]: the security requirement of every
//! path outside `/unsecured` and `/docs` (HTTP Basic, or the trusted proxy's `x-remote-user`)
//! with its 401, the 413/415 of every route with a body, and the 500 and 503 (database
//! unreachable, with `Retry-After`) of every route that touches the database. The document is
//! committed as `openapi.json` and compared by `tests/openapi.rs`
//! (`UPDATE_OPENAPI=1 cargo test --test suite openapi::` rewrites it).

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Ref, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::ApiError;
use super::error::ErrorBody;
use crate::domain::{ResolutionState, TaskState};

/// Where the OpenAPI document is served.
pub const SPEC_PATH: &str = "/unsecured/spec.json";
/// Where Swagger UI is served (`/docs` redirects to `/docs/`).
pub const DOCS_PATH: &str = "/docs";

/// Operations that never touch the database (no 500 documented).
const NO_INTERNAL_ERROR: &[&str] = &[
    "ping",
    "ready",
    "root",
    "meta",
    "spec",
    "docs_redirect",
    "docs_index",
    "docs_asset",
    "ui_redirect",
    "ui_index",
    "ui_file",
];

/// The OpenAPI document of mutask's HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mutask",
        description = "HTTP API of mutask, a PostgreSQL-backed automation engine compatible with \
OVH's µTask. Request bodies are JSON or YAML (`application/x-yaml`); answers are JSON. Every \
error answers `{\"error\": {\"code\", \"message\", \"fields\"?}}`. Routes outside `/unsecured` \
and `/docs` need HTTP Basic credentials (`MUTASK_BASIC_AUTH`) or the `x-remote-user` / \
`x-remote-groups` headers set by a trusted proxy (`MUTASK_TRUSTED_PROXIES`)."
    ),
    paths(
        super::health::ping,
        super::health::ready,
        super::template::list,
        super::template::get,
        super::template::save,
        super::template::versions,
        super::template::validate,
        super::template::plan,
        super::template::json_schema,
        super::step_log::get,
        super::function::list,
        super::action::list,
        super::function::get,
        super::metrics::metrics,
        super::resolution::update,
        super::resolution::update_step,
        super::schedule::create,
        super::schedule::list,
        super::schedule::get,
        super::schedule::update,
        super::schedule::delete,
        super::schedule::pause,
        super::schedule::resume,
        super::webhook::create,
        super::webhook::list,
        super::webhook::get,
        super::webhook::delete,
        super::webhook::deliver,
        super::token::create,
        super::token::list,
        super::token::revoke,
        super::notification::list,
        super::notification::retry,
        super::task::create,
        super::task::get,
        super::listing::list,
        super::listing::count,
        super::task::update,
        super::task::delete,
        super::task::wontfix,
        super::comment::create,
        super::comment::list,
        super::comment::get,
        super::comment::update,
        super::comment::delete,
        super::batch::create,
        super::resolution::create,
        super::resolution::get,
        super::resolution::run,
        super::resolution::pause,
        super::resolution::extend,
        super::resolution::cancel,
        super::resolution::get_step,
        super::resolution::get_step_configuration,
        super::resolution::set_step_state,
        super::meta::root,
        super::meta::meta,
        super::keys::rotate,
        super::keys::get,
        super::meta::stats,
        super::callback::call,
        spec,
        docs_redirect,
        docs_index,
        docs_asset,
        super::ui::redirect,
        super::ui::index,
        super::ui::file,
    ),
    components(schemas(ErrorBody, TaskStateSchema, ResolutionStateSchema)),
    modifiers(&Common),
    tags(
        (name = "task", description = "Tasks: create, read, list, edit, WONTFIX, delete."),
        (name = "comment", description = "Comments on a task."),
        (name = "batch", description = "Many tasks from one template at once."),
        (name = "resolution", description = "Resolutions: the execution of a task, its steps and their control."),
        (name = "template", description = "Task templates (loaded from `MUTASK_TEMPLATES_DIR`)."),
        (name = "meta", description = "Who am I, which mutask, task statistics."),
        (name = "schedule", description = "Schedules: tasks created on a cron expression, a calendar or an interval."),
        (name = "webhook", description = "Inbound webhooks: signed deliveries that create tasks."),
        (name = "admin", description = "Administration (admins only)."),
        (name = "callback", description = "Callback URLs handed out by the `callback` action."),
        (name = "health", description = "Liveness and readiness probes."),
        (name = "docs", description = "This document and its interactive UI."),
        (name = "ui", description = "The dashboard and template editor (static files; the app uses this API)."),
    )
)]
pub struct ApiDoc;

/// The document as served and committed (pretty JSON, no trailing newline).
pub fn spec_json() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_pretty_json()
}

/// Adds what every route shares (see the module documentation).
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic_auth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("A user of `MUTASK_BASIC_AUTH`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`mtk_…`) created by an admin with `POST /token`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "proxy_user",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-remote-user",
                "The user name asserted by a reverse proxy; accepted only from an address of \
                 `MUTASK_TRUSTED_PROXIES`. Its groups go in `x-remote-groups` (comma-separated).",
            ))),
        );
        let error = |description: &str| {
            ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                    .build(),
            )
        };
        let responses = [
            (
                "Unauthorized",
                error(
                    "No credentials, wrong credentials, or proxy headers from an untrusted peer.",
                )
                .header(
                    "WWW-Authenticate",
                    HeaderBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .examples(["Basic realm=\"mutask\""]),
                        ))
                        .description(Some("`Basic realm=\"mutask\"`"))
                        .build(),
                )
                .build(),
            ),
            (
                "PayloadTooLarge",
                error("The body is larger than `MUTASK_MAX_BODY_BYTES`.").build(),
            ),
            (
                "UnsupportedMediaType",
                error("The body is neither JSON nor YAML.").build(),
            ),
            (
                "InternalError",
                error(
                    "Internal error: the answer says only \"internal error\", the cause is logged.",
                )
                .build(),
            ),
            (
                "Unavailable",
                error(
                    "The database is unreachable (a restart, a failover): retry after \
                     `Retry-After` seconds. A write cut off this way may or may not have been \
                     made; a task creation retried with the same `Idempotency-Key` is not made \
                     twice.",
                )
                .header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .examples([1]),
                        ))
                        .description(Some("Seconds to wait before retrying (`1`)."))
                        .build(),
                )
                .build(),
            ),
        ];
        for (name, response) in responses {
            components
                .responses
                .insert(name.to_string(), RefOr::T(response));
        }

        let reference = |name: &str| RefOr::Ref(Ref::from_response_name(name));
        let add = |op: &mut Operation, status: &str, name: &str| {
            op.responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| reference(name));
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let secured = !path.starts_with("/unsecured/")
                && !path.starts_with(DOCS_PATH)
                && !path.starts_with("/ui")
                && path != "/metrics";
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                // a webhook delivery is authenticated by its signature, not by a user
                let by_signature = op.operation_id.as_deref() == Some("deliver_webhook");
                if secured && !by_signature {
                    op.security = Some(vec![
                        SecurityRequirement::new("basic_auth", Vec::<String>::new()),
                        SecurityRequirement::new("api_token", Vec::<String>::new()),
                        SecurityRequirement::new("proxy_user", Vec::<String>::new()),
                    ]);
                    add(op, "401", "Unauthorized");
                }
                if op.request_body.is_some() {
                    add(op, "413", "PayloadTooLarge");
                    add(op, "415", "UnsupportedMediaType");
                }
                let id = op.operation_id.as_deref().unwrap_or_default();
                if !NO_INTERNAL_ERROR.contains(&id) {
                    add(op, "500", "InternalError");
                    add(op, "503", "Unavailable");
                }
            }
        }
    }
}

/// A string schema listing every value of a state enum, in declaration order.
fn state_schema(description: &str, values: Vec<&'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

/// OpenAPI schema of [`TaskState`] (generated from the enum, so it cannot drift).
pub struct TaskStateSchema;

impl PartialSchema for TaskStateSchema {
    fn schema() -> RefOr<Schema> {
        state_schema(
            "State of a task.",
            TaskState::ALL.iter().map(|s| s.as_str()).collect(),
        )
    }
}

impl ToSchema for TaskStateSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TaskState")
    }
}

/// OpenAPI schema of [`ResolutionState`] (generated from the enum, so it cannot drift).
pub struct ResolutionStateSchema;

impl PartialSchema for ResolutionStateSchema {
    fn schema() -> RefOr<Schema> {
        state_schema(
            "State of a resolution.",
            ResolutionState::ALL.iter().map(|s| s.as_str()).collect(),
        )
    }
}

impl ToSchema for ResolutionStateSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ResolutionState")
    }
}

/// The OpenAPI document (OpenAPI 3.1) of this API.
#[utoipa::path(
    get,
    path = "/unsecured/spec.json",
    tag = "docs",
    operation_id = "spec",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object)),
)]
pub async fn spec() -> Result<Response, ApiError> {
    let json =
        spec_json().map_err(|e| ApiError::internal(format!("cannot write the spec: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// Swagger UI (redirects to `/docs/`).
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    operation_id = "docs_redirect",
    responses((status = 303, description = "To `/docs/`.", headers(("location" = String, description = "`/docs/`")))),
)]
pub async fn docs_redirect() -> Redirect {
    Redirect::to("/docs/")
}

/// Swagger UI: the interactive page over `/unsecured/spec.json`.
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "docs",
    operation_id = "docs_index",
    responses((status = 200, description = "The Swagger UI page (its assets are served under `/docs/`).", content_type = "text/html", body = String)),
)]
pub async fn docs_index() -> Result<Response, ApiError> {
    swagger_file("index.html")
}

/// A Swagger UI asset (script, style sheet, icon).
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "docs",
    operation_id = "docs_asset",
    params(("file" = String, Path, description = "Asset name, e.g. `swagger-ui-bundle.js`.")),
    responses(
        (status = 200, description = "The asset.", content_type = "application/octet-stream", body = String),
        (status = 404, description = "No such asset.", body = ErrorBody),
    ),
)]
pub async fn docs_asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    swagger_file(&file)
}

fn swagger_file(file: &str) -> Result<Response, ApiError> {
    // no online validator badge: the page loads nothing from another host
    let config = Arc::new(utoipa_swagger_ui::Config::from(SPEC_PATH).validator_url("none"));
    let found = utoipa_swagger_ui::serve(file, config)
        .map_err(|e| ApiError::internal(format!("cannot serve Swagger UI's {file}: {e}")))?;
    let Some(found) = found else {
        return Err(ApiError::NotFound(format!("no Swagger UI asset `{file}`")));
    };
    let content_type = HeaderValue::from_str(&found.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        found.bytes.into_owned(),
    )
        .into_response();
    if found.gzpipped {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}
