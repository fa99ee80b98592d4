//! Shared helpers of the integration tests: an in-process mutask on a fresh database, a bare
//! store on one, HTTP helpers, and a scan of every column of every table for a value.
#![allow(dead_code)]

pub mod proc;
pub mod smtp;

use std::path::PathBuf;

use mutask::app::{self, Running};
use mutask::config::{Config, Role, parse_basic_auth};
use mutask::testing::{TestDb, test_db};
use serde_json::Value;

/// The repository's shipped example templates.
pub fn shipped_templates() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates")
}

pub struct Instance {
    pub running: Running,
    pub base: String,
    pub db: TestDb,
    pub data: tempfile::TempDir,
    pub client: reqwest::Client,
}

/// Users: `admin` (admin), `alice` and `bob` (plain users); password = user name + "-pw".
pub fn test_config(db: &TestDb, data: &std::path::Path) -> Config {
    let mut c = Config::for_tests(data, Some(db.url.clone()));
    c.templates_dir = shipped_templates();
    c.basic_auth = Some(parse_basic_auth("admin:admin-pw,alice:alice-pw,bob:bob-pw").unwrap());
    c.admin_usernames = vec!["admin".into()];
    c.sandbox_program = Some(PathBuf::from(env!("CARGO_BIN_EXE_mutask")));
    c
}

/// Starts mutask in-process on a fresh database with the shipped templates.
pub async fn start() -> Instance {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Instance {
    start_on(test_db().await, tweak).await
}

/// A PostgreSQL cluster of the test's own under `dir/pg` (non-durable), for a test that restarts
/// it or measures it: the shared cluster serves every other test at the same time. Returns the
/// options too, to start it again.
pub async fn private_cluster(
    dir: &std::path::Path,
) -> (
    mutask::store::embedded::EmbeddedOptions,
    mutask::store::embedded::EmbeddedPostgres,
) {
    let mut opts = mutask::store::embedded::EmbeddedOptions::new(dir.join("pg"));
    opts.durable = false;
    let pg = mutask::store::embedded::EmbeddedPostgres::start_with(opts.clone())
        .await
        .expect("a private PostgreSQL cluster starts");
    (opts, pg)
}

/// [`start_with`] on the database `db` (e.g. on a [`private_cluster`]).
pub async fn start_on(db: TestDb, tweak: impl FnOnce(&mut Config)) -> Instance {
    init_log();
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(&db, data.path());
    tweak(&mut config);
    let running = app::start(config, Role::All, false)
        .await
        .expect("mutask starts");
    let base = format!("http://{}", running.addr);
    Instance {
        running,
        base,
        db,
        data,
        client: http(),
    }
}

impl Instance {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The lines of a step's log as admin reads them (`GET /resolution/{id}/step/{name}/log`):
    /// (stream, text), in the order served.
    pub async fn step_log_lines(&self, resolution: &Value, step: &str) -> Vec<(String, String)> {
        let id = resolution["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{resolution}"));
        let (s, log) = self
            .get("admin", &format!("/resolution/{id}/step/{step}/log"))
            .await;
        assert_eq!(s, 200, "{log}");
        log["lines"]
            .as_array()
            .unwrap_or_else(|| panic!("{log}"))
            .iter()
            .map(|l| {
                (
                    l["stream"].as_str().unwrap().to_string(),
                    l["text"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub async fn get(&self, user: &str, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .basic_auth(user, Some(format!("{user}-pw")))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post_raw(
        &self,
        user: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .basic_auth(user, Some(format!("{user}-pw")))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, user: &str, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(
            user,
            path,
            "application/json",
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    pub async fn stop(self) {
        self.running.shutdown().await.unwrap();
    }
}

/// Every (table, column) whose text form contains `needle`, over every table of the public schema.
pub async fn find_in_all_tables(pool: &sqlx::PgPool, needle: &str) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        tables.len() >= 8,
        "expected the mutask tables, got {tables:?}"
    );
    let mut hits = Vec::new();
    for t in tables {
        let cols: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(&t)
        .fetch_all(pool)
        .await
        .unwrap();
        for (c, ty) in cols {
            // bytea: search the raw bytes; everything else: its text form
            let sql = if ty == "bytea" {
                format!(
                    "SELECT count(*) FROM \"{t}\" WHERE position(convert_to($1, 'UTF8') in \"{c}\") > 0"
                )
            } else {
                format!("SELECT count(*) FROM \"{t}\" WHERE position($1 in \"{c}\"::text) > 0")
            };
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(needle)
                .fetch_one(pool)
                .await
                .unwrap();
            if n > 0 {
                hits.push(format!("{t}.{c}"));
            }
        }
    }
    hits
}

/// An HTTP client (installs the TLS crypto provider first).
pub fn http() -> reqwest::Client {
    mutask::install_crypto_provider();
    reqwest::Client::new()
}

/// A request for an action run outside the engine (the actions' own tests).
pub fn action_request(
    config: Value,
    log: mutask::action::log::StepLog,
) -> mutask::action::ActionRequest {
    mutask::action::ActionRequest {
        step_name: "step".into(),
        task_id: mutask::domain::TaskId::new(),
        resolution_id: mutask::domain::ResolutionId::new(),
        requester_username: "alice".into(),
        config,
        previous_output: None,
        previous_metadata: None,
        env: std::sync::Arc::new(mutask::action::ActionEnv::default()),
        log,
    }
}

/// The in-process instances' warnings and errors go to the test's captured output, so a failing
/// test shows them; `MUTASK_TEST_LOG` (a `RUST_LOG`-style filter) asks for more.
fn init_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MUTASK_TEST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // the first instance of the test binary installs it; later calls change nothing
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A store (fresh key ring) on a new migrated database, dropped with the returned [`TestDb`].
pub async fn store() -> (mutask::store::Store, TestDb) {
    store_keyed(&mutask::crypto::KeyRing::generate_entry().unwrap()).await
}

/// [`store`] with the key ring `spec` (`id:base64,…`).
pub async fn store_keyed(spec: &str) -> (mutask::store::Store, TestDb) {
    use mutask::crypto::KeyRing;
    let (pool, db) = mutask::testing::test_pool().await;
    mutask::store::db::migrate(&pool).await.unwrap();
    let keys = KeyRing::parse(spec).unwrap();
    (
        mutask::store::Store::new(pool, std::sync::Arc::new(keys)),
        db,
    )
}

/// [`store`] holding one template, `name` (no steps); returns its version too.
pub async fn store_with_template(name: &str) -> (mutask::store::Store, i32, TestDb) {
    let (s, db) = store().await;
    let version = add_template(&s, name).await;
    (s, version, db)
}

/// Stores a template `name` with no steps; returns its version.
pub async fn add_template(s: &mutask::store::Store, name: &str) -> i32 {
    use mutask::store::template;
    template::upsert(
        s,
        &template::TemplateUpsert {
            name,
            description: "a test template",
            definition: &serde_json::json!({}),
            source: &format!("name: {name}"),
            source_file: None,
            hidden: false,
            blocked: false,
        },
    )
    .await
    .unwrap();
    template::get(s, name).await.unwrap().unwrap().version
}

/// A TODO task of `template` (at `version`) requested by alice, child of `parent` if given.
pub fn new_task(
    id: mutask::domain::TaskId,
    template: &str,
    version: i32,
    parent: Option<mutask::domain::TaskId>,
) -> mutask::store::task::NewTask {
    mutask::store::task::NewTask {
        id,
        template_name: template.into(),
        template_version: version,
        title: template.into(),
        state: mutask::domain::TaskState::Todo,
        requester_username: "alice".into(),
        requester_groups: vec![],
        watcher_usernames: vec![],
        watcher_groups: vec![],
        resolver_usernames: vec![],
        resolver_groups: vec![],
        tags: serde_json::json!({}),
        input: serde_json::json!({}),
        batch_id: None,
        parent_task_id: parent,
        status_hook: None,
        expected_duration: None,
        template_guard: None,
        claim: None,
    }
}

/// Waits up to 5 s for the process whose pid is in `pidfile` to be gone; `what` names it in
/// the failure.
pub async fn wait_process_gone(pidfile: &std::path::Path, what: &str) {
    let pid: i32 = std::fs::read_to_string(pidfile)
        .unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()))
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !process_gone(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} (pid {pid}) is still running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Is process `pid` gone (or a zombie waiting to be reaped)?
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S …": the state follows the last ')'
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}
