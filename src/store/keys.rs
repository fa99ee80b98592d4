//! `encryption_key`: metadata of the keys that have sealed data (ids and dates, never key bytes).
//!
//! At startup every configured key id is recorded. If the database knows a key id that is not
//! in the configured ring and data still uses it, startup is refused with a message naming the
//! missing key, rather than failing later on the first decrypt.

use super::{Store, StoreError};

/// Records the configured key ids as seen now.
pub async fn record_configured(store: &Store) -> Result<(), StoreError> {
    let ids: Vec<String> = store
        .keys
        .key_ids()
        .into_iter()
        .map(str::to_string)
        .collect();
    sqlx::query(
        "INSERT INTO encryption_key (id) SELECT unnest($1::text[])
         ON CONFLICT (id) DO UPDATE SET last_seen = now()",
    )
    .bind(&ids)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Key ids that sealed at least one stored task input but are not configured.
pub async fn missing_in_use(store: &Store) -> Result<Vec<String>, StoreError> {
    let ids: Vec<String> = store
        .keys
        .key_ids()
        .into_iter()
        .map(str::to_string)
        .collect();
    // header: [version][id length][id bytes]…
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT convert_from(substring(input_enc FROM 3 FOR get_byte(input_enc, 1)), 'UTF8')
         FROM task WHERE NOT (convert_from(substring(input_enc FROM 3 FOR get_byte(input_enc, 1)), 'UTF8') = ANY($1))",
    )
    .bind(&ids)
    .fetch_all(&store.pool)
    .await?;
    Ok(rows)
}
