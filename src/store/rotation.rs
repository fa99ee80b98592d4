//! Key rotation: re-seals every stored secret with the newest key of the ring, in small
//! batches, while the system keeps running.
//!
//! Each batch locks at most `batch` rows of one table (`FOR UPDATE SKIP LOCKED`, so a row being
//! written by a running cycle is simply picked up by a later batch), opens each sealed column
//! with whichever configured key sealed it, seals it again with the newest key (same AAD: table,
//! column, row), and commits. Values already sealed with the newest key are left alone, so the
//! rotation can be interrupted and resumed at any time. Once [`keys_in_use`] lists only the
//! newest key, the old keys can be removed from the configuration.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::crypto::Aad;

use super::{Store, StoreError};

/// A table with sealed columns, and the SQL expression of the row id bound in its AAD.
struct Sealed {
    table: &'static str,
    /// Expression giving the AAD row id (text).
    row: &'static str,
    /// Primary key columns used to address a row.
    key: &'static [&'static str],
    columns: &'static [&'static str],
}

const SEALED: &[Sealed] = &[
    Sealed {
        table: "task",
        row: "id::text",
        key: &["id"],
        columns: &["input_enc", "title_enc", "result_enc", "status_hook_enc"],
    },
    Sealed {
        table: "resolution",
        row: "id::text",
        key: &["id"],
        columns: &["resolver_input_enc"],
    },
    Sealed {
        table: "step",
        row: "resolution_id::text || '/' || name",
        key: &["resolution_id", "name"],
        columns: &[
            "definition_enc",
            "output_enc",
            "metadata_enc",
            "error_enc",
            "children_enc",
        ],
    },
    Sealed {
        table: "task_comment",
        row: "id::text",
        key: &["id"],
        columns: &["body_enc"],
    },
    Sealed {
        table: "callback",
        row: "id::text",
        key: &["id"],
        columns: &["secret_enc", "schema_enc", "body_enc"],
    },
    Sealed {
        table: "schedule",
        row: "id::text",
        key: &["id"],
        columns: &["input_enc"],
    },
    Sealed {
        table: "notification",
        row: "id::text",
        key: &["id"],
        columns: &["payload_enc"],
    },
    Sealed {
        table: "step_log",
        row: "resolution_id::text || '/' || step_name || '/' || execution::text || '/' || chunk::text",
        key: &["resolution_id", "step_name", "execution", "chunk"],
        columns: &["lines_enc"],
    },
    Sealed {
        table: "webhook",
        row: "id::text",
        key: &["id"],
        columns: &["secret_enc"],
    },
];

/// SQL: the key id of a sealed value (`[version][id length][id]…`).
fn key_id_sql(column: &str) -> String {
    format!("convert_from(substring({column} FROM 3 FOR get_byte({column}, 1)), 'UTF8')")
}

/// Number of values re-sealed per table.
pub type Progress = BTreeMap<&'static str, u64>;

/// Re-seals every value not sealed with the newest key; returns how many were re-sealed.
pub async fn rotate(store: &Store, batch: i64) -> Result<Progress, StoreError> {
    let current = store.keys.current_key_id().to_string();
    let mut progress = Progress::new();
    for s in SEALED {
        let stale = s
            .columns
            .iter()
            .map(|c| format!("({c} IS NOT NULL AND {} <> $1)", key_id_sql(c)))
            .collect::<Vec<_>>()
            .join(" OR ");
        let select = format!(
            "SELECT {row} AS aad_row, {keys}, {cols} FROM {table} WHERE {stale} LIMIT $2 FOR UPDATE SKIP LOCKED",
            row = s.row,
            keys = s.key.join(", "),
            cols = s.columns.join(", "),
            table = s.table,
        );
        let set = s
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let wher = s
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} = ${}", s.columns.len() + i + 1))
            .collect::<Vec<_>>()
            .join(" AND ");
        let update = format!("UPDATE {} SET {set} WHERE {wher}", s.table);
        loop {
            let mut tx = store.pool.begin().await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
                .bind(&current)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
            if rows.is_empty() {
                tx.commit().await?;
                break;
            }
            for r in &rows {
                let aad_row: String = r.try_get("aad_row")?;
                let mut q = sqlx::query(sqlx::AssertSqlSafe(update.clone()));
                for c in s.columns {
                    let v: Option<Vec<u8>> = r.try_get(*c)?;
                    let resealed = match v {
                        Some(v) if store.keys.needs_rotation(&v) => {
                            let aad = Aad {
                                table: s.table,
                                column: c,
                                row: &aad_row,
                            };
                            let plain = store.keys.open(aad, &v)?;
                            Some(store.keys.seal(aad, &plain)?)
                        }
                        other => other,
                    };
                    q = q.bind(resealed);
                }
                for k in s.key {
                    // keys are uuid or text columns
                    if *k == "name" {
                        q = q.bind(r.try_get::<String, _>(*k)?);
                    } else {
                        q = q.bind(r.try_get::<uuid::Uuid, _>(*k)?);
                    }
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            *progress.entry(s.table).or_default() += rows.len() as u64;
        }
    }
    Ok(progress)
}

/// Every key id that seals at least one stored value, with the number of values.
pub async fn keys_in_use(store: &Store) -> Result<BTreeMap<String, i64>, StoreError> {
    let mut out = BTreeMap::new();
    for s in SEALED {
        for c in s.columns {
            let sql = format!(
                "SELECT {k} AS key_id, count(*) AS n FROM {t} WHERE {c} IS NOT NULL GROUP BY 1",
                k = key_id_sql(c),
                t = s.table
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&store.pool)
                .await?;
            for r in rows {
                let id: String = r.try_get("key_id")?;
                let n: i64 = r.try_get("n")?;
                *out.entry(id).or_insert(0) += n;
            }
        }
    }
    Ok(out)
}
