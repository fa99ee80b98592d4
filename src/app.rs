//! Wiring: builds the [`AppState`] from a [`Config`], starts the API (and, in later issues, the
//! engine), and shuts everything down gracefully.
//!
//! Startup order: data dir → database (the configured URL, or the embedded cluster) →
//! migrations (advisory-locked) → key ring (configured, or generated into the data dir) → key
//! check → templates (every problem reported with file:line:column; bad templates skipped unless
//! `--strict`) → instance registration → HTTP. Shutdown (SIGINT/SIGTERM): readiness turns 503,
//! the HTTP server drains (bounded), the instance row is removed, the pool closed, and the
//! embedded cluster stopped.

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::action::{ActionEnv, Registry};
use crate::api::{self, AppState, Auth};
use crate::config::{
    BasicAuthUser, Cli, Command, Config, KeysCommand, PasswordCheck, Role, TemplateCommand,
};
use crate::crypto::KeyRing;
use crate::domain::InstanceId;
use crate::engine::js::SandboxJs;
use crate::engine::runner::{Runner, RunnerSettings};
use crate::engine::{Engine, EngineSettings};
use crate::sandbox::{SandboxConfig, SandboxPool};
use crate::store::embedded::{EmbeddedOptions, EmbeddedPostgres};
use crate::store::{self, Store};
use crate::template::{self, Severity};

/// Name of the generated key file in the data dir.
pub const KEY_FILE: &str = "encryption.key";
/// Name of the generated admin password file in the data dir.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";
/// User name of the generated admin.
pub const GENERATED_ADMIN: &str = "admin";

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keys(KeysCommand::Generate) => {
            println!("{}", KeyRing::generate_entry()?);
            Ok(())
        }
        Command::Keys(cmd @ (KeysCommand::Rotate | KeysCommand::Status)) => {
            let config = cli.settings.resolve()?;
            let keys = Arc::new(load_key_ring(&config)?);
            let db = Database::open(&config).await?;
            let result = async {
                store::db::migrate(&db.pool)
                    .await
                    .context("applying migrations")?;
                let store = Store::new(db.pool.clone(), keys.clone());
                if matches!(cmd, KeysCommand::Rotate) {
                    let progress = store::rotation::rotate(&store, 500).await?;
                    for (table, n) in &progress {
                        println!("re-encrypted {n} row(s) of {table}");
                    }
                    println!("newest key: {}", keys.current_key_id());
                }
                for (id, n) in store::rotation::keys_in_use(&store).await? {
                    let configured = if keys.key_ids().contains(&id.as_str()) {
                        ""
                    } else {
                        " (NOT CONFIGURED)"
                    };
                    println!("key {id}: {n} value(s){configured}");
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            db.close().await;
            result
        }
        Command::Template(TemplateCommand::Validate { files }) => {
            let config = cli.settings.resolve()?;
            let code = validate_files(&config, &files);
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Migrate => {
            let config = cli.settings.resolve()?;
            let db = Database::open(&config).await?;
            store::db::migrate(&db.pool)
                .await
                .context("applying migrations")?;
            tracing::info!("migrations applied");
            db.close().await;
            Ok(())
        }
        Command::Serve(args) => {
            let config = cli.settings.resolve()?;
            let running = start(config, args.role, args.strict).await?;
            tracing::info!(address = %running.addr, "mutask is ready");
            wait_for_signal().await;
            tracing::info!("shutting down");
            running.shutdown().await
        }
    }
}

/// `mutask template validate`: prints every problem; returns the exit code.
fn validate_files(config: &Config, paths: &[PathBuf]) -> i32 {
    let (functions, fproblems) = template::load_functions_dir(&config.functions_dir);
    let (plugins, pproblems) = crate::action::plugin::load_dir(&config.plugins_dir);
    for p in &pproblems {
        println!("{p}");
    }
    let plugin_types = crate::action::plugin::validation_types(&plugins);
    let mut problems: Vec<template::Problem> = fproblems
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    let mut loaded = 0;
    for path in paths {
        if path.is_dir() {
            let report = template::load::load_templates_dir_with_plugins(
                path,
                &functions,
                Some(&plugin_types),
            );
            loaded += report.templates.len();
            problems.extend(report.problems);
        } else {
            let report = template::load::load_template_files_with_plugins(
                std::slice::from_ref(path),
                &functions,
                Some(&plugin_types),
            );
            loaded += report.templates.len();
            problems.extend(report.problems);
        }
    }
    for p in &problems {
        println!("{p}");
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let warnings = problems.len() - errors;
    println!("{loaded} template(s) valid, {errors} error(s), {warnings} warning(s)");
    if errors > 0 { 1 } else { 0 }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

/// The database: a pool, plus the embedded cluster when mutask started one.
pub struct Database {
    pub pool: sqlx::PgPool,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects to the configured URL or starts the embedded cluster.
    pub async fn open(config: &Config) -> anyhow::Result<Database> {
        let settings = store::db::PoolSettings::default();
        match &config.database_url {
            Some(url) => {
                let opts = store::db::options_from_url(url)?;
                let pool = connect_retrying(opts, &settings).await?;
                Ok(Database {
                    pool,
                    embedded: None,
                })
            }
            None => {
                std::fs::create_dir_all(&config.data_dir).with_context(|| {
                    format!("creating the data dir {}", config.data_dir.display())
                })?;
                let mut opts = EmbeddedOptions::new(config.data_dir.clone());
                opts.bin_dir = config.pg_bin_dir.clone();
                let pg = EmbeddedPostgres::start_with(opts).await?;
                tracing::info!(pgdata = %pg.pgdata().display(), "embedded PostgreSQL started");
                let pool = match store::db::connect(pg.connect_options("mutask"), &settings).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = pg.stop().await;
                        return Err(e.into());
                    }
                };
                Ok(Database {
                    pool,
                    embedded: Some(pg),
                })
            }
        }
    }

    /// Closes the pool and stops the embedded cluster.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(pg) = self.embedded
            && let Err(e) = pg.stop().await
        {
            tracing::warn!(error = %e, "stopping the embedded PostgreSQL failed");
        }
    }
}

/// Connects, retrying for a while: a PostgreSQL started alongside (compose) may not be up yet.
async fn connect_retrying(
    opts: sqlx::postgres::PgConnectOptions,
    settings: &store::db::PoolSettings,
) -> anyhow::Result<sqlx::PgPool> {
    let mut delay = Duration::from_millis(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match store::db::connect(opts.clone(), settings).await {
            Ok(p) => return Ok(p),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "database not reachable yet, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(3));
            }
            Err(e) => return Err(e).context("connecting to MUTASK_DATABASE_URL"),
        }
    }
}

fn write_secret_file(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(content.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all().ok();
    Ok(())
}

/// The key ring: configured, else the data dir's key file (generated on first start).
pub fn load_key_ring(config: &Config) -> anyhow::Result<KeyRing> {
    if let Some(spec) = &config.encryption_keys {
        return Ok(KeyRing::parse(spec)?);
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let path = config.data_dir.join(KEY_FILE);
    if !path.exists() {
        let entry = KeyRing::generate_entry()?;
        write_secret_file(&path, &format!("{entry}\n"))?;
        tracing::warn!(
            path = %path.display(),
            "no MUTASK_ENCRYPTION_KEYS configured: generated an encryption key into the data dir \
             (back it up: without it stored inputs and outputs cannot be read)"
        );
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    KeyRing::parse(&text).with_context(|| format!("key file {}", path.display()))
}

fn random_password() -> anyhow::Result<String> {
    use base64::Engine as _;
    let mut b = [0u8; 18];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("random generator: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Authentication settings; with nothing configured, an `admin` user whose password is
/// generated into the data dir.
pub fn build_auth(config: &Config) -> anyhow::Result<Auth> {
    let mut admins: std::collections::HashSet<String> =
        config.admin_usernames.iter().cloned().collect();
    let users = match &config.basic_auth {
        Some(users) => {
            for u in users {
                if matches!(u.secret, PasswordCheck::Plain(_)) {
                    tracing::warn!(
                        user = %u.username,
                        "MUTASK_BASIC_AUTH holds a plain-text password; prefer an argon2 or bcrypt hash"
                    );
                }
            }
            users.clone()
        }
        None if config.trusted_proxies.is_empty() => {
            std::fs::create_dir_all(&config.data_dir)?;
            let path = config.data_dir.join(ADMIN_PASSWORD_FILE);
            if !path.exists() {
                write_secret_file(&path, &format!("{}\n", random_password()?))?;
                tracing::warn!(
                    user = GENERATED_ADMIN,
                    path = %path.display(),
                    "no authentication configured: created an admin user; its password is in the file"
                );
            }
            let pw = std::fs::read_to_string(&path)?.trim().to_string();
            if pw.is_empty() {
                bail!("{} is empty", path.display());
            }
            admins.insert(GENERATED_ADMIN.to_string());
            vec![BasicAuthUser {
                username: GENERATED_ADMIN.into(),
                secret: PasswordCheck::Plain(pw),
            }]
        }
        None => Vec::new(),
    };
    Ok(Auth {
        users,
        trusted_proxies: config.trusted_proxies.clone(),
        admins,
        limiter: crate::api::auth::LoginLimiter::new(
            config.login_failure_limit,
            Duration::from_secs(60),
        ),
        ..Auth::default()
    })
}

/// Loads the templates directory into the database; returns the number loaded and the
/// functions (the engine resolves function action types with them).
pub async fn sync_templates(
    store: &Store,
    config: &Config,
    strict: bool,
    plugin_types: &crate::template::validate::PluginTypes,
) -> anyhow::Result<(usize, crate::template::model::FunctionSet)> {
    let (functions, mut problems) = template::load_functions_dir(&config.functions_dir);
    let report = template::load::load_templates_dir_with_plugins(
        &config.templates_dir,
        &functions,
        Some(plugin_types),
    );
    problems.extend(report.problems.iter().cloned());
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    for p in &problems {
        match p.severity {
            Severity::Error => tracing::error!("{p}"),
            Severity::Warning => tracing::warn!("{p}"),
        }
    }
    if strict && errors > 0 {
        bail!("{errors} template problem(s) and --strict is set");
    }
    let mut names = Vec::new();
    for t in &report.templates {
        let definition = serde_json::to_value(&t.template)?;
        let outcome = store::template::upsert(
            store,
            &store::template::TemplateUpsert {
                name: &t.name,
                description: &t.template.description,
                definition: &definition,
                source: &t.source,
                source_file: Some(&t.file),
                hidden: t.template.hidden,
                blocked: t.template.blocked,
            },
        )
        .await?;
        tracing::debug!(template = %t.name, ?outcome, "template loaded");
        names.push(t.name.clone());
    }
    let (deleted, archived) = store::template::retire_missing(store, &names).await?;
    tracing::info!(
        loaded = names.len(),
        skipped_errors = errors,
        deleted,
        archived,
        dir = %config.templates_dir.display(),
        "templates loaded"
    );
    Ok((names.len(), functions))
}

/// Longest sleep of the schedule ticker and the notifier between two looks at the database
/// (NOTIFY hints and known deadlines wake them sooner).
const IDLE_SLEEP: Duration = Duration::from_secs(30);

/// A started instance.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    pub instance: InstanceId,
    pub engine: Engine,
    runner: Option<Runner>,
    scheduler: Option<JoinHandle<()>>,
    notifier: Option<JoinHandle<()>>,
    waker: Option<JoinHandle<()>>,
    sandbox: SandboxPool,
    cancel: CancellationToken,
    server: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    db: Database,
}

impl Running {
    /// Stops serving, deregisters and closes the database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.state.draining.store(true, Ordering::Relaxed);
        self.state.task_waits.close();
        if let Some(runner) = self.runner {
            runner.shutdown(Duration::from_secs(30)).await;
        }
        self.cancel.cancel();
        if let Some(s) = self.scheduler {
            let _ = s.await;
        }
        if let Some(n) = self.notifier {
            let _ = n.await;
        }
        if let Some(w) = self.waker {
            let _ = w.await;
        }
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(10), &mut server)
            .await
            .is_err()
        {
            tracing::warn!("HTTP connections still open after 10 s; closing them");
            server.abort();
        }
        self.heartbeat.abort();
        self.sandbox.shutdown().await;
        if let Err(e) = store::instance::deregister(&self.state.store, self.instance).await {
            tracing::warn!(error = %e, "deregistering the instance failed");
        }
        self.db.close().await;
        Ok(())
    }
}

/// The sandbox pool for JavaScript, started at once so a broken setup shows at startup.
async fn sandbox_pool(program: Option<&Path>) -> anyhow::Result<SandboxPool> {
    let config = match program {
        Some(p) => SandboxConfig::new(p.to_path_buf()),
        None => SandboxConfig::from_current_exe()
            .context("locating the mutask binary for the sandbox")?,
    };
    let pool = SandboxPool::new(config).map_err(|e| anyhow::anyhow!("sandbox: {e}"))?;
    pool.warm_up()
        .await
        .map_err(|e| anyhow::anyhow!("sandbox workers do not start: {e}"))?;
    Ok(pool)
}

/// Starts an instance: database, migrations, keys, templates, HTTP.
pub async fn start(config: Config, role: Role, strict: bool) -> anyhow::Result<Running> {
    let keys = Arc::new(load_key_ring(&config)?);
    let mut auth = build_auth(&config)?;
    let (plugins, plugin_problems) = crate::action::plugin::load_dir(&config.plugins_dir);
    for p in &plugin_problems {
        tracing::error!("plugin not loaded: {p}");
    }
    if strict && !plugin_problems.is_empty() {
        bail!(
            "{} plugin problem(s) and --strict is set",
            plugin_problems.len()
        );
    }
    let plugin_types = crate::action::plugin::validation_types(&plugins);
    let db = Database::open(&config).await?;
    // the notifier runs with the engine; while an instance that sends notifications is
    // registered, every task change is recorded for it (migration 0023)
    let runs_engine = role != Role::Api && !config.maintenance_mode;
    let notifies = runs_engine && !config.notify_backends.is_empty();
    let result = async {
        store::db::migrate(&db.pool)
            .await
            .context("applying migrations")?;
        let store = Store::new(db.pool.clone(), keys.clone());
        store::keys::record_configured(&store).await?;
        let missing = store::keys::check_missing_keys(&store).await?;
        if !missing.is_empty() {
            bail!(
                "stored data is encrypted with key(s) {} which are not configured: add them to \
                 MUTASK_ENCRYPTION_KEYS (or restore the key file in the data dir)",
                missing.join(", ")
            );
        }
        let (_, functions) = sync_templates(&store, &config, strict, &plugin_types).await?;
        let instance = InstanceId::new();
        store::instance::register(&store, instance, role.as_str(), notifies).await?;
        Ok::<_, anyhow::Error>((store, instance, functions))
    }
    .await;
    let (store, instance, functions) = match result {
        Ok((store, instance, functions)) => (store, instance, Arc::new(functions)),
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };

    auth.tokens = Some(store.clone());
    let auth = Arc::new(auth);

    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            let _ = store::instance::deregister(&store, instance).await;
            db.close().await;
            return Err(e)
                .with_context(|| format!("listening on {} (MUTASK_LISTEN)", config.listen));
        }
    };
    let addr = listener.local_addr()?;
    let renderer = Arc::new(template::render::Renderer::new(
        template::render::RenderOptions::default(),
    ));
    let sandbox = match sandbox_pool(config.sandbox_program.as_deref()).await {
        Ok(p) => p,
        Err(e) => {
            let _ = store::instance::deregister(&store, instance).await;
            db.close().await;
            return Err(e);
        }
    };
    let policy = crate::action::http::NetworkPolicy::with_allow_list(&config.network_allow)
        .map_err(|e| anyhow::anyhow!("MUTASK_NETWORK_ALLOW: {e}"))?
        .deny_private(config.network_deny_private);
    let hook_policy = policy.clone();
    let plugin_schemas: std::collections::BTreeMap<String, crate::api::PluginSchemas> = plugins
        .iter()
        .map(|p| {
            (
                p.manifest.name.clone(),
                crate::api::PluginSchemas {
                    description: p.manifest.description.clone(),
                    config_schema: p.manifest.config_schema.clone(),
                    metadata_schema: p.manifest.metadata_schema.clone(),
                },
            )
        })
        .collect();
    let mut actions = Registry::builtin();
    actions.register(Arc::new(crate::action::http::Http::new(policy.clone())));
    actions.register(Arc::new(crate::action::ping::Ping::new(policy.clone())));
    actions.register(Arc::new(crate::action::email::Email::new(policy.clone())));
    actions.register(Arc::new(crate::action::ssh::Ssh::new(policy)));
    for p in plugins {
        tracing::info!(plugin = %p.manifest.name, version = %p.manifest.version, "plugin loaded");
        actions.register(Arc::new(p));
    }
    let engine = Engine {
        store: store.clone(),
        renderer: renderer.clone(),
        functions: functions.clone(),
        actions,
        action_env: Arc::new(ActionEnv {
            scripts_dir: config.scripts_dir.clone(),
            store: Some(store.clone()),
            renderer: Some(renderer.clone()),
            admins: auth.admins.clone(),
            base_url: config
                .base_url
                .clone()
                .unwrap_or_else(|| format!("http://{addr}")),
            notify_backends: config
                .notify_backends
                .iter()
                .map(|b| b.name().to_string())
                .collect(),
        }),
        instance,
        js: Some(Arc::new(SandboxJs::new(sandbox.clone()))),
        settings: Arc::new(EngineSettings {
            lease: config.lease,
            log_keep_executions: config.log_keep_executions as i32,
            ..EngineSettings::default()
        }),
        ends: Default::default(),
        loads: Default::default(),
        shutdown: Default::default(),
        resources: Arc::new(crate::engine::resources::Resources::new(
            config.resource_limits.clone(),
            Duration::from_secs(60),
        )),
    };
    let runner_settings = RunnerSettings {
        recovery_interval: (config.lease / 4).min(Duration::from_secs(10)),
        max_concurrent: config.max_concurrent_executions,
        log_retention: config.log_retention,
        completed_task_expiration: config.completed_task_expiration,
        ..RunnerSettings::default()
    };
    if config.maintenance_mode {
        tracing::warn!("maintenance mode: write routes answer 405 and this instance runs no work");
    }
    let runner = runs_engine.then(|| Runner::start(engine.clone(), runner_settings));
    let state = AppState {
        store: store.clone(),
        config: Arc::new(config),
        auth,
        renderer,
        functions: engine.functions.clone(),
        metrics: Default::default(),
        draining: Arc::new(AtomicBool::new(false)),
        sandbox: Some(sandbox.clone()),
        plugin_types: Arc::new(plugin_types),
        plugin_schemas: Arc::new(plugin_schemas),
        claim_hint: runner.as_ref().map(Runner::waker),
        task_waits: Default::default(),
    };
    let cancel = CancellationToken::new();
    // the ticker and the notifier sleep until their next deadline or a NOTIFY hint; requests
    // that wait for a task hear when it settles
    let wakeups = store::wake::Wakeups {
        settled: state.task_waits.clone(),
        ..Default::default()
    };
    use store::wake::{EVENT_CHANNEL, SCHEDULE_CHANNEL, SETTLED_CHANNEL};
    let channels: &'static [&'static str] = match (runner.is_some(), role) {
        (true, Role::Worker) => &[SCHEDULE_CHANNEL, EVENT_CHANNEL],
        (true, _) => &[SCHEDULE_CHANNEL, EVENT_CHANNEL, SETTLED_CHANNEL],
        (false, Role::Worker) => &[],
        (false, _) => &[SETTLED_CHANNEL],
    };
    let waker = (!channels.is_empty()).then(|| {
        tokio::spawn(store::wake::listen(
            store.clone(),
            wakeups.clone(),
            channels,
            cancel.clone(),
        ))
    });
    // schedules fire from every engine instance (exactly once each, enforced in the database)
    let scheduler = runner.is_some().then(|| {
        let ticker = crate::schedule::Ticker {
            store: store.clone(),
            renderer: state.renderer.clone(),
            clock: Arc::new(crate::domain::clock::SystemClock),
            admins: Arc::new(state.auth.admins.clone()),
        };
        tokio::spawn(ticker.run(wakeups.schedule.clone(), IDLE_SLEEP, cancel.clone()))
    });
    // notifications are sent from every engine instance (each claimed by one of them)
    let notifier = match runner.is_some() {
        false => None,
        true => {
            let base = state
                .config
                .base_url
                .clone()
                .unwrap_or_else(|| format!("http://{addr}"));
            let n = crate::notify::Notifier::new(
                store.clone(),
                state.config.notify_backends.clone(),
                state.config.notify_strategy,
                base,
            )
            .context("building the notification HTTP client")?;
            let mut n = n;
            n.policy = Arc::new(hook_policy.clone());
            n.max_attempts = state.config.notify_max_attempts as i32;
            Some(tokio::spawn(n.run(
                wakeups.event.clone(),
                IDLE_SLEEP,
                cancel.clone(),
            )))
        }
    };
    let app = api::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let token = cancel.clone();
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    let hb_store = store.clone();
    let heartbeat = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) =
                store::instance::heartbeat(&hb_store, instance, role.as_str(), notifies).await
            {
                tracing::warn!(error = %e, "instance heartbeat failed");
            }
        }
    });
    Ok(Running {
        addr,
        state,
        instance,
        engine,
        runner,
        scheduler,
        notifier,
        waker,
        sandbox,
        cancel,
        server,
        heartbeat,
        db,
    })
}
