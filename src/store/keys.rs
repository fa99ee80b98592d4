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
///
/// Only keys the database has recorded (every configured key is, at startup) and that are now
/// missing from the ring are looked for in the stored inputs, so a usual start reads one small
/// table however many tasks are kept. A stored value whose header is not a well-formed key id
/// (a damaged row) matches no key: it is left to fail where it is read, naming its task.
pub async fn missing_in_use(store: &Store) -> Result<Vec<String>, StoreError> {
    let ids: Vec<String> = store
        .keys
        .key_ids()
        .into_iter()
        .map(str::to_string)
        .collect();
    let gone: Vec<String> =
        sqlx::query_scalar("SELECT id FROM encryption_key WHERE NOT (id = ANY($1)) ORDER BY id")
            .bind(&ids)
            .fetch_all(&store.pool)
            .await?;
    if gone.is_empty() {
        return Ok(gone);
    }
    // header: [version][id length][id bytes]…; compared as bytes, so no row can make the
    // statement fail (a short or non-UTF-8 header is simply no match)
    Ok(sqlx::query_scalar(
        "SELECT k.id FROM unnest($1::text[]) AS k(id)
          WHERE EXISTS (
                SELECT 1 FROM task t
                 WHERE CASE WHEN length(t.input_enc) >= 2 + octet_length(convert_to(k.id, 'UTF8'))
                            THEN get_byte(t.input_enc, 1) = octet_length(convert_to(k.id, 'UTF8'))
                                 AND substring(t.input_enc FROM 3
                                               FOR octet_length(convert_to(k.id, 'UTF8')))
                                     = convert_to(k.id, 'UTF8')
                            ELSE false END)
          ORDER BY k.id",
    )
    .bind(&gone)
    .fetch_all(&store.pool)
    .await?)
}
