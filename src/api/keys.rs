//! `POST /key-rotate` (admin): re-encrypts every stored secret with the newest configured key,
//! in small batches while tasks keep running (µTask needs maintenance mode for this; mutask does
//! not), and answers what was re-encrypted and which keys still seal data. `GET /key-rotate`
//! only reports the keys in use. Old keys can be removed from `MUTASK_ENCRYPTION_KEYS` once they
//! seal nothing.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, AppState, Caller};
use crate::store;

fn admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only admins may rotate keys".into()))
    }
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

pub async fn get(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    admin(&caller)?;
    Ok(Json(status(&state).await?))
}
