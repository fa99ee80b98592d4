//! Test support (not part of the product API): every test gets a fresh, empty database of its
//! own, so unit tests and integration tests run in parallel against a real PostgreSQL.
//!
//! Where the databases live:
//! - `DATABASE_URL` set: on that server (the URL's database is used to run `CREATE DATABASE`).
//! - otherwise: on a **shared test cluster** at `<crate>/target/test-pg`, an
//!   [`EmbeddedPostgres`](crate::store::embedded::EmbeddedPostgres) (so running as root works the
//!   same way as in production), non-durable (`fsync` off: throwaway data), independent of any
//!   system PostgreSQL on port 5432. The first test process that needs it starts it, under an
//!   exclusive `flock` on `target/test-pg.lock`; every other process (cargo runs several test
//!   binaries, nextest one process per test) finds it running and reuses it.
//!
//! The shared cluster **stays running after the tests**, so the next run starts instantly. Stop
//! it with [`stop_shared_cluster`], or from the shell with `pg_ctl -D target/test-pg/pg stop`
//! (as the `postgres` user if you are root: `su postgres -s /bin/sh -c '…'`); `cargo clean`
//! after stopping removes it. Databases are named `mutask_test_<uuid v7>`; the first test
//! process of a run drops those older than [`STALE_AFTER`] that nobody is connected to, so
//! the cluster does not grow without bound.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::store::embedded::{self, EmbeddedError, EmbeddedOptions, EmbeddedPostgres};

/// Test databases older than this are dropped when a new test run starts.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

const NAME_PREFIX: &str = "mutask_test_";

/// A fresh, empty database for one test.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// The database name (`mutask_test_<uuid>`).
    pub name: String,
    /// Options connecting to it.
    pub options: PgConnectOptions,
    /// The same as a URL, e.g. for `MUTASK_DATABASE_URL` of a spawned `mutask` process.
    pub url: String,
}

/// The server test databases are created on.
enum Server {
    External {
        url: String,
        admin: PgConnectOptions,
    },
    Embedded(EmbeddedPostgres),
}

impl Server {
    fn admin_options(&self) -> PgConnectOptions {
        match self {
            Server::External { admin, .. } => admin.clone(),
            Server::Embedded(cluster) => cluster.connect_options("postgres"),
        }
    }

    fn database(&self, name: &str) -> TestDb {
        let (options, url) = match self {
            Server::External { url, admin } => {
                (admin.clone().database(name), with_database(url, name))
            }
            Server::Embedded(cluster) => (cluster.connect_options(name), cluster.url(name)),
        };
        TestDb {
            name: name.to_string(),
            options,
            url,
        }
    }
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

/// `<crate>/target/test-pg`: the shared test cluster's data dir.
pub fn shared_cluster_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("test-pg")
}

fn shared_cluster_options() -> EmbeddedOptions {
    EmbeddedOptions {
        durable: false,
        ..EmbeddedOptions::new(shared_cluster_dir())
    }
}

async fn server() -> &'static Server {
    SERVER
        .get_or_init(|| async {
            match connect_server().await {
                Ok(server) => server,
                Err(message) => panic!("{message}"),
            }
        })
        .await
}

async fn connect_server() -> Result<Server, String> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.trim().is_empty()
    {
        let admin = PgConnectOptions::from_str(&url)
            .map_err(|e| format!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
        drop_stale_databases(&admin).await;
        return Ok(Server::External { url, admin });
    }
    let dir = shared_cluster_dir();
    let lock_path = dir.with_extension("lock");
    let fail = |e: EmbeddedError| {
        format!(
            "could not start the shared test PostgreSQL cluster in {}: {e}\n\
             (or set DATABASE_URL to a PostgreSQL server the tests may create databases on)",
            dir.display()
        )
    };
    if let Some(parent) = lock_path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("could not create {}: {e}", parent.display()))?;
    }
    let _lock = embedded::lock_file(&lock_path).await.map_err(fail)?;
    let cluster = EmbeddedPostgres::start_with(shared_cluster_options())
        .await
        .map_err(fail)?;
    drop_stale_databases(&cluster.connect_options("postgres")).await;
    Ok(Server::Embedded(cluster))
}

/// A new empty database. Panics, with the cause, when no server is usable.
pub async fn test_db() -> TestDb {
    let server = server().await;
    let name = format!("{NAME_PREFIX}{}", Uuid::now_v7().simple());
    if let Err(e) = create_database(&server.admin_options(), &name).await {
        panic!("could not create test database {name}: {e}");
    }
    server.database(&name)
}

/// A pool (at most 5 connections) on a new empty database.
pub async fn test_pool() -> (PgPool, TestDb) {
    let db = test_db().await;
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .connect_with(db.options.clone())
        .await
        .unwrap_or_else(|e| panic!("could not connect to test database {}: {e}", db.name));
    (pool, db)
}

/// Stops the shared test cluster if it runs; returns whether it was running.
pub async fn stop_shared_cluster() -> Result<bool, EmbeddedError> {
    let _lock = embedded::lock_file(&shared_cluster_dir().with_extension("lock")).await?;
    EmbeddedPostgres::stop_existing(&shared_cluster_options()).await
}

/// Errors worth another try when many tests create databases at once.
fn is_transient(err: &sqlx::Error) -> bool {
    match embedded::db_code(err).as_deref() {
        // object_in_use (template busy), too_many_connections, serialization, deadlock,
        // cannot_connect_now (server starting).
        Some("55006" | "53300" | "40001" | "40P01" | "57P03") => true,
        Some(_) => false,
        None => matches!(err, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut),
    }
}

async fn create_database(admin: &PgConnectOptions, name: &str) -> Result<(), sqlx::Error> {
    // template0 is never connected to, so concurrent CREATE DATABASEs do not collide on it.
    let sql = format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(name));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let mut conn = PgConnection::connect_with(admin).await?;
            let created = sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
            created.map(|_| ())
        }
        .await;
        match result {
            Err(e) if attempt < 10 && is_transient(&e) => {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// Best effort: drops `mutask_test_*` databases older than [`STALE_AFTER`]. A database in use
/// cannot be dropped (no `FORCE`), and is simply left.
async fn drop_stale_databases(admin: &PgConnectOptions) {
    let Ok(mut conn) = PgConnection::connect_with(admin).await else {
        return;
    };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(NAME_PREFIX)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    let now = SystemTime::now();
    for name in names {
        let stale = created_at(&name)
            .and_then(|created| now.duration_since(created).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if stale {
            let sql = format!("DROP DATABASE IF EXISTS {}", quote_ident(&name));
            let _ = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
        }
    }
    let _ = conn.close().await;
}

/// When a `mutask_test_<uuid v7>` database was named.
fn created_at(name: &str) -> Option<SystemTime> {
    let uuid = Uuid::parse_str(name.strip_prefix(NAME_PREFIX)?).ok()?;
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `url` with its database replaced by `database` (query and credentials kept, any
/// `dbname=` parameter dropped).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let query: Vec<&str> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|pair| !pair.is_empty() && !pair.starts_with("dbname="))
        .collect();
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest
                .split_once('/')
                .map_or(rest, |(authority, _)| authority);
            format!("{scheme}://{authority}/{database}")
        }
        None => base.to_string(),
    };
    if query.is_empty() {
        base
    } else {
        format!("{base}?{}", query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_new_database() {
        assert_eq!(
            with_database("postgres://u:p@db:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@db:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@db", "t1"), "postgres://u@db/t1");
        assert_eq!(
            with_database("postgresql://u@localhost/x?host=/run/pg&dbname=x", "t1"),
            "postgresql://u@localhost/t1?host=/run/pg"
        );
    }

    #[test]
    fn names_carry_their_creation_time() {
        let name = format!("{NAME_PREFIX}{}", Uuid::now_v7().simple());
        assert!(name.len() < 63, "fits NAMEDATALEN");
        let age = SystemTime::now()
            .duration_since(created_at(&name).unwrap())
            .unwrap_or_default();
        assert!(age < Duration::from_secs(5));
        assert_eq!(created_at("mutask_test_nope"), None);
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[tokio::test]
    async fn every_call_gets_its_own_working_database() {
        let (a, b) = tokio::join!(test_db(), test_db());
        assert_ne!(a.name, b.name);
        for db in [&a, &b] {
            let from_url = PgConnectOptions::from_str(&db.url).expect("url parses");
            for options in [&db.options, &from_url] {
                let mut conn = PgConnection::connect_with(options)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {}: {e}", db.url));
                let current: String = sqlx::query_scalar("SELECT current_database()")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(current, db.name);
                conn.close().await.unwrap();
            }
        }
        let (pool, db) = test_pool().await;
        sqlx::query("CREATE TABLE only_here (id int)")
            .execute(&pool)
            .await
            .unwrap();
        let mut other = PgConnection::connect_with(&a.options).await.unwrap();
        let visible: Option<String> = sqlx::query_scalar("SELECT to_regclass('only_here')::text")
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert_eq!(visible, None, "{} is isolated from {}", db.name, a.name);
        pool.close().await;
    }
}
