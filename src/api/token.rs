//! API tokens for machine clients (admins only): `POST /token`, `GET /token`,
//! `DELETE /token/{id}`.
//!
//! A token acts as the user (and groups) it names, with that user's rights — an admin token when
//! the user is in `MUTASK_ADMIN_USERNAMES`. Clients send `Authorization: Bearer <token>`. The
//! token text is answered once, at creation; only the SHA-256 of its secret is stored, so a lost
//! token is revoked and replaced, never recovered. Revocation takes effect on the next request
//! on every instance (tokens are looked up in the database, not cached).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::error::ErrorBody;
use super::resolution::parse_id;
use super::{ApiError, AppState, Caller, FieldError};
use crate::store::{self, token::NewToken};

fn admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only admins may manage API tokens".into(),
        ))
    }
}

/// Body of `POST /token`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    /// What the token is for (shown in lists).
    #[schema(example = "ci-pipeline")]
    pub name: String,
    /// The user the token acts as (default: the caller).
    #[serde(default)]
    pub username: Option<String>,
    /// Groups the token's caller belongs to (for template and task group rules).
    #[serde(default)]
    pub groups: Vec<String>,
    /// When the token stops working (RFC 3339); never when absent.
    #[serde(default)]
    pub expires: Option<DateTime<Utc>>,
}

/// A token as listed: never its secret (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct ApiToken {
    pub id: uuid::Uuid,
    pub name: String,
    pub username: String,
    pub groups: Vec<String>,
    pub created_by: String,
    pub created: DateTime<Utc>,
    #[schema(required = true)]
    pub expires: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_used: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub revoked: Option<DateTime<Utc>>,
}

/// The answer of `POST /token`: the token once, with its description (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct CreatedToken {
    /// Send as `Authorization: Bearer <token>`. Shown only in this answer.
    #[schema(example = "mtk_0191f0c2a8b07c3e9d2f4a5b6c7d8e9f_3q2-7w…")]
    pub token: String,
    #[serde(flatten)]
    pub description: ApiToken,
}

fn check_name(field: &str, value: &str, fields: &mut Vec<FieldError>) {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
        fields.push(FieldError {
            field: field.into(),
            message: format!("`{field}` must be 1 to 200 printable characters"),
        });
    }
}

/// Creates a token (admin). The answer carries the token; it is not shown again.
#[utoipa::path(
    post,
    path = "/token",
    tag = "admin",
    operation_id = "create_token",
    request_body(description = "The token to create (JSON or YAML).", content((CreateTokenBody = "application/json"), (CreateTokenBody = "application/x-yaml"))),
    responses(
        (status = 201, description = "Created; `token` is shown only now.", body = CreatedToken),
        (status = 400, description = "Malformed body.", body = ErrorBody),
        (status = 403, description = "Not an admin.", body = ErrorBody),
        (status = 422, description = "Invalid name, user, groups or expiry (every problem listed).", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<CreateTokenBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin(&caller)?;
    let mut fields = Vec::new();
    check_name("name", &body.name, &mut fields);
    let username = body
        .username
        .as_deref()
        .map(str::trim)
        .unwrap_or(&caller.username)
        .to_string();
    check_name("username", &username, &mut fields);
    for (i, g) in body.groups.iter().enumerate() {
        check_name(&format!("groups[{i}]"), g, &mut fields);
    }
    if body.groups.len() > 100 {
        fields.push(FieldError {
            field: "groups".into(),
            message: "at most 100 groups".into(),
        });
    }
    if body.expires.is_some_and(|e| e <= Utc::now()) {
        fields.push(FieldError {
            field: "expires".into(),
            message: "`expires` is in the past".into(),
        });
    }
    if !fields.is_empty() {
        return Err(ApiError::Invalid {
            message: fields
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            fields,
        });
    }
    let groups: Vec<String> = body.groups.iter().map(|g| g.trim().to_string()).collect();
    let id = uuid::Uuid::now_v7();
    let (token, hash) = super::auth::new_token(id)
        .map_err(|e| ApiError::internal(format!("random generator: {e}")))?;
    let rec = store::token::create(
        &state.store,
        &NewToken {
            id,
            name: body.name.trim(),
            username: &username,
            groups: &groups,
            secret_hash: &hash,
            created_by: &caller.username,
            expires: body.expires,
        },
    )
    .await?;
    tracing::info!(token = %id, user = %username, by = %caller.username, "API token created");
    let mut answer = serde_json::to_value(&rec).map_err(ApiError::internal)?;
    answer["token"] = Value::String(token);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Lists every token, revoked ones included (admin). Secrets are never shown.
#[utoipa::path(
    get,
    path = "/token",
    tag = "admin",
    operation_id = "list_tokens",
    responses(
        (status = 200, description = "Tokens, newest first.", body = Vec<ApiToken>),
        (status = 403, description = "Not an admin.", body = ErrorBody),
    ),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    admin(&caller)?;
    let rows = store::token::list(&state.store).await?;
    Ok(Json(json!(rows)))
}

/// Revokes a token (admin): it stops working at once on every instance.
#[utoipa::path(
    delete,
    path = "/token/{id}",
    tag = "admin",
    operation_id = "revoke_token",
    params(("id" = uuid::Uuid, Path, description = "Token id (the hex digits after `mtk_`, or the listed id).")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, description = "Malformed id.", body = ErrorBody),
        (status = 403, description = "Not an admin.", body = ErrorBody),
        (status = 404, description = "No such token, or already revoked.", body = ErrorBody),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin(&caller)?;
    let id: uuid::Uuid = parse_id(&id, "token")?;
    if store::token::revoke(&state.store, id).await? {
        tracing::info!(token = %id, by = %caller.username, "API token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "token {id} not found (or already revoked)"
        )))
    }
}
