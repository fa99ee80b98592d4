//! Connection pool and migrations.
//!
//! Migrations are embedded at compile time (`migrations/`, see `build.rs`) and applied under a
//! PostgreSQL advisory lock, so several instances starting at once on one database serialize:
//! the first applies them, the others wait and then find nothing left to do.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::StoreError;

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Advisory lock key taken while migrating (`'mutask'` as bytes).
const MIGRATION_LOCK: i64 = 0x6d75_7461_736b;

/// Pool sizing and timeouts.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 20,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Parses a database URL.
pub fn options_from_url(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url).map_err(StoreError::Db)
}

/// Opens a pool. Every connection sets `application_name` and a statement timeout guard for
/// idle transactions, so a stuck client can never hold row locks for long.
pub async fn connect(
    options: PgConnectOptions,
    settings: &PoolSettings,
) -> Result<PgPool, StoreError> {
    let options = options.application_name("mutask").options([
        ("idle_in_transaction_session_timeout", "60s"),
        ("lock_timeout", "30s"),
    ]);
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Applies pending migrations, serialized across instances by an advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = MIGRATOR.run(&mut *conn).await;
    let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    result.map_err(|e| StoreError::Migrate(e.to_string()))?;
    unlock?;
    Ok(())
}

/// True when every embedded migration is applied (readiness).
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, StoreError> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    Ok(applied.unwrap_or(0) >= latest)
}

/// `SELECT 1`.
pub async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
