//! `api_token`: bearer tokens for machine clients.
//!
//! Invariants: only the SHA-256 of a token's secret is stored; a revoked or expired token never
//! authenticates (checked in the lookup query, not by the caller); revocation is one guarded
//! UPDATE (`revoked IS NULL`), so revoking twice reports "not found" the second time.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    pub username: String,
    pub groups: Vec<String>,
    pub created_by: String,
    pub created: DateTime<Utc>,
    pub expires: Option<DateTime<Utc>>,
    pub last_used: Option<DateTime<Utc>>,
    pub revoked: Option<DateTime<Utc>>,
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub username: &'a str,
    pub groups: &'a [String],
    pub secret_hash: &'a [u8; 32],
    pub created_by: &'a str,
    pub expires: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, name, username, groups, created_by, created, expires, last_used, revoked"
    };
}

pub async fn create(store: &Store, t: &NewToken<'_>) -> Result<TokenRecord, StoreError> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO api_token (id, name, username, groups, secret_hash, created_by, expires)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
        columns!()
    ))
    .bind(t.id)
    .bind(t.name)
    .bind(t.username)
    .bind(t.groups)
    .bind(&t.secret_hash[..])
    .bind(t.created_by)
    .bind(t.expires)
    .fetch_one(&store.pool)
    .await?)
}

/// Every token, newest first (revoked ones included, marked).
pub async fn list(store: &Store) -> Result<Vec<TokenRecord>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM api_token ORDER BY created DESC, id"
    ))
    .fetch_all(&store.pool)
    .await?)
}

/// A token that may authenticate, with its secret hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UsableToken {
    #[sqlx(flatten)]
    pub record: TokenRecord,
    pub secret_hash: Vec<u8>,
}

/// A usable token (not revoked, not expired), for authentication.
pub async fn usable(store: &Store, id: Uuid) -> Result<Option<UsableToken>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        ", secret_hash FROM api_token
          WHERE id = $1 AND revoked IS NULL AND (expires IS NULL OR expires > now())"
    ))
    .bind(id)
    .fetch_optional(&store.pool)
    .await?)
}

/// Records a use, at most once a minute per token (a read-mostly path stays read-mostly).
pub async fn touch(store: &Store, id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE api_token SET last_used = now()
          WHERE id = $1 AND (last_used IS NULL OR last_used < now() - interval '1 minute')",
    )
    .bind(id)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Revokes a token; false when there is no such unrevoked token.
pub async fn revoke(store: &Store, id: Uuid) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("UPDATE api_token SET revoked = now() WHERE id = $1 AND revoked IS NULL")
            .bind(id)
            .execute(&store.pool)
            .await?
            .rows_affected()
            == 1,
    )
}
