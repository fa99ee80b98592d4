//! Inbound webhooks: `POST/GET /webhook`, `GET/DELETE /webhook/{name}` (users), and
//! `POST /webhook/{name}` — the delivery, authenticated by its signature, not by a user.
//!
//! A webhook maps signed deliveries to tasks of one template: the body (JSON, or a form) becomes
//! task inputs through `input` (input name → JSON pointer into the body, `$body`, or a literal);
//! the task is created as the webhook's creator, through the same validation as `POST /task`,
//! tagged `mutask_webhook=<name>`. A bad or missing signature, or a stale timestamp, is 401 and
//! creates nothing; a replayed delivery is 409 and creates nothing. Secrets are sealed and never
//! answered. See docs/webhooks.md and [`crate::schedule::webhook`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ErrorBody;
use super::{ApiError, AppState, Caller, FieldError};
use crate::domain::{ResolutionId, TaskId};
use crate::schedule::webhook::{self as wh, AuthSpec};
use crate::store::{self, webhook::NewWebhook, webhook::WebhookRecord};
use crate::tasks::{self, CreateError, CreateRequest, Requester};

/// Tag given to every task a webhook creates.
pub const WEBHOOK_TAG: &str = "mutask_webhook";

/// Body of `POST /webhook`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "on-push", "template_name": "hello-world", "auth": "github", "secret": "change me", "input": {"name": "/pusher/name"}}))]
pub struct CreateWebhook {
    /// Lower-case letters, digits, `.`, `_`, `-` (at most 100): the delivery URL is
    /// `POST /webhook/<name>`.
    pub name: String,
    pub template_name: String,
    /// `github`, `sourcehut` or `hmac-sha256`.
    pub auth: String,
    /// The HMAC key (`github`, `hmac-sha256`), or sourcehut's base64 ed25519 public key.
    pub secret: String,
    /// `hmac-sha256`: the signature header (default `X-Mutask-Sign`).
    #[serde(default)]
    pub header: Option<String>,
    /// `hmac-sha256`: a header carrying unix seconds, signed as `<timestamp>.<body>`; deliveries
    /// outside `replay_window` are refused.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Seconds (default 300).
    #[serde(default)]
    pub replay_window: Option<i32>,
    /// Task input name → JSON pointer into the body (`/repository/full_name`), `$body`, or a
    /// literal value.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Map<String, Value>>,
}

/// A webhook as answered (never its secret) (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct Webhook {
    pub id: uuid::Uuid,
    pub name: String,
    pub template_name: String,
    pub auth: String,
    pub header: String,
    #[schema(required = true)]
    pub timestamp_header: Option<String>,
    pub replay_window: i32,
    #[schema(value_type = Object)]
    pub input: Value,
    /// The delivery path.
    pub url: String,
    pub created_by: String,
    pub created: chrono::DateTime<chrono::Utc>,
}

fn answer(w: &WebhookRecord) -> Value {
    json!({
        "id": w.id, "name": w.name, "template_name": w.template_name, "auth": w.auth,
        "header": w.header, "timestamp_header": w.timestamp_header,
        "replay_window": w.replay_window, "input": w.input_map,
        "url": format!("/webhook/{}", w.name), "created_by": w.created_by, "created": w.created,
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 100
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

fn requester(caller: &Caller) -> Requester {
    Requester {
        username: caller.username.clone(),
        groups: caller.groups.clone(),
        is_admin: caller.is_admin,
    }
}

async fn may_manage(state: &AppState, caller: &Caller, template: &str) -> Result<bool, ApiError> {
    if caller.is_admin {
        return Ok(true);
    }
    let (t, _) = tasks::load_template(&state.store, template)
        .await
        .map_err(super::task::create_error)?;
    Ok(tasks::is_template_owner(&requester(caller), &t))
}

async fn load(state: &AppState, name: &str) -> Result<WebhookRecord, ApiError> {
    let not_found = || ApiError::NotFound(format!("webhook `{}` not found", name.escape_debug()));
    if !valid_name(name) {
        return Err(not_found());
    }
    store::webhook::get(&state.store, name)
        .await?
        .ok_or_else(not_found)
}

/// Creates a webhook (admin or template owner).
#[utoipa::path(
    post,
    path = "/webhook",
    tag = "webhook",
    operation_id = "create_webhook",
    request_body(description = "The webhook (JSON or YAML).", content((CreateWebhook = "application/json"), (CreateWebhook = "application/x-yaml"))),
    responses(
        (status = 201, description = "Created.", body = Webhook),
        (status = 400, description = "Malformed body, or `timestamp_header` / `replay_window` given for a `github` or `sourcehut` webhook (they apply to `hmac-sha256` only).", body = ErrorBody),
        (status = 403, description = "Not an admin or an owner of the template.", body = ErrorBody),
        (status = 404, description = "No such template.", body = ErrorBody),
        (status = 409, description = "The name is taken.", body = ErrorBody),
        (status = 422, description = "Invalid fields (every problem listed).", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    super::body::Body(body): super::body::Body<CreateWebhook>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (template, _) = tasks::load_template(&state.store, &body.template_name)
        .await
        .map_err(super::task::create_error)?;
    if !caller.is_admin && !tasks::is_template_owner(&requester(&caller), &template) {
        return Err(ApiError::Forbidden(format!(
            "only admins and owners of template `{}` may add a webhook for it",
            template.name
        )));
    }
    // github and sourcehut sign without a timestamp: these would be silently ignored
    if matches!(body.auth.as_str(), "github" | "sourcehut") {
        for (field, given) in [
            ("timestamp_header", body.timestamp_header.is_some()),
            ("replay_window", body.replay_window.is_some()),
        ] {
            if given {
                return Err(ApiError::BadRequest(format!(
                    "`{field}` applies to hmac-sha256 webhooks only, not to `{}` ones",
                    body.auth
                )));
            }
        }
    }
    let mut fields = Vec::new();
    let mut bad = |field: &str, message: String| {
        fields.push(FieldError {
            field: field.into(),
            message,
        })
    };
    if !valid_name(&body.name) {
        bad(
            "name",
            "1 to 100 of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit".into(),
        );
    }
    if !["github", "sourcehut", "hmac-sha256"].contains(&body.auth.as_str()) {
        bad(
            "auth",
            format!("`{}` is not github, sourcehut or hmac-sha256", body.auth),
        );
    }
    if body.secret.len() < 8 || body.secret.len() > 4096 {
        bad("secret", "8 to 4096 bytes".into());
    }
    if body.auth == "sourcehut" {
        use base64::Engine as _;
        let ok = base64::engine::general_purpose::STANDARD
            .decode(body.secret.trim())
            .is_ok_and(|k| k.len() == 32);
        if !ok {
            bad(
                "secret",
                "sourcehut: the base64 ed25519 public key (32 bytes)".into(),
            );
        }
    }
    let header_ok = |h: &str| {
        !h.is_empty()
            && h.len() <= 100
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let hdr = body
        .header
        .clone()
        .unwrap_or_else(|| "X-Mutask-Sign".into());
    if !header_ok(&hdr) {
        bad("header", format!("`{hdr}` is not a header name"));
    }
    if let Some(t) = &body.timestamp_header
        && !header_ok(t)
    {
        bad("timestamp_header", format!("`{t}` is not a header name"));
    }
    let window = body.replay_window.unwrap_or(300);
    if !(1..=86_400).contains(&window) {
        bad("replay_window", "1 to 86400 seconds".into());
    }
    let input = body.input.clone().unwrap_or_default();
    for name in input.keys() {
        if !template.inputs.iter().any(|i| &i.name == name) {
            bad(
                &format!("input.{name}"),
                format!("template `{}` has no input `{name}`", template.name),
            );
        }
    }
    if !fields.is_empty() {
        let message = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ApiError::Invalid { message, fields });
    }
    let secret = if body.auth == "sourcehut" {
        body.secret.trim().as_bytes().to_vec()
    } else {
        body.secret.as_bytes().to_vec()
    };
    let rec = store::webhook::create(
        &state.store,
        &NewWebhook {
            name: &body.name,
            template_name: &template.name,
            auth: &body.auth,
            header: &hdr,
            timestamp_header: body.timestamp_header.as_deref(),
            replay_window: window,
            input_map: &Value::Object(input),
            secret: &secret,
        },
        &caller.username,
    )
    .await?;
    tracing::info!(webhook = %rec.name, by = %caller.username, auth = %rec.auth, "webhook created");
    Ok((StatusCode::CREATED, Json(answer(&rec))))
}

/// Lists the webhooks the caller may manage (never their secrets).
#[utoipa::path(
    get,
    path = "/webhook",
    tag = "webhook",
    operation_id = "list_webhooks",
    responses((status = 200, description = "Webhooks by name.", body = Vec<Webhook>)),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for w in store::webhook::list(&state.store).await? {
        if w.created_by == caller.username
            || may_manage(&state, &caller, &w.template_name)
                .await
                .unwrap_or(false)
        {
            out.push(answer(&w));
        }
    }
    Ok(Json(Value::Array(out)))
}

/// One webhook (admin, template owner or its creator; never its secret).
#[utoipa::path(
    get,
    path = "/webhook/{name}",
    tag = "webhook",
    operation_id = "get_webhook",
    params(("name" = String, Path, description = "Webhook name.")),
    responses(
        (status = 200, description = "The webhook.", body = Webhook),
        (status = 403, description = "Not allowed.", body = ErrorBody),
        (status = 404, description = "No such webhook.", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let w = load(&state, &name).await?;
    if w.created_by != caller.username && !may_manage(&state, &caller, &w.template_name).await? {
        return Err(ApiError::Forbidden(format!(
            "you may not see webhook `{name}`"
        )));
    }
    Ok(Json(answer(&w)))
}

/// Deletes a webhook (admin or template owner); its tasks stay.
#[utoipa::path(
    delete,
    path = "/webhook/{name}",
    tag = "webhook",
    operation_id = "delete_webhook",
    params(("name" = String, Path, description = "Webhook name.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "Not allowed.", body = ErrorBody),
        (status = 404, description = "No such webhook.", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let w = load(&state, &name).await?;
    if !may_manage(&state, &caller, &w.template_name).await? {
        return Err(ApiError::Forbidden(format!(
            "only admins and owners of template `{}` may delete this webhook",
            w.template_name
        )));
    }
    store::webhook::delete(&state.store, w.id).await?;
    tracing::info!(webhook = %name, by = %caller.username, "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A delivery: checks its signature, maps its body to task inputs and creates the task.
///
/// Not authenticated by a user: the signature is the credential (401 when it is missing, wrong
/// or stale — nothing is created). A delivery id already received is 409.
#[utoipa::path(
    post,
    path = "/webhook/{name}",
    tag = "webhook",
    operation_id = "deliver_webhook",
    params(("name" = String, Path, description = "Webhook name.")),
    request_body(description = "The sender's payload (JSON, YAML, or a form).", content((Object = "application/json"), (Object = "application/x-yaml"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 202, description = "Task created: `{\"task_id\": …}`.", body = Object),
        (status = 400, description = "The body is not JSON or a form.", body = ErrorBody),
        (status = 401, description = "Missing, wrong or stale signature.", body = ErrorBody),
        (status = 404, description = "No such webhook.", body = ErrorBody),
        (status = 409, description = "This delivery was already received.", body = ErrorBody),
        (status = 422, description = "The mapped inputs are invalid for the template.", body = ErrorBody),
    ),
)]
pub async fn deliver(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    super::body::RawBody(body): super::body::RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let w = load(&state, &name).await?;
    let hdrs: wh::Headers = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let spec = AuthSpec {
        kind: &w.auth,
        secret: &w.secret,
        header: &w.header,
        timestamp_header: w.timestamp_header.as_deref(),
        replay_window_secs: i64::from(w.replay_window),
    };
    let delivery =
        wh::verify(&spec, &hdrs, &body, chrono::Utc::now().timestamp()).map_err(|e| {
            tracing::warn!(webhook = %name, error = %e, "webhook delivery refused");
            ApiError::UnauthorizedBecause(format!("webhook delivery refused: {e}"))
        })?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let payload = wh::body_json(ct, &body).map_err(ApiError::BadRequest)?;
    let map = match &w.input_map {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let input = wh::map_inputs(&map, &payload);
    let who = Requester {
        username: w.created_by.clone(),
        groups: Vec::new(),
        is_admin: state.auth.admins.contains(&w.created_by),
    };
    // as `POST /task`: created claimed here when this instance has a free slot
    let ids = (TaskId::new(), ResolutionId::new());
    let slot = super::task::claim_here(&state, ids.1);
    let req = CreateRequest {
        template_name: w.template_name.clone(),
        input,
        tags: [(WEBHOOK_TAG.to_string(), w.name.clone())]
            .into_iter()
            .collect(),
        ids: Some(ids),
        claim: slot.as_ref().map(|s| s.claim()),
        ..Default::default()
    };
    let created = match tasks::prepare(&state.store, &state.renderer, &who, req).await {
        Err(e) => Err(e),
        Ok(p) => match store::webhook::deliver(
            &state.store,
            &w,
            &delivery,
            &p.task,
            p.resolution.as_ref(),
            p.comment.as_ref(),
        )
        .await
        {
            Ok(Some(at)) => Ok(tasks::created(p, at)),
            Err(e) => Err(CreateError::Store(e)),
            Ok(None) => {
                // a replay: nothing was written (the slot is freed, the announcement withdrawn)
                if let (None, Some(hint)) = (&slot, &state.claim_hint) {
                    hint.withdraw(ids.1);
                }
                return Err(ApiError::Conflict(format!(
                    "delivery `{delivery}` was already received"
                )));
            }
        },
    };
    let created = super::task::started(&state, ids.1, slot, created)?;
    let task = created.task.id;
    tracing::info!(webhook = %name, %task, %delivery, "webhook delivery created a task");
    Ok((StatusCode::ACCEPTED, Json(json!({"task_id": task}))))
}
