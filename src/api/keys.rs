//! `POST /key-rotate` (admin): re-encrypts every stored secret with the newest configured key,
//! in small batches while tasks keep running (µTask needs maintenance mode for this; mutask does
//! not), and answers what was re-encrypted and which keys still seal data. `GET /key-rotate`
//! only reports the keys in use. Old keys can be removed from `MUTASK_ENCRYPTION_KEYS` once they
//! seal nothing.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use std::collections::BTreeMap;

use super::error::ErrorBody;
use super::{ApiError, AppState, Caller};
use crate::store;

fn admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only admins may rotate keys".into()))
    }
}

/// The answer of `GET /key-rotate` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct KeyStatus {
    /// The key that seals new values.
    pub newest_key: String,
    /// Every key id of `MUTASK_ENCRYPTION_KEYS`.
    pub configured_keys: Vec<String>,
    /// Number of stored values sealed by each key id.
    pub keys_in_use: BTreeMap<String, i64>,
    /// Only the newest key seals data: older keys can be removed.
    pub complete: bool,
}

/// The answer of `POST /key-rotate` (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct KeyRotation {
    #[serde(flatten)]
    pub status: KeyStatus,
    /// Number of values re-sealed, per table.
    pub re_encrypted: BTreeMap<String, u64>,
}

async fn status(state: &AppState) -> Result<Value, ApiError> {
    let in_use = store::rotation::keys_in_use(&state.store).await?;
    let configured = state.store.keys.key_ids();
    Ok(json!({
        "newest_key": state.store.keys.current_key_id(),
        "configured_keys": configured,
        "keys_in_use": in_use,
        "complete": in_use.keys().all(|k| k == state.store.keys.current_key_id()),
    }))
}

/// Re-encrypts every stored secret with the newest key, while tasks keep running (admins only).
#[utoipa::path(
    post,
    path = "/key-rotate",
    tag = "admin",
    operation_id = "rotate_keys",
    responses(
        (status = 200, description = "What was re-encrypted, and which keys still seal data.", body = KeyRotation),
        (status = 403, description = "Only admins may rotate keys.", body = ErrorBody),
    ),
)]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    admin(&caller)?;
    let progress = store::rotation::rotate(&state.store, 500).await?;
    tracing::info!(user = %caller.username, ?progress, "key rotation done");
    let mut body = status(&state).await?;
    body["re_encrypted"] = json!(progress);
    Ok(Json(body))
}

/// Which keys seal stored data (admins only).
#[utoipa::path(
    get,
    path = "/key-rotate",
    tag = "admin",
    operation_id = "key_status",
    responses(
        (status = 200, description = "The keys in use.", body = KeyStatus),
        (status = 403, description = "Only admins may rotate keys.", body = ErrorBody),
    ),
)]
pub async fn get(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    admin(&caller)?;
    Ok(Json(status(&state).await?))
}
