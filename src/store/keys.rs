//! `encryption_key`: metadata of the keys that have sealed data (ids and dates, never key bytes).
//!
//! At startup every configured key id is recorded. If the database knows a key id that is not
//! in the configured ring and data still uses it, startup is refused with a message naming the
//! missing key, rather than failing later on the first decrypt.
//!
//! Every running instance keeps its keys' `last_seen` fresh (with its heartbeat, at most once a
//! minute). A key that no ring has held for [`RETIRE_AFTER_SECS`] and that seals nothing when a
//! start looks for it is marked retired: later starts do not look for it again. Configuring it
//! again clears the mark, at a start or with the heartbeat of an instance that holds it.

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
         ON CONFLICT (id) DO UPDATE SET last_seen = now(), retired_at = NULL",
    )
    .bind(&ids)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// A key whose `last_seen` is older than this is in no running instance's ring (each refreshes
/// its keys every minute; see [`super::instance::heartbeat`]).
pub const RETIRE_AFTER_SECS: i64 = 300;

/// Checks the recorded keys missing from the ring (a start does): returns the ids of those that
/// sealed at least one stored task input, and marks retired those found unused and held by no
/// running instance (they are not looked for again).
///
/// Only keys the database has recorded (every configured key is, at startup) and that are now
/// missing from the ring are looked for in the stored inputs, so a usual start reads one small
/// table however many tasks are kept. A stored value whose header is not a well-formed key id
/// (a damaged row) matches no key: it is left to fail where it is read, naming its task.
pub async fn check_missing_keys(store: &Store) -> Result<Vec<String>, StoreError> {
    let ids: Vec<String> = store
        .keys
        .key_ids()
        .into_iter()
        .map(str::to_string)
        .collect();
    let gone: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM encryption_key
              WHERE NOT (id = ANY($1)) AND retired_at IS NULL ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(&store.pool)
    .await?;
    if gone.is_empty() {
        return Ok(gone);
    }
    // header: [version][id length][id bytes]…; compared as bytes, so no row can make the
    // statement fail (a short or non-UTF-8 header is simply no match)
    let in_use: Vec<String> = sqlx::query_scalar(
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
    .await?;
    let unused: Vec<&String> = gone.iter().filter(|k| !in_use.contains(k)).collect();
    if !unused.is_empty() {
        sqlx::query(
            "UPDATE encryption_key SET retired_at = now()
              WHERE id = ANY($1) AND retired_at IS NULL
                AND last_seen < now() - make_interval(secs => $2)",
        )
        .bind(unused)
        .bind(RETIRE_AFTER_SECS as f64)
        .execute(&store.pool)
        .await?;
    }
    Ok(in_use)
}
