//! Configuration: one [`Config`] built from command-line flags, `MUTASK_*` environment variables
//! and an optional TOML file, validated once at startup.
//!
//! Precedence: flag > environment > config file (`--config` / `MUTASK_CONFIG`) > default. Every
//! invalid value stops startup with a [`ConfigError`] that names the setting by its environment
//! name and flag (e.g. `MUTASK_LISTEN (--listen)`). Secrets (encryption keys, basic-auth
//! passwords, database URL) are never printed by `Debug`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// Default HTTP address (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
/// Default request body limit (µTask's default, 256 KiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// `mutask` command line.
#[derive(Debug, Parser)]
#[command(
    name = "mutask",
    version,
    about = "A PostgreSQL-backed, multi-instance automation engine compatible with µTask",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API and the engine (with an embedded PostgreSQL when no database URL is set).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Work with task templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Work with encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `mutask serve` options.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Which parts to run in this process: the API, the engine (worker), or both.
    #[arg(long, env = "MUTASK_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
    /// Refuse to start when any template has a problem (default: report and skip it).
    #[arg(long, env = "MUTASK_STRICT")]
    pub strict: bool,
}

/// `mutask template …`
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Validate template files; prints every problem with file:line:column, exits 1 on errors.
    Validate {
        /// Template files or directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `mutask keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new encryption key entry (`id:base64`) to add to MUTASK_ENCRYPTION_KEYS.
    Generate,
    /// Re-encrypt every stored secret with the newest configured key (safe while instances
    /// run; resumable), then list the keys still in use.
    Rotate,
    /// List the key ids that seal stored values, with counts (a key can be removed from the
    /// configuration once it seals nothing).
    Status,
}

/// What a `serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// API and engine.
    All,
    /// HTTP API only (no claiming of work).
    Api,
    /// Engine only (still serves health and metrics).
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings shared by every subcommand; each is a flag, an env var and a config-file key.
#[derive(Args, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML configuration file; its keys are these settings' names in snake_case.
    #[arg(long, env = "MUTASK_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// PostgreSQL URL shared by all instances [default: embedded PostgreSQL under the data dir].
    #[arg(
        long,
        env = "MUTASK_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Directory for the embedded cluster, the generated key and local state [default: ./.mutask].
    #[arg(long, env = "MUTASK_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address (API, UI, docs, metrics) [default: 127.0.0.1:8081].
    #[arg(long, env = "MUTASK_LISTEN", global = true)]
    pub listen: Option<String>,
    /// Task templates directory [default: ./templates].
    #[arg(long, env = "MUTASK_TEMPLATES_DIR", global = true)]
    pub templates_dir: Option<PathBuf>,
    /// Functions directory [default: ./functions].
    #[arg(long, env = "MUTASK_FUNCTIONS_DIR", global = true)]
    pub functions_dir: Option<PathBuf>,
    /// Plugins directory [default: ./plugins].
    #[arg(long, env = "MUTASK_PLUGINS_DIR", global = true)]
    pub plugins_dir: Option<PathBuf>,
    /// Scripts directory for the script action [default: ./scripts].
    #[arg(long, env = "MUTASK_SCRIPTS_DIR", global = true)]
    pub scripts_dir: Option<PathBuf>,
    /// Encryption key ring `id:base64,…`; the last key encrypts [default: a key generated into the data dir].
    #[arg(
        long,
        env = "MUTASK_ENCRYPTION_KEYS",
        global = true,
        hide_env_values = true
    )]
    pub encryption_keys: Option<String>,
    /// Comma-separated admin usernames.
    #[arg(long, env = "MUTASK_ADMIN_USERNAMES", global = true)]
    pub admin_usernames: Option<String>,
    /// Basic-auth users, comma-separated `user:password` or `user:<argon2 or bcrypt hash>`
    /// [default: an `admin` user whose password is generated into the data dir].
    #[arg(long, env = "MUTASK_BASIC_AUTH", global = true, hide_env_values = true)]
    pub basic_auth: Option<String>,
    /// Comma-separated addresses or CIDR ranges allowed to assert x-remote-user / x-remote-groups.
    #[arg(long, env = "MUTASK_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "MUTASK_LOG_FORMAT", global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Maximum request body size in bytes [default: 262144].
    #[arg(long, env = "MUTASK_MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<usize>,
    /// Public base URL of this service, used in links it hands out (callbacks)
    /// [default: http://<listen address>].
    #[arg(long, env = "MUTASK_BASE_URL", global = true)]
    pub base_url: Option<String>,
    /// Generic notification webhook: task creations and state changes are POSTed there as JSON
    /// (see docs/notifications.md) [default: none].
    #[arg(long, env = "MUTASK_NOTIFY_WEBHOOK_URL", global = true)]
    pub notify_webhook_url: Option<String>,
    /// HMAC-SHA256 key signing the notification webhook's bodies (`X-Mutask-Signature`).
    #[arg(
        long,
        env = "MUTASK_NOTIFY_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub notify_webhook_secret: Option<String>,
    /// Slack incoming-webhook URL for notifications [default: none].
    #[arg(
        long,
        env = "MUTASK_NOTIFY_SLACK_URL",
        global = true,
        hide_env_values = true
    )]
    pub notify_slack_url: Option<String>,
    /// Email notifications: `smtp://user:password@host:587?from=robot@example.com&to=a@example.com,b@example.com`
    /// (`smtps://` for implicit TLS; `tls=starttls|none`, `skip_tls_verify=true` in the query)
    /// [default: none].
    #[arg(
        long,
        env = "MUTASK_NOTIFY_EMAIL_URL",
        global = true,
        hide_env_values = true
    )]
    pub notify_email_url: Option<String>,
    /// Which task changes are notified: `always`, `failure_only` (BLOCKED) or
    /// `failure_or_done` [default: always].
    #[arg(long, env = "MUTASK_NOTIFY_STRATEGY", global = true)]
    pub notify_strategy: Option<String>,
    /// Attempts at delivering one notification before it is given up (backoff 5 s doubling, at
    /// most 10 min apart; `POST /notification/{id}/retry` re-queues it) [default: 12].
    #[arg(long, env = "MUTASK_NOTIFY_MAX_ATTEMPTS", global = true)]
    pub notify_max_attempts: Option<u32>,
    /// Browser origins allowed to call the API from other sites (CORS): comma-separated
    /// `https://host[:port]` origins, or `*` for any origin (then without credentials)
    /// [default: none, CORS off].
    #[arg(long, env = "MUTASK_CORS_ORIGINS", global = true)]
    pub cors_origins: Option<String>,
    /// Destinations the http and ping actions may reach although the SSRF guard denies them by
    /// default (loopback, link-local, metadata addresses): comma-separated IPs, CIDRs, host
    /// names or `*.domain`.
    #[arg(long, env = "MUTASK_NETWORK_ALLOW", global = true)]
    pub network_allow: Option<String>,
    /// Also deny private address ranges (10/8, 172.16/12, 192.168/16, fc00::/7) to http and ping.
    #[arg(long, env = "MUTASK_NETWORK_DENY_PRIVATE", global = true)]
    pub network_deny_private: Option<bool>,
    /// Maintenance mode: write routes answer 405 and the engine claims no work.
    #[arg(long, env = "MUTASK_MAINTENANCE_MODE", global = true)]
    pub maintenance_mode: Option<bool>,
    /// Concurrency limits per resource label, `label=N,…` (labels: a step's `resources`,
    /// `template:<name>`, `url:<host>`, `script:<file>`, `fork`, `socket`; 0 = never runs).
    #[arg(long, env = "MUTASK_RESOURCE_LIMITS", global = true)]
    pub resource_limits: Option<String>,
    /// Most resolution cycles one instance runs at once [default: 100].
    #[arg(long, env = "MUTASK_MAX_CONCURRENT_EXECUTIONS", global = true)]
    pub max_concurrent_executions: Option<usize>,
    /// Days step logs are kept [default: 30]; or give `MUTASK_LOG_RETENTION`.
    #[arg(long, env = "MUTASK_LOG_RETENTION_DAYS", global = true)]
    pub log_retention_days: Option<u64>,
    /// How long step logs are kept, as a duration (`720h`, `90m`; at least 1m) — instead of
    /// `MUTASK_LOG_RETENTION_DAYS` [default: 720h].
    #[arg(long, env = "MUTASK_LOG_RETENTION", global = true)]
    pub log_retention: Option<String>,
    /// Executions of each step whose logs are kept (older ones are pruned when a new one
    /// starts) [default: 5].
    #[arg(long, env = "MUTASK_LOG_KEEP_EXECUTIONS", global = true)]
    pub log_keep_executions: Option<u32>,
    /// How long a finished task (DONE, CANCELLED, WONTFIX) is kept after its last activity,
    /// with its resolution, steps, comments and logs (`720h`, `15m`; at least 1s)
    /// [default: 720h].
    #[arg(long, env = "MUTASK_COMPLETED_TASK_EXPIRATION", global = true)]
    pub completed_task_expiration: Option<String>,
    /// Failed logins (wrong password or token) one client address may make per minute before
    /// its requests get 429 until the minute is over; 0 disables the limit [default: 10].
    #[arg(long, env = "MUTASK_LOGIN_FAILURE_LIMIT", global = true)]
    pub login_failure_limit: Option<u32>,
    /// Seconds a running resolution stays owned without a heartbeat; past it another instance
    /// recovers it [default: 60].
    #[arg(long, env = "MUTASK_LEASE_SECONDS", global = true)]
    pub lease_seconds: Option<u64>,
    /// Directory holding initdb/pg_ctl/postgres for the embedded cluster [default: searched].
    #[arg(long, env = "MUTASK_PG_BIN_DIR", global = true)]
    pub pg_bin_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("config", &self.config)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field(
                "encryption_keys",
                &self.encryption_keys.as_ref().map(|_| "<set>"),
            )
            .field("basic_auth", &self.basic_auth.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// A configuration problem, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

fn err(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        message: message.into(),
    }
}

/// One basic-auth user.
#[derive(Clone)]
pub struct BasicAuthUser {
    pub username: String,
    pub secret: PasswordCheck,
}

/// How a basic-auth password is checked.
#[derive(Clone)]
pub enum PasswordCheck {
    /// Plain text (a warning is logged at startup).
    Plain(String),
    /// An argon2 PHC string.
    Argon2(String),
    /// A bcrypt hash.
    Bcrypt(String),
}

impl std::fmt::Debug for BasicAuthUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.secret {
            PasswordCheck::Plain(_) => "plain",
            PasswordCheck::Argon2(_) => "argon2",
            PasswordCheck::Bcrypt(_) => "bcrypt",
        };
        write!(f, "BasicAuthUser({}, {kind})", self.username)
    }
}

/// A trusted proxy address or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpRange {
    pub fn parse(s: &str) -> Result<IpRange, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(IpRange { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// `None`: use the embedded PostgreSQL cluster under `data_dir`.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub templates_dir: PathBuf,
    pub functions_dir: PathBuf,
    pub plugins_dir: PathBuf,
    pub scripts_dir: PathBuf,
    /// Raw key-ring spec; `None` → the key file in the data dir (generated on first start).
    pub encryption_keys: Option<String>,
    pub admin_usernames: Vec<String>,
    /// `None`: not configured (a generated admin is used when no proxy is trusted either).
    pub basic_auth: Option<Vec<BasicAuthUser>>,
    pub trusted_proxies: Vec<IpRange>,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub pg_bin_dir: Option<PathBuf>,
    /// Public base URL (`None`: `http://<bound address>`).
    pub base_url: Option<String>,
    /// CORS: allowed browser origins (`["*"]`: any); empty: CORS off.
    pub cors_origins: Vec<String>,
    /// Notification backends (none configured: nothing is sent).
    pub notify_backends: Vec<crate::notify::Backend>,
    pub notify_strategy: crate::notify::Strategy,
    /// Delivery attempts of one notification before it is given up.
    pub notify_max_attempts: u32,
    /// Ownership lease of a running resolution.
    pub lease: std::time::Duration,
    /// Concurrency limit per resource label (per instance, as µTask).
    pub resource_limits: std::collections::HashMap<String, usize>,
    /// Most cycles running at once in this instance.
    pub max_concurrent_executions: usize,
    /// How long step logs are kept.
    pub log_retention: std::time::Duration,
    /// Executions of each step whose logs are kept.
    pub log_keep_executions: u32,
    /// Finished tasks are deleted this long after their last activity.
    pub completed_task_expiration: std::time::Duration,
    /// Failed logins per client address and minute before 429 (0: no limit).
    pub login_failure_limit: u32,
    /// SSRF guard exceptions (see `MUTASK_NETWORK_ALLOW`).
    pub network_allow: Vec<String>,
    /// Deny private ranges to the actions that connect out (http, ping, email, ssh).
    pub network_deny_private: bool,
    /// Write routes refused, engine idle.
    pub maintenance_mode: bool,
    /// The executable run as `<program> sandbox` for JavaScript workers (default: this binary;
    /// in-process tests point it at the built `mutask`).
    pub sandbox_program: Option<PathBuf>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("templates_dir", &self.templates_dir)
            .field("admin_usernames", &self.admin_usernames)
            .field("basic_auth", &self.basic_auth)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn is_user_name(s: &str) -> bool {
    !s.trim().is_empty()
        && s.trim()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
}

/// Splits the `MUTASK_BASIC_AUTH` list on commas, keeping commas that belong to a password or a
/// hash (argon2 hashes contain `m=…,t=…,p=…`): a new entry starts only at `name:`.
fn split_entries(spec: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for seg in spec.split(',') {
        let starts_entry = seg.split_once(':').is_some_and(|(u, _)| is_user_name(u));
        match entries.last_mut() {
            Some(last) if !starts_entry => {
                last.push(',');
                last.push_str(seg);
            }
            _ => entries.push(seg.to_string()),
        }
    }
    entries
        .into_iter()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect()
}

/// Parses `MUTASK_BASIC_AUTH`.
pub fn parse_basic_auth(spec: &str) -> Result<Vec<BasicAuthUser>, String> {
    let mut users: Vec<BasicAuthUser> = Vec::new();
    for (i, entry) in split_entries(spec).iter().enumerate() {
        let (user, secret) = entry
            .split_once(':')
            .ok_or_else(|| format!("entry #{} has no `:` between user and password", i + 1))?;
        let user = user.trim();
        if !is_user_name(user) {
            return Err(format!(
                "entry #{}: `{user}` is not a valid user name",
                i + 1
            ));
        }
        if secret.is_empty() {
            return Err(format!("user `{user}` has an empty password"));
        }
        if users.iter().any(|u| u.username == user) {
            return Err(format!("user `{user}` is listed twice"));
        }
        let secret = if secret.starts_with("$argon2") {
            let parsed = argon2::PasswordHash::new(secret)
                .map_err(|e| format!("user `{user}`: invalid argon2 hash ({e})"))?;
            if parsed.hash.is_none() || parsed.salt.is_none() {
                return Err(format!(
                    "user `{user}`: invalid argon2 hash (no salt or hash)"
                ));
            }
            PasswordCheck::Argon2(secret.to_string())
        } else if secret.starts_with("$2a$")
            || secret.starts_with("$2b$")
            || secret.starts_with("$2y$")
        {
            if secret.len() != 60 {
                return Err(format!(
                    "user `{user}`: invalid bcrypt hash (expected 60 characters)"
                ));
            }
            PasswordCheck::Bcrypt(secret.to_string())
        } else {
            PasswordCheck::Plain(secret.to_string())
        };
        users.push(BasicAuthUser {
            username: user.to_string(),
            secret,
        });
    }
    if users.is_empty() {
        return Err("no user listed".into());
    }
    Ok(users)
}

/// Parses `label=N,label2=M` (labels may contain `:`; the last `=` separates the limit).
pub fn parse_resource_limits(
    spec: &str,
) -> Result<std::collections::HashMap<String, usize>, String> {
    let mut out = std::collections::HashMap::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (label, n) = entry
            .rsplit_once('=')
            .ok_or_else(|| format!("`{entry}` is not `label=limit`"))?;
        let label = label.trim();
        if label.is_empty() {
            return Err(format!("`{entry}` has an empty label"));
        }
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("`{entry}`: the limit must be a number ≥ 0"))?;
        if out.insert(label.to_string(), n).is_some() {
            return Err(format!("label `{label}` is listed twice"));
        }
    }
    Ok(out)
}

impl Settings {
    /// Fills every unset setting from the config file, if one is given.
    pub fn merge_file(mut self) -> Result<Settings, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            err(
                "MUTASK_CONFIG (--config)",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let file: Settings = toml::from_str(&text).map_err(|e| {
            err(
                "MUTASK_CONFIG (--config)",
                format!("{}: {}", path.display(), e.to_string().trim()),
            )
        })?;
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = file.$f; } )* };
        }
        fill!(
            database_url,
            data_dir,
            listen,
            templates_dir,
            functions_dir,
            plugins_dir,
            scripts_dir,
            encryption_keys,
            admin_usernames,
            basic_auth,
            trusted_proxies,
            log_format,
            max_body_bytes,
            pg_bin_dir,
            base_url,
            cors_origins,
            notify_webhook_url,
            notify_webhook_secret,
            notify_slack_url,
            notify_email_url,
            notify_strategy,
            notify_max_attempts,
            lease_seconds,
            resource_limits,
            max_concurrent_executions,
            log_retention_days,
            log_retention,
            log_keep_executions,
            completed_task_expiration,
            login_failure_limit,
            network_allow,
            network_deny_private,
            maintenance_mode
        );
        Ok(self)
    }

    /// Applies defaults and validates every setting.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let s = self.merge_file()?;
        let listen_text = s.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            err(
                "MUTASK_LISTEN (--listen)",
                format!("`{listen_text}` is not an address like 127.0.0.1:8081"),
            )
        })?;
        let database_url = match s.database_url.map(|u| u.trim().to_string()) {
            Some(u) if u.is_empty() => None,
            Some(u) => {
                use std::str::FromStr;
                if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                    return Err(err(
                        "MUTASK_DATABASE_URL (--database-url)",
                        "must start with postgres:// or postgresql://",
                    ));
                }
                sqlx::postgres::PgConnectOptions::from_str(&u).map_err(|e| {
                    err(
                        "MUTASK_DATABASE_URL (--database-url)",
                        format!(
                            "not a PostgreSQL URL ({})",
                            redact_url_error(&e.to_string(), &u)
                        ),
                    )
                })?;
                Some(u)
            }
            None => None,
        };
        if let Some(keys) = &s.encryption_keys {
            crate::crypto::KeyRing::parse(keys)
                .map_err(|e| err("MUTASK_ENCRYPTION_KEYS (--encryption-keys)", e.to_string()))?;
        }
        let basic_auth = match &s.basic_auth {
            Some(b) if !b.trim().is_empty() => {
                Some(parse_basic_auth(b).map_err(|e| err("MUTASK_BASIC_AUTH (--basic-auth)", e))?)
            }
            _ => None,
        };
        let trusted_proxies = split_list(s.trusted_proxies.as_deref().unwrap_or(""))
            .iter()
            .map(|p| IpRange::parse(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err("MUTASK_TRUSTED_PROXIES (--trusted-proxies)", e))?;
        let max_body_bytes = s.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1024..=10 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(err(
                "MUTASK_MAX_BODY_BYTES (--max-body-bytes)",
                format!("{max_body_bytes} is outside 1024..=10485760"),
            ));
        }
        if let Some(dir) = &s.pg_bin_dir
            && !dir.is_dir()
        {
            return Err(err(
                "MUTASK_PG_BIN_DIR (--pg-bin-dir)",
                format!("{} is not a directory", dir.display()),
            ));
        }
        let mut notify_backends = Vec::new();
        let http_url = |setting: &'static str, u: &str| -> Result<String, ConfigError> {
            let parsed =
                url::Url::parse(u.trim()).map_err(|e| err(setting, format!("not a URL ({e})")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(err(setting, "must be an http:// or https:// URL"));
            }
            Ok(u.trim().to_string())
        };
        if let Some(u) = s
            .notify_webhook_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            notify_backends.push(crate::notify::Backend::Webhook {
                url: http_url("MUTASK_NOTIFY_WEBHOOK_URL (--notify-webhook-url)", u)?,
                secret: s.notify_webhook_secret.clone().filter(|x| !x.is_empty()),
            });
        }
        if let Some(u) = s
            .notify_slack_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            notify_backends.push(crate::notify::Backend::Slack {
                url: http_url("MUTASK_NOTIFY_SLACK_URL (--notify-slack-url)", u)?,
            });
        }
        if let Some(u) = s
            .notify_email_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            notify_backends.push(
                crate::notify::Backend::email_from_url(u.trim())
                    .map_err(|e| err("MUTASK_NOTIFY_EMAIL_URL (--notify-email-url)", e))?,
            );
        }
        let notify_strategy = match s.notify_strategy.as_deref() {
            None | Some("") => crate::notify::Strategy::Always,
            Some(v) => crate::notify::Strategy::parse(v).ok_or_else(|| {
                err(
                    "MUTASK_NOTIFY_STRATEGY (--notify-strategy)",
                    format!("`{v}` is not always, failure_only or failure_or_done"),
                )
            })?,
        };
        let cors_origins = split_list(s.cors_origins.as_deref().unwrap_or(""));
        for o in &cors_origins {
            let ok = o == "*"
                || url::Url::parse(o).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some()
                        && u.path() == "/"
                        && !o.ends_with('/')
                        && u.query().is_none()
                });
            if !ok {
                return Err(err(
                    "MUTASK_CORS_ORIGINS (--cors-origins)",
                    format!("`{o}` is not `*` or an origin like https://ui.example.com:8443"),
                ));
            }
        }
        if cors_origins.len() > 1 && cors_origins.iter().any(|o| o == "*") {
            return Err(err(
                "MUTASK_CORS_ORIGINS (--cors-origins)",
                "`*` cannot be combined with other origins",
            ));
        }
        let base_url = match s.base_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => {
                let parsed = url::Url::parse(u).map_err(|e| {
                    err(
                        "MUTASK_BASE_URL (--base-url)",
                        format!("`{u}` is not a URL ({e})"),
                    )
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(err(
                        "MUTASK_BASE_URL (--base-url)",
                        "must be an http:// or https:// URL",
                    ));
                }
                Some(u.trim_end_matches('/').to_string())
            }
        };
        let lease_seconds = s.lease_seconds.unwrap_or(60);
        if !(2..=3600).contains(&lease_seconds) {
            return Err(err(
                "MUTASK_LEASE_SECONDS (--lease-seconds)",
                format!("{lease_seconds} is outside 2..=3600"),
            ));
        }
        let resource_limits = parse_resource_limits(s.resource_limits.as_deref().unwrap_or(""))
            .map_err(|e| err("MUTASK_RESOURCE_LIMITS (--resource-limits)", e))?;
        let max_concurrent_executions = s.max_concurrent_executions.unwrap_or(100);
        if !(1..=100_000).contains(&max_concurrent_executions) {
            return Err(err(
                "MUTASK_MAX_CONCURRENT_EXECUTIONS (--max-concurrent-executions)",
                format!("{max_concurrent_executions} is outside 1..=100000"),
            ));
        }
        let log_retention = log_retention(s.log_retention.as_deref(), s.log_retention_days)?;
        let log_keep_executions = s.log_keep_executions.unwrap_or(5);
        if !(1..=1000).contains(&log_keep_executions) {
            return Err(err(
                "MUTASK_LOG_KEEP_EXECUTIONS (--log-keep-executions)",
                format!("{log_keep_executions} is outside 1..=1000"),
            ));
        }
        let completed_task_expiration =
            completed_task_expiration(s.completed_task_expiration.as_deref())?;
        let notify_max_attempts = s.notify_max_attempts.unwrap_or(12);
        if !(1..=100).contains(&notify_max_attempts) {
            return Err(err(
                "MUTASK_NOTIFY_MAX_ATTEMPTS (--notify-max-attempts)",
                format!("{notify_max_attempts} is outside 1..=100"),
            ));
        }
        let network_allow = split_list(s.network_allow.as_deref().unwrap_or(""));
        crate::action::http::NetworkPolicy::with_allow_list(&network_allow)
            .map_err(|e| err("MUTASK_NETWORK_ALLOW (--network-allow)", e))?;
        let data_dir = s.data_dir.unwrap_or_else(|| PathBuf::from(".mutask"));
        if data_dir.exists() && !data_dir.is_dir() {
            return Err(err(
                "MUTASK_DATA_DIR (--data-dir)",
                format!("{} exists and is not a directory", data_dir.display()),
            ));
        }
        Ok(Config {
            database_url,
            data_dir,
            listen,
            templates_dir: s
                .templates_dir
                .unwrap_or_else(|| PathBuf::from("templates")),
            functions_dir: s
                .functions_dir
                .unwrap_or_else(|| PathBuf::from("functions")),
            plugins_dir: s.plugins_dir.unwrap_or_else(|| PathBuf::from("plugins")),
            scripts_dir: s.scripts_dir.unwrap_or_else(|| PathBuf::from("scripts")),
            encryption_keys: s.encryption_keys,
            admin_usernames: split_list(s.admin_usernames.as_deref().unwrap_or("")),
            basic_auth,
            trusted_proxies,
            log_format: s.log_format.unwrap_or(LogFormat::Text),
            max_body_bytes,
            pg_bin_dir: s.pg_bin_dir,
            base_url,
            cors_origins,
            notify_backends,
            notify_strategy,
            notify_max_attempts,
            lease: std::time::Duration::from_secs(lease_seconds),
            resource_limits,
            max_concurrent_executions,
            log_retention,
            log_keep_executions,
            completed_task_expiration,
            login_failure_limit: s.login_failure_limit.unwrap_or(10),
            network_allow,
            network_deny_private: s.network_deny_private.unwrap_or(false),
            maintenance_mode: s.maintenance_mode.unwrap_or(false),
            sandbox_program: None,
        })
    }
}

/// µTask's default `completed_task_expiration`: 30 days.
pub const DEFAULT_COMPLETED_TASK_EXPIRATION: std::time::Duration =
    std::time::Duration::from_secs(720 * 3600);

/// `MUTASK_COMPLETED_TASK_EXPIRATION`: a duration from 1s to ten years; 720h by default.
fn completed_task_expiration(text: Option<&str>) -> Result<std::time::Duration, ConfigError> {
    const NAME: &str = "MUTASK_COMPLETED_TASK_EXPIRATION (--completed-task-expiration)";
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(DEFAULT_COMPLETED_TASK_EXPIRATION);
    };
    let d = crate::domain::duration::parse(t).map_err(|e| err(NAME, e.to_string()))?;
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(3650 * 86_400) {
        return Err(err(NAME, format!("`{t}` is outside 1s..=87600h")));
    }
    Ok(d)
}

/// The step log retention: `MUTASK_LOG_RETENTION` (a duration, at least a minute, at most ten
/// years) or `MUTASK_LOG_RETENTION_DAYS` (1..=3650), not both; 30 days by default.
fn log_retention(
    text: Option<&str>,
    days: Option<u64>,
) -> Result<std::time::Duration, ConfigError> {
    const NAME: &str = "MUTASK_LOG_RETENTION (--log-retention)";
    match (text.map(str::trim).filter(|t| !t.is_empty()), days) {
        (Some(_), Some(_)) => Err(err(
            NAME,
            "give MUTASK_LOG_RETENTION or MUTASK_LOG_RETENTION_DAYS, not both",
        )),
        (Some(t), None) => {
            let d = crate::domain::duration::parse(t).map_err(|e| err(NAME, e.to_string()))?;
            if d < std::time::Duration::from_secs(60)
                || d > std::time::Duration::from_secs(3650 * 86_400)
            {
                return Err(err(NAME, format!("`{t}` is outside 1m..=87600h")));
            }
            Ok(d)
        }
        (None, days) => {
            let days = days.unwrap_or(30);
            if !(1..=3650).contains(&days) {
                return Err(err(
                    "MUTASK_LOG_RETENTION_DAYS (--log-retention-days)",
                    format!("{days} is outside 1..=3650"),
                ));
            }
            Ok(std::time::Duration::from_secs(days * 86_400))
        }
    }
}

/// Removes a password from an error message that might quote the URL.
fn redact_url_error(message: &str, url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        Some(pw) if !pw.is_empty() => message.replace(&pw, "***"),
        _ => message.to_string(),
    }
}

impl Config {
    /// A configuration for tests: loopback on a free port chosen by the OS, given dirs.
    pub fn for_tests(data_dir: &Path, database_url: Option<String>) -> Config {
        Config {
            database_url,
            data_dir: data_dir.to_path_buf(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            templates_dir: data_dir.join("templates"),
            functions_dir: data_dir.join("functions"),
            plugins_dir: data_dir.join("plugins"),
            scripts_dir: data_dir.join("scripts"),
            encryption_keys: None,
            admin_usernames: vec!["admin".into()],
            basic_auth: None,
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Text,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            pg_bin_dir: None,
            base_url: None,
            cors_origins: Vec::new(),
            notify_backends: Vec::new(),
            notify_strategy: Default::default(),
            notify_max_attempts: 12,
            lease: std::time::Duration::from_secs(60),
            resource_limits: Default::default(),
            max_concurrent_executions: 100,
            log_retention: std::time::Duration::from_secs(30 * 86_400),
            log_keep_executions: 5,
            completed_task_expiration: DEFAULT_COMPLETED_TASK_EXPIRATION,
            login_failure_limit: 10,
            network_allow: Vec::new(),
            network_deny_private: false,
            maintenance_mode: false,
            sandbox_program: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut full = vec!["mutask"];
        full.extend_from_slice(args);
        full.push("migrate");
        Cli::try_parse_from(full)
            .expect("cli parses")
            .settings
            .resolve()
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(".mutask"));
        assert_eq!(c.max_body_bytes, 256 * 1024);
        assert!(c.database_url.is_none() && c.basic_auth.is_none());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases: &[(&[&str], &str)] = &[
            (&["--listen", "nope"], "MUTASK_LISTEN"),
            (&["--database-url", "mysql://x"], "MUTASK_DATABASE_URL"),
            (&["--encryption-keys", "k:short"], "MUTASK_ENCRYPTION_KEYS"),
            (&["--basic-auth", "nocolon"], "MUTASK_BASIC_AUTH"),
            (
                &["--trusted-proxies", "10.0.0.0/99"],
                "MUTASK_TRUSTED_PROXIES",
            ),
            (&["--max-body-bytes", "10"], "MUTASK_MAX_BODY_BYTES"),
            (&["--pg-bin-dir", "/does/not/exist"], "MUTASK_PG_BIN_DIR"),
            (&["--base-url", "ftp://x"], "MUTASK_BASE_URL"),
            (&["--cors-origins", "ui.example.com"], "MUTASK_CORS_ORIGINS"),
            (
                &["--cors-origins", "https://a.example/path"],
                "MUTASK_CORS_ORIGINS",
            ),
            (
                &["--cors-origins", "*,https://a.example"],
                "MUTASK_CORS_ORIGINS",
            ),
            (&["--resource-limits", "db"], "MUTASK_RESOURCE_LIMITS"),
            (&["--network-allow", "10.0.0.0/99"], "MUTASK_NETWORK_ALLOW"),
            (&["--resource-limits", "a=1,a=2"], "MUTASK_RESOURCE_LIMITS"),
            (
                &["--max-concurrent-executions", "0"],
                "MUTASK_MAX_CONCURRENT_EXECUTIONS",
            ),
        ];
        for (args, setting) in cases {
            let e = parse(args).unwrap_err().to_string();
            assert!(e.contains(setting), "{args:?}: {e}");
        }
    }

    #[test]
    fn file_fills_unset_values_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mutask.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:9000\"\nadmin_usernames = \"a,b\"\n",
        )
        .unwrap();
        let c = parse(&["--config", f.to_str().unwrap()]).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.admin_usernames, ["a", "b"]);
        let c = parse(&[
            "--config",
            f.to_str().unwrap(),
            "--listen",
            "127.0.0.1:9001",
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 9001);
        std::fs::write(&f, "lisen = \"x\"\n").unwrap();
        let e = parse(&["--config", f.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("MUTASK_CONFIG") && e.contains("lisen"), "{e}");
    }

    #[test]
    fn basic_auth_kinds() {
        let users = parse_basic_auth(
            "a:pw,with,commas, b:$2b$12$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0",
        )
        .unwrap();
        assert!(matches!(&users[0].secret, PasswordCheck::Plain(p) if p == "pw,with,commas"));
        assert!(matches!(users[1].secret, PasswordCheck::Bcrypt(_)));
        let argon = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$W0l4wFqYpDJ6DkEQhQ2mD1O2VpvxJ8FpZz5fQ1dTy8E";
        let users = parse_basic_auth(&format!("x:{argon},y:pw")).unwrap();
        assert!(matches!(&users[0].secret, PasswordCheck::Argon2(h) if h == argon));
        assert_eq!(users[1].username, "y");
        assert!(parse_basic_auth("a:$argon2id$garbage").is_err());
        assert!(parse_basic_auth("a:x,a:y").unwrap_err().contains("twice"));
    }

    #[test]
    fn ip_ranges() {
        let r = IpRange::parse("10.1.0.0/16").unwrap();
        assert!(r.contains("10.1.2.3".parse().unwrap()));
        assert!(!r.contains("10.2.0.1".parse().unwrap()));
        assert!(r.contains("::ffff:10.1.9.9".parse().unwrap()));
        let one = IpRange::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(
            IpRange::parse("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
    }

    #[test]
    fn completed_task_expiration_is_a_duration_of_at_least_a_second() {
        let d = std::time::Duration::from_secs;
        assert_eq!(
            super::completed_task_expiration(None).unwrap(),
            d(720 * 3600)
        );
        assert_eq!(
            super::completed_task_expiration(Some(" ")).unwrap(),
            d(720 * 3600)
        );
        assert_eq!(
            super::completed_task_expiration(Some("15m")).unwrap(),
            d(900)
        );
        assert_eq!(super::completed_task_expiration(Some("1s")).unwrap(), d(1));
        for bad in ["0s", "500ms", "soon", "87601h", "-1h"] {
            let e = super::completed_task_expiration(Some(bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains("MUTASK_COMPLETED_TASK_EXPIRATION"), "{bad}: {e}");
        }
    }

    #[test]
    fn log_retention_is_a_duration_or_days_not_both() {
        let d = |secs| std::time::Duration::from_secs(secs);
        assert_eq!(super::log_retention(None, None).unwrap(), d(30 * 86_400));
        assert_eq!(super::log_retention(None, Some(2)).unwrap(), d(2 * 86_400));
        assert_eq!(super::log_retention(Some("90m"), None).unwrap(), d(5400));
        for (text, days) in [
            (Some("30s"), None),
            (Some("x"), None),
            (Some("1h"), Some(1)),
            (None, Some(0)),
        ] {
            let e = super::log_retention(text, days).unwrap_err().to_string();
            assert!(e.contains("MUTASK_LOG_RETENTION"), "{e}");
        }
    }
}
