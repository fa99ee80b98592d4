//! The embedded PostgreSQL cluster: when mutask runs without a database URL it starts a private
//! PostgreSQL server of its own, from the system's PostgreSQL binaries (`initdb`, `pg_ctl`,
//! `postgres`, found by [`find_binaries`]), with its data under `<data_dir>/pg`.
//!
//! Invariants:
//! - **No TCP.** The server listens only on a unix socket in a private directory
//!   (`<data_dir>/run`, or `/tmp/mutask-<hash>` when that path is too long for a socket or not
//!   reachable by the server's user); clients connect as the trusted superuser `mutask`, through
//!   [`EmbeddedPostgres::connect_options`] or the equivalent [`EmbeddedPostgres::url`].
//! - **Data survives.** `fsync` stays on; a second start on the same data dir reuses the cluster,
//!   and a postmaster still running from a previous mutask (killed with `kill -9`) is adopted
//!   rather than started twice. A stale `postmaster.pid` (dead PID, or a PID now used by
//!   something that is not this cluster's postmaster) is removed before starting.
//! - **Root works.** PostgreSQL refuses to run as root, so when mutask is root the cluster runs as
//!   the owner of an existing cluster, else the `postgres` user, else `nobody`. If that user
//!   cannot reach `<data_dir>` (a data dir under `/root`, say) the cluster lives in
//!   `/var/lib/mutask/pg-<hash>` instead, and `<data_dir>/pg-location` remembers that choice.
//! - **Explicit lifecycle.** There is no `Drop`: the application calls
//!   [`EmbeddedPostgres::stop`] on SIGINT/SIGTERM. Starting and stopping hold an exclusive
//!   `flock` on `<data_dir>/pg.lock`, so concurrent starts on one data dir do not race.
//! - Server settings are (re)written at every start to `<pgdata>/mutask.conf`, included from
//!   `postgresql.conf`; a user's own settings belong in `postgresql.auto.conf` (`ALTER SYSTEM`).

use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::kill;
use nix::unistd::{Gid, Pid, Uid, User, geteuid};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection, PgConnection};
use tokio::process::Command;

/// The port number of the embedded server. It only names the socket file (`.s.PGSQL.5432`):
/// the server does not listen on TCP.
pub const PORT: u16 = 5432;
/// The superuser created by `initdb`; every connection uses it (trust authentication).
pub const SUPERUSER: &str = "mutask";
/// The application database created at first start.
pub const DATABASE: &str = "mutask";

/// Longest socket file path we accept (the kernel limit is 107 bytes, keep a margin).
const MAX_SOCKET_PATH: usize = 100;
/// Where the cluster goes when root runs mutask on a data dir the server user cannot reach.
const RELOCATED_ROOT: &str = "/var/lib/mutask";
/// Seconds `pg_ctl` waits for the server to start or stop, and we wait for a first connection.
const TIMEOUT_SECS: u64 = 60;
/// Lines of `pg.log` / command output quoted in errors.
const EXCERPT_LINES: usize = 20;

/// Directories searched after the explicit one and `$PATH`, in order. A `*` matches a version;
/// the highest version is tried first.
const DEFAULT_BIN_PATTERNS: &[&str] = &[
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/bin",
    "/opt/homebrew/opt/postgresql*/bin",
    "/usr/local/opt/postgresql*/bin",
];

/// Everything that can go wrong while finding, initializing, starting or stopping the cluster.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No directory holds all of `initdb`, `pg_ctl` and `postgres`.
    #[error(
        "PostgreSQL server programs (initdb, pg_ctl, postgres) were not found, so mutask cannot \
         start its embedded database. Searched: {}. To fix this, do one of: install PostgreSQL \
         (e.g. `apt-get install postgresql`, `dnf install postgresql-server` or \
         `brew install postgresql`); or set MUTASK_DATABASE_URL to an existing PostgreSQL \
         server; or run `docker-compose up` (PostgreSQL and mutask in containers)",
        .searched.join(", ")
    )]
    NoBinaries {
        /// The directories (and `$PATH`) that were searched, as shown to the user.
        searched: Vec<String>,
    },
    /// `initdb` failed.
    #[error("initdb failed for {} ({status}):\n{output}", .pgdata.display())]
    InitDb {
        pgdata: PathBuf,
        status: String,
        /// Last lines of initdb's output.
        output: String,
    },
    /// `pg_ctl start` failed.
    #[error(
        "could not start the embedded PostgreSQL server at {} ({status}): {output}\n{log}",
        .pgdata.display()
    )]
    Start {
        pgdata: PathBuf,
        status: String,
        output: String,
        log: Box<LogExcerpt>,
    },
    /// `pg_ctl stop` failed.
    #[error("could not stop the embedded PostgreSQL server at {} ({status}): {output}", .pgdata.display())]
    Stop {
        pgdata: PathBuf,
        status: String,
        output: String,
    },
    /// The server runs but no connection succeeded in time.
    #[error(
        "the embedded PostgreSQL server at {} did not accept connections on socket directory {} \
         within {TIMEOUT_SECS}s: {source}\n{log}",
        .pgdata.display(), .socket_dir.display()
    )]
    Connect {
        pgdata: PathBuf,
        socket_dir: PathBuf,
        log: Box<LogExcerpt>,
        source: Box<sqlx::Error>,
    },
    /// Creating the `mutask` database failed.
    #[error("could not create database `{database}` in the embedded PostgreSQL server: {source}")]
    CreateDatabase {
        database: String,
        source: Box<sqlx::Error>,
    },
    /// A file-system operation failed.
    #[error("could not {what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A PostgreSQL program could not be run at all.
    #[error("could not run {}: {source}", .program.display())]
    Spawn { program: PathBuf, source: io::Error },
    /// Taking the start/stop lock failed.
    #[error("could not lock {}: {source}", .path.display())]
    Lock { path: PathBuf, source: Errno },
    /// mutask runs as root and no unprivileged user exists to run PostgreSQL.
    #[error(
        "mutask runs as root, and PostgreSQL refuses to: it must run as an unprivileged user, but \
         neither `postgres` nor `nobody` exists. Create a `postgres` user, run mutask as a normal \
         user, or set MUTASK_DATABASE_URL to an existing PostgreSQL server"
    )]
    NoUnprivilegedUser,
    /// The existing cluster was created by another major version than the binaries found.
    #[error(
        "the embedded cluster at {} was created by PostgreSQL {cluster_version}, but the \
         binaries found in {} are PostgreSQL {binaries_version}; install PostgreSQL \
         {cluster_version} (its bin directory is searched automatically) or use another data dir",
        .pgdata.display(), .bin_dir.display()
    )]
    VersionMismatch {
        pgdata: PathBuf,
        cluster_version: String,
        bin_dir: PathBuf,
        binaries_version: String,
    },
    /// The socket directory exists but someone else controls it.
    #[error("refusing to use socket directory {}: {reason}", .path.display())]
    UnsafeSocketDir { path: PathBuf, reason: String },
}

/// The last lines of the server log, quoted in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogExcerpt {
    pub path: PathBuf,
    pub tail: String,
}

impl LogExcerpt {
    fn read(path: &Path) -> Box<Self> {
        let tail = match fs::read(path) {
            Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes)),
            Err(e) => format!("(could not read it: {e})"),
        };
        Box::new(Self {
            path: path.to_path_buf(),
            tail,
        })
    }
}

impl std::fmt::Display for LogExcerpt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "last lines of {}:\n{}", self.path.display(), self.tail)
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EmbeddedError {
    let path = path.to_path_buf();
    move |source| EmbeddedError::Io { what, path, source }
}

/// The three PostgreSQL programs, all in one (symlink-resolved) directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
    pub postgres: PathBuf,
}

/// Finds `initdb`, `pg_ctl` and `postgres`: only in `explicit` when one is configured (a
/// configured directory is never silently replaced by another), else in each `$PATH` directory
/// (symlinks resolved, so `/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb` yields
/// the real bin dir), then the usual install locations (highest version first).
pub fn find_binaries(explicit: Option<&Path>) -> Result<PgBinaries, EmbeddedError> {
    let path_var = std::env::var_os("PATH");
    find_binaries_in(explicit, path_var.as_deref(), DEFAULT_BIN_PATTERNS)
}

/// [`find_binaries`] with the search injected: `path_var` stands for `$PATH`, `patterns` for
/// the default install locations.
fn find_binaries_in(
    explicit: Option<&Path>,
    path_var: Option<&OsStr>,
    patterns: &[&str],
) -> Result<PgBinaries, EmbeddedError> {
    let mut searched = Vec::new();
    if let Some(dir) = explicit {
        if let Some(found) = binaries_in(dir) {
            return Ok(found);
        }
        searched.push(format!("{} (MUTASK_PG_BIN_DIR)", dir.display()));
        return Err(EmbeddedError::NoBinaries { searched });
    }
    if let Some(path_var) = path_var {
        for dir in std::env::split_paths(path_var) {
            if dir.as_os_str().is_empty() {
                continue;
            }
            if let Some(found) = binaries_in(&dir) {
                return Ok(found);
            }
        }
        if !path_var.is_empty() {
            searched.push(format!("$PATH ({})", path_var.to_string_lossy()));
        }
    }
    for pattern in patterns {
        for dir in expand_pattern(pattern) {
            if let Some(found) = binaries_in(&dir) {
                return Ok(found);
            }
        }
        searched.push((*pattern).to_string());
    }
    Err(EmbeddedError::NoBinaries { searched })
}

/// The binaries in `dir`, if `dir/initdb` (after resolving symlinks) sits next to an
/// executable `pg_ctl` and `postgres`.
fn binaries_in(dir: &Path) -> Option<PgBinaries> {
    let initdb = fs::canonicalize(dir.join("initdb")).ok()?;
    let bin_dir = initdb.parent()?.to_path_buf();
    let found = PgBinaries {
        initdb: bin_dir.join("initdb"),
        pg_ctl: bin_dir.join("pg_ctl"),
        postgres: bin_dir.join("postgres"),
        bin_dir,
    };
    [&found.initdb, &found.pg_ctl, &found.postgres]
        .iter()
        .all(|p| is_executable(p))
        .then_some(found)
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Expands one `*` in one path component (`/usr/lib/postgresql/*/bin`), existing directories
/// only, highest version (the text the `*` matched) first. A pattern without `*` is returned
/// as is.
fn expand_pattern(pattern: &str) -> Vec<PathBuf> {
    let Some(star) = pattern.find('*') else {
        return vec![PathBuf::from(pattern)];
    };
    let component_start = pattern[..star].rfind('/').map_or(0, |i| i + 1);
    let component_end = pattern[star..]
        .find('/')
        .map_or(pattern.len(), |i| star + i);
    let parent = Path::new(&pattern[..component_start]);
    let prefix = &pattern[component_start..star];
    let suffix = &pattern[star + 1..component_end];
    let rest = pattern[component_end..].trim_start_matches('/');
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u64>, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            let dir = parent.join(&name).join(rest);
            dir.is_dir().then(|| (version_key(version), dir))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    found.into_iter().map(|(_, dir)| dir).collect()
}

/// `"15"` → `[15]`, `"@9.6"` → `[9, 6]`, `""` → `[]`.
fn version_key(version: &str) -> Vec<u64> {
    version
        .trim_start_matches(['@', '-'])
        .split('.')
        .map_while(|part| part.parse().ok())
        .collect()
}

/// How to start the embedded cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// mutask's data dir; the cluster lives in `<data_dir>/pg` (see the module doc).
    pub data_dir: PathBuf,
    /// A directory holding `initdb`, `pg_ctl` and `postgres`, searched before the defaults.
    pub bin_dir: Option<PathBuf>,
    /// `true` (the default) keeps PostgreSQL's crash safety. `false` turns off `fsync`,
    /// `synchronous_commit` and `full_page_writes` and runs `initdb --no-sync`: only for
    /// throwaway clusters such as the test cluster.
    pub durable: bool,
}

impl EmbeddedOptions {
    /// Durable cluster under `data_dir`, binaries from the default search.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bin_dir: None,
            durable: true,
        }
    }
}

/// The unprivileged account PostgreSQL runs as when mutask is root.
#[derive(Debug, Clone)]
struct RunAs {
    uid: Uid,
    gid: Gid,
    name: String,
    home: PathBuf,
}

impl From<User> for RunAs {
    fn from(user: User) -> Self {
        Self {
            uid: user.uid,
            gid: user.gid,
            name: user.name,
            home: user.dir,
        }
    }
}

/// Where everything of one cluster lives.
#[derive(Debug, Clone)]
struct Layout {
    /// Canonical data dir.
    data_dir: PathBuf,
    pgdata: PathBuf,
    log_file: PathBuf,
    socket_dir: PathBuf,
    /// `Some` when mutask is root.
    run_as: Option<RunAs>,
    /// The cluster was moved out of the data dir and `pg-location` must say so.
    record_location: bool,
}

impl Layout {
    fn lock_file(&self) -> PathBuf {
        self.data_dir.join("pg.lock")
    }

    /// Working directory of the PostgreSQL programs: reachable by the user they run as.
    fn work_dir(&self) -> &Path {
        self.pgdata.parent().unwrap_or(Path::new("/"))
    }
}

/// Works out the cluster location for `data_dir` (creating `data_dir` if needed) without
/// touching the cluster.
fn resolve_layout(data_dir: &Path) -> Result<Layout, EmbeddedError> {
    fs::create_dir_all(data_dir).map_err(io_err("create directory", data_dir))?;
    let data_dir = fs::canonicalize(data_dir).map_err(io_err("resolve", data_dir))?;
    let hash = short_hash(data_dir.as_os_str().as_bytes());
    let default_pgdata = data_dir.join("pg");
    let location_file = data_dir.join("pg-location");

    let recorded = match fs::read(&location_file) {
        Ok(bytes) => {
            let mut bytes = bytes;
            while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                bytes.pop();
            }
            (!bytes.is_empty()).then(|| PathBuf::from(OsString::from_vec(bytes)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("read", &location_file)(e)),
    };
    let mut pgdata = recorded.clone().unwrap_or_else(|| default_pgdata.clone());
    let mut run_as = choose_run_as(&pgdata)?;
    let mut record_location = false;
    if recorded.is_none()
        && let Some(user) = &run_as
        && !pgdata.join("PG_VERSION").exists()
        && !can_traverse(&data_dir, user)
    {
        let relocated = Path::new(RELOCATED_ROOT).join(format!("pg-{hash}"));
        tracing::info!(
            data_dir = %data_dir.display(),
            cluster = %relocated.display(),
            "mutask runs as root and PostgreSQL must run as the unprivileged user `{}`, who cannot \
             reach the data dir; the embedded cluster goes to {} instead (recorded in {})",
            user.name,
            relocated.display(),
            location_file.display(),
        );
        pgdata = relocated;
        run_as = choose_run_as(&pgdata)?;
        record_location = true;
    }

    let log_file = if pgdata == default_pgdata {
        data_dir.join("pg.log")
    } else {
        let mut name = pgdata.clone().into_os_string();
        name.push(".log");
        PathBuf::from(name)
    };

    let local_socket_dir = data_dir.join("run");
    let fits = local_socket_dir
        .join(format!(".s.PGSQL.{PORT}"))
        .as_os_str()
        .len()
        <= MAX_SOCKET_PATH;
    let reachable = run_as.as_ref().is_none_or(|u| can_traverse(&data_dir, u));
    let socket_dir = if fits && reachable {
        local_socket_dir
    } else {
        PathBuf::from(format!("/tmp/mutask-{hash}"))
    };

    Ok(Layout {
        data_dir,
        pgdata,
        log_file,
        socket_dir,
        run_as,
        record_location,
    })
}

/// 64-bit FNV-1a as 16 hex digits: stable across runs and builds (unlike `DefaultHasher`).
fn short_hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// `None` unless mutask is root. Then: the owner of an existing cluster, else `postgres`,
/// else `nobody`.
fn choose_run_as(pgdata: &Path) -> Result<Option<RunAs>, EmbeddedError> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    if pgdata.join("PG_VERSION").exists()
        && let Ok(meta) = fs::metadata(pgdata)
        && meta.uid() != 0
    {
        let uid = Uid::from_raw(meta.uid());
        return Ok(Some(match User::from_uid(uid) {
            Ok(Some(user)) => user.into(),
            _ => RunAs {
                uid,
                gid: Gid::from_raw(meta.gid()),
                name: uid.to_string(),
                home: PathBuf::from("/"),
            },
        }));
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(user)) = User::from_name(name)
            && !user.uid.is_root()
        {
            return Ok(Some(user.into()));
        }
    }
    Err(EmbeddedError::NoUnprivilegedUser)
}

/// Whether `user` may search `dir` and every ancestor (only its primary group counts: a
/// process spawned with `uid()` by root loses its supplementary groups).
fn can_traverse(dir: &Path, user: &RunAs) -> bool {
    dir.ancestors().all(|ancestor| {
        let Ok(meta) = fs::metadata(ancestor) else {
            return false;
        };
        let mode = meta.mode();
        if meta.uid() == user.uid.as_raw() {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid.as_raw() {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    })
}

/// What `postmaster.pid` says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PidState {
    /// No `postmaster.pid`: the server is not running.
    Absent,
    /// The postmaster of this cluster is alive.
    Running {
        pid: i32,
        port: Option<u16>,
        socket_dir: Option<PathBuf>,
    },
    /// The file is left over from a server that is gone.
    Stale { pid: Option<i32> },
}

fn postmaster_state(pgdata: &Path) -> Result<PidState, EmbeddedError> {
    let pid_file = pgdata.join("postmaster.pid");
    let text = match fs::read(&pid_file) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PidState::Absent),
        Err(e) => return Err(io_err("read", &pid_file)(e)),
    };
    // Lines: pid, data dir, start time, port, first socket dir, listen address, shmem key, status.
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let pid = lines.first().and_then(|l| l.parse::<i32>().ok());
    match pid {
        Some(pid) if is_live_postgres(pid, Some(pgdata)) => Ok(PidState::Running {
            pid,
            port: lines.get(3).and_then(|l| l.parse().ok()),
            socket_dir: lines
                .get(4)
                .filter(|l| l.starts_with('/'))
                .map(PathBuf::from),
        }),
        _ => Ok(PidState::Stale { pid }),
    }
}

/// Whether `pid` is a live PostgreSQL process (and, when `pgdata` is given and the kernel lets
/// us see it, one whose working directory is that cluster: the postmaster chdirs there).
fn is_live_postgres(pid: i32, pgdata: Option<&Path>) -> bool {
    if pid <= 0 {
        return false;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if !proc_dir.exists() {
        // No procfs (not Linux): a live PID is all we can check.
        return true;
    }
    if let Ok(cmdline) = fs::read(proc_dir.join("cmdline")) {
        let cmdline = String::from_utf8_lossy(&cmdline);
        // A zombie has an empty command line.
        if !(cmdline.contains("postgres") || cmdline.contains("postmaster")) {
            return false;
        }
    }
    if let Some(pgdata) = pgdata
        && let Ok(cwd) = fs::read_link(proc_dir.join("cwd"))
        && let Ok(pgdata) = fs::canonicalize(pgdata)
        && cwd != pgdata
    {
        return false;
    }
    true
}

/// A running embedded PostgreSQL cluster (started or adopted by [`EmbeddedPostgres::start`]).
///
/// Dropping it leaves the server running: call [`EmbeddedPostgres::stop`] at shutdown.
#[derive(Debug, Clone)]
pub struct EmbeddedPostgres {
    binaries: PgBinaries,
    layout: Layout,
    port: u16,
}

impl EmbeddedPostgres {
    /// Starts (or adopts) the cluster under `data_dir`, binaries from the default search.
    pub async fn start(data_dir: &Path) -> Result<Self, EmbeddedError> {
        Self::start_with(EmbeddedOptions::new(data_dir)).await
    }

    /// Starts the cluster described by `opts`: `initdb` on first use, `pg_ctl start` unless
    /// its postmaster is already running, then waits for a connection and creates the
    /// `mutask` database if missing.
    pub async fn start_with(opts: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let binaries = find_binaries(opts.bin_dir.as_deref())?;
        let layout = resolve_layout(&opts.data_dir)?;
        let _lock = lock_file(&layout.lock_file()).await?;

        let mut port = PORT;
        let mut layout = layout;
        match postmaster_state(&layout.pgdata)? {
            PidState::Running {
                pid,
                port: running_port,
                socket_dir,
            } => {
                tracing::info!(
                    pgdata = %layout.pgdata.display(),
                    pid,
                    "the embedded PostgreSQL server is already running; reusing it"
                );
                if let Some(socket_dir) = socket_dir {
                    layout.socket_dir = socket_dir;
                }
                port = running_port.unwrap_or(PORT);
            }
            state => {
                if let PidState::Stale { pid } = state {
                    let pid_file = layout.pgdata.join("postmaster.pid");
                    tracing::info!(
                        pid_file = %pid_file.display(),
                        pid = ?pid,
                        "removing stale postmaster.pid: no PostgreSQL server of this cluster runs with that PID"
                    );
                    fs::remove_file(&pid_file).map_err(io_err("remove", &pid_file))?;
                }
                prepare_dirs(&layout)?;
                if layout.pgdata.join("PG_VERSION").exists() {
                    check_version(&binaries, &layout).await?;
                } else {
                    init_cluster(&binaries, &layout, opts.durable).await?;
                }
                write_settings(&layout, opts.durable)?;
                remove_stale_socket_lock(&layout.socket_dir)?;
                start_server(&binaries, &layout).await?;
            }
        }

        let cluster = Self {
            binaries,
            layout,
            port,
        };
        cluster.ensure_database().await?;
        tracing::info!(
            pgdata = %cluster.layout.pgdata.display(),
            socket_dir = %cluster.layout.socket_dir.display(),
            "embedded PostgreSQL is ready"
        );
        Ok(cluster)
    }

    /// Connection options for `database` through the private socket, as superuser `mutask`.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .socket(&self.layout.socket_dir)
            .port(self.port)
            .username(SUPERUSER)
            .database(database)
            .ssl_mode(PgSslMode::Disable)
    }

    /// The same as [`EmbeddedPostgres::connect_options`] as a URL (sqlx and libpq accept it),
    /// e.g. `postgres://mutask@localhost:5432/mutask?host=/srv/.mutask/run&sslmode=disable`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost:{}/{}?host={}&sslmode=disable",
            self.port,
            percent_encode(database.as_bytes(), false),
            percent_encode(self.layout.socket_dir.as_os_str().as_bytes(), true),
        )
    }

    /// The cluster's data directory (PGDATA).
    pub fn pgdata(&self) -> &Path {
        &self.layout.pgdata
    }

    /// The directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.layout.socket_dir
    }

    /// The server log (`<data_dir>/pg.log` unless the cluster was relocated).
    pub fn log_file(&self) -> &Path {
        &self.layout.log_file
    }

    /// The PostgreSQL programs in use.
    pub fn binaries(&self) -> &PgBinaries {
        &self.binaries
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are ended, data is flushed). The
    /// application calls this on SIGINT/SIGTERM; nothing stops the server implicitly.
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        let _lock = lock_file(&self.layout.lock_file()).await?;
        stop_server(&self.binaries, &self.layout).await?;
        if self.layout.socket_dir.starts_with("/tmp") {
            // Best effort: our private /tmp/mutask-<hash> dir, empty once the server is down.
            let _ = fs::remove_dir(&self.layout.socket_dir);
        }
        Ok(())
    }

    /// Stops the cluster under `opts.data_dir` if its server is running, without a handle
    /// (e.g. a cluster left running by an earlier process). Returns whether it was running.
    pub async fn stop_existing(opts: &EmbeddedOptions) -> Result<bool, EmbeddedError> {
        let layout = resolve_layout(&opts.data_dir)?;
        if !matches!(postmaster_state(&layout.pgdata)?, PidState::Running { .. }) {
            return Ok(false);
        }
        let binaries = find_binaries(opts.bin_dir.as_deref())?;
        let _lock = lock_file(&layout.lock_file()).await?;
        stop_server(&binaries, &layout).await?;
        Ok(true)
    }

    /// Waits for the server to accept connections, then creates the `mutask` database if it
    /// does not exist.
    async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let options = self.connect_options("postgres");
        let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
        let mut conn = loop {
            let attempt = async {
                let mut conn = PgConnection::connect_with(&options).await?;
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                Ok::<_, sqlx::Error>(conn)
            };
            match attempt.await {
                Ok(conn) => break conn,
                Err(source) if Instant::now() >= deadline => {
                    return Err(EmbeddedError::Connect {
                        pgdata: self.layout.pgdata.clone(),
                        socket_dir: self.layout.socket_dir.clone(),
                        log: LogExcerpt::read(&self.layout.log_file),
                        source: Box::new(source),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let create_err = |source| EmbeddedError::CreateDatabase {
            database: DATABASE.to_string(),
            source: Box::new(source),
        };
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DATABASE)
                .fetch_one(&mut conn)
                .await
                .map_err(create_err)?;
        if !exists {
            tracing::info!(database = DATABASE, "creating the database");
            match sqlx::raw_sql("CREATE DATABASE mutask")
                .execute(&mut conn)
                .await
            {
                Ok(_) => {}
                // 42P04 duplicate_database: created meanwhile by someone else.
                Err(e) if db_code(&e).as_deref() == Some("42P04") => {}
                Err(e) => return Err(create_err(e)),
            }
        }
        let _ = conn.close().await;
        Ok(())
    }
}

/// The SQLSTATE of a database error.
pub(crate) fn db_code(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

/// Takes an exclusive `flock` on `path` (created if needed), waiting as long as it takes; the
/// lock is released when the returned value is dropped.
pub(crate) async fn lock_file(path: &Path) -> Result<Flock<File>, EmbeddedError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("open", path))?;
    let lock_path = path.to_path_buf();
    tokio::task::spawn_blocking(move || Flock::lock(file, FlockArg::LockExclusive))
        .await
        .map_err(|e| EmbeddedError::Io {
            what: "lock",
            path: lock_path.clone(),
            source: io::Error::other(e),
        })?
        .map_err(|(_, source)| EmbeddedError::Lock {
            path: lock_path,
            source,
        })
}

/// Percent-encodes everything but RFC 3986 unreserved characters (and `/` if `keep_slash`).
fn percent_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Creates the cluster's directories (and log file) and, as root, hands them to the server user.
fn prepare_dirs(layout: &Layout) -> Result<(), EmbeddedError> {
    let pgdata = &layout.pgdata;
    if let Some(parent) = pgdata.parent()
        && !parent.exists()
    {
        // Searchable by the server user: `/var/lib/mutask` for a relocated cluster.
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(io_err("create directory", parent))?;
    }
    match DirBuilder::new().mode(0o700).create(pgdata) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create directory", pgdata)(e)),
    }
    if layout.record_location {
        let location_file = layout.data_dir.join("pg-location");
        let mut content = pgdata.as_os_str().as_bytes().to_vec();
        content.push(b'\n');
        fs::write(&location_file, content).map_err(io_err("write", &location_file))?;
    }
    ensure_socket_dir(&layout.socket_dir, layout.run_as.as_ref())?;
    if let Some(user) = &layout.run_as {
        let meta = fs::metadata(pgdata).map_err(io_err("inspect", pgdata))?;
        if meta.uid() != user.uid.as_raw() {
            if pgdata.join("PG_VERSION").exists() {
                tracing::info!(
                    pgdata = %pgdata.display(),
                    user = %user.name,
                    "handing the existing cluster's files to the server user"
                );
                chown_recursive(pgdata, user)?;
            } else {
                chown(pgdata, user)?;
            }
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&layout.log_file)
            .map_err(io_err("create", &layout.log_file))?;
        chown(&layout.log_file, user)?;
    }
    Ok(())
}

fn chown(path: &Path, user: &RunAs) -> Result<(), EmbeddedError> {
    std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
        .map_err(io_err("change the owner of", path))
}

fn chown_recursive(path: &Path, user: &RunAs) -> Result<(), EmbeddedError> {
    std::os::unix::fs::lchown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
        .map_err(io_err("change the owner of", path))?;
    let meta = fs::symlink_metadata(path).map_err(io_err("inspect", path))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err("read directory", path))? {
            let entry = entry.map_err(io_err("read directory", path))?;
            chown_recursive(&entry.path(), user)?;
        }
    }
    Ok(())
}

/// Creates the socket directory (mode 0700, owned by the server user), or checks that an
/// existing one is ours and private (it may sit in the world-writable `/tmp`).
fn ensure_socket_dir(dir: &Path, run_as: Option<&RunAs>) -> Result<(), EmbeddedError> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(dir).map_err(io_err("inspect", dir))?;
            let unsafe_dir = |reason: String| EmbeddedError::UnsafeSocketDir {
                path: dir.to_path_buf(),
                reason,
            };
            if !meta.is_dir() {
                return Err(unsafe_dir("it is not a directory".into()));
            }
            let me = geteuid().as_raw();
            let server = run_as.map_or(me, |u| u.uid.as_raw());
            if meta.uid() != me && meta.uid() != server {
                return Err(unsafe_dir(format!(
                    "it belongs to uid {}, not to the server user",
                    meta.uid()
                )));
            }
            if meta.mode() & 0o777 != 0o700 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(io_err("restrict the permissions of", dir))?;
            }
        }
        Err(e) => return Err(io_err("create directory", dir)(e)),
    }
    if let Some(user) = run_as {
        chown(dir, user)?;
    }
    Ok(())
}

/// Removes the socket lock file (and socket) left by a dead server: PostgreSQL refuses to
/// start if that file names a live PID, even one reused by an unrelated process.
fn remove_stale_socket_lock(socket_dir: &Path) -> Result<(), EmbeddedError> {
    let lock = socket_dir.join(format!(".s.PGSQL.{PORT}.lock"));
    let Ok(text) = fs::read_to_string(&lock) else {
        return Ok(());
    };
    let pid = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok());
    if pid.is_some_and(|pid| is_live_postgres(pid, None)) {
        return Ok(());
    }
    tracing::info!(lock = %lock.display(), pid = ?pid, "removing stale PostgreSQL socket lock file");
    fs::remove_file(&lock).map_err(io_err("remove", &lock))?;
    let socket = socket_dir.join(format!(".s.PGSQL.{PORT}"));
    match fs::remove_file(&socket) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &socket)(e)),
        _ => Ok(()),
    }
}

/// A PostgreSQL program run as the server user, in a directory that user can reach.
fn pg_command(program: &Path, layout: &Layout) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(layout.work_dir())
        .stdin(Stdio::null())
        .env_remove("PGDATA")
        .env_remove("PGPORT");
    if let Some(user) = &layout.run_as {
        cmd.uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
    }
    cmd
}

async fn run(cmd: &mut Command, program: &Path) -> Result<Output, EmbeddedError> {
    cmd.output().await.map_err(|source| EmbeddedError::Spawn {
        program: program.to_path_buf(),
        source,
    })
}

/// The last lines of a command's stdout and stderr.
fn output_excerpt(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    last_lines(&text)
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(EXCERPT_LINES)..].join("\n")
}

/// `initdb` with a UTF-8 C locale, falling back to plain `C` where `C.UTF-8` is missing.
async fn init_cluster(
    binaries: &PgBinaries,
    layout: &Layout,
    durable: bool,
) -> Result<(), EmbeddedError> {
    tracing::info!(
        pgdata = %layout.pgdata.display(),
        bin_dir = %binaries.bin_dir.display(),
        "initializing the embedded PostgreSQL cluster"
    );
    let mut outputs = Vec::new();
    let mut status = String::new();
    for locale in ["C.UTF-8", "C"] {
        let mut cmd = pg_command(&binaries.initdb, layout);
        cmd.arg("-D")
            .arg(&layout.pgdata)
            .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8"])
            .arg(format!("--locale={locale}"));
        if !durable {
            cmd.arg("--no-sync");
        }
        let output = run(&mut cmd, &binaries.initdb).await?;
        if output.status.success() {
            return Ok(());
        }
        outputs.push(format!(
            "with --locale={locale}:\n{}",
            output_excerpt(&output)
        ));
        status = output.status.to_string();
        empty_dir(&layout.pgdata)?;
    }
    Err(EmbeddedError::InitDb {
        pgdata: layout.pgdata.clone(),
        status,
        output: outputs.join("\n"),
    })
}

/// Removes what a failed initdb may have left in `dir`, keeping `dir` itself.
fn empty_dir(dir: &Path) -> Result<(), EmbeddedError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err("read directory", dir))?.path();
        let removed = if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_err("remove", &path))?;
    }
    Ok(())
}

/// Refuses to start a cluster with binaries of another major version (PostgreSQL would fail
/// with a less helpful message in the log).
async fn check_version(binaries: &PgBinaries, layout: &Layout) -> Result<(), EmbeddedError> {
    let version_file = layout.pgdata.join("PG_VERSION");
    let cluster_version = fs::read_to_string(&version_file)
        .map_err(io_err("read", &version_file))?
        .trim()
        .to_string();
    let output = run(
        Command::new(&binaries.postgres).arg("-V"),
        &binaries.postgres,
    )
    .await?;
    // "postgres (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)"
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(version) = text
        .split("(PostgreSQL)")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
    else {
        return Ok(());
    };
    let major = |v: &str| -> String {
        let mut parts = v.split('.');
        let first = parts.next().unwrap_or_default();
        // Before PostgreSQL 10 the major version had two parts (9.6).
        match (first.parse::<u32>(), parts.next()) {
            (Ok(n), Some(second)) if n < 10 => format!("{first}.{second}"),
            _ => first.to_string(),
        }
    };
    let binaries_version = major(version);
    if binaries_version != cluster_version {
        return Err(EmbeddedError::VersionMismatch {
            pgdata: layout.pgdata.clone(),
            cluster_version,
            bin_dir: binaries.bin_dir.clone(),
            binaries_version,
        });
    }
    Ok(())
}

/// Quotes a value for postgresql.conf.
fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Writes `<pgdata>/mutask.conf` and makes sure `postgresql.conf` includes it (last, so its
/// settings win over initdb's).
fn write_settings(layout: &Layout, durable: bool) -> Result<(), EmbeddedError> {
    let socket_dir = layout.socket_dir.to_string_lossy();
    let on_off = if durable { "on" } else { "off" };
    let settings = [
        ("listen_addresses", "''".to_string()),
        ("unix_socket_directories", conf_quote(&socket_dir)),
        ("port", PORT.to_string()),
        ("max_connections", "200".to_string()),
        ("shared_buffers", "'128MB'".to_string()),
        ("fsync", on_off.to_string()),
        ("synchronous_commit", on_off.to_string()),
        ("full_page_writes", on_off.to_string()),
    ];
    let mut text = String::from(
        "# Written by mutask at every start of its embedded PostgreSQL: edits here are lost.\n\
         # Put your own settings in postgresql.auto.conf (ALTER SYSTEM).\n",
    );
    for (name, value) in settings {
        text.push_str(&format!("{name} = {value}\n"));
    }
    let conf = layout.pgdata.join("mutask.conf");
    let tmp = layout.pgdata.join("mutask.conf.tmp");
    fs::write(&tmp, text).map_err(io_err("write", &tmp))?;
    if let Some(user) = &layout.run_as {
        chown(&tmp, user)?;
    }
    fs::rename(&tmp, &conf).map_err(io_err("replace", &conf))?;

    let main_conf = layout.pgdata.join("postgresql.conf");
    let current = fs::read_to_string(&main_conf).map_err(io_err("read", &main_conf))?;
    let include = "include_if_exists = 'mutask.conf'";
    if !current.lines().any(|l| l.trim() == include) {
        let mut file = OpenOptions::new()
            .append(true)
            .open(&main_conf)
            .map_err(io_err("open", &main_conf))?;
        io::Write::write_all(
            &mut file,
            format!("\n# mutask: settings managed by mutask (keep this line last)\n{include}\n")
                .as_bytes(),
        )
        .map_err(io_err("write", &main_conf))?;
    }
    Ok(())
}

async fn start_server(binaries: &PgBinaries, layout: &Layout) -> Result<(), EmbeddedError> {
    tracing::info!(
        pgdata = %layout.pgdata.display(),
        log = %layout.log_file.display(),
        "starting the embedded PostgreSQL server"
    );
    let mut cmd = pg_command(&binaries.pg_ctl, layout);
    cmd.arg("start")
        .arg("-D")
        .arg(&layout.pgdata)
        .arg("-l")
        .arg(&layout.log_file)
        .args(["-w", "-t", &TIMEOUT_SECS.to_string()]);
    let output = run(&mut cmd, &binaries.pg_ctl).await?;
    if output.status.success() {
        return Ok(());
    }
    Err(EmbeddedError::Start {
        pgdata: layout.pgdata.clone(),
        status: output.status.to_string(),
        output: output_excerpt(&output),
        log: LogExcerpt::read(&layout.log_file),
    })
}

async fn stop_server(binaries: &PgBinaries, layout: &Layout) -> Result<(), EmbeddedError> {
    if !matches!(postmaster_state(&layout.pgdata)?, PidState::Running { .. }) {
        tracing::debug!(pgdata = %layout.pgdata.display(), "embedded PostgreSQL is not running");
        return Ok(());
    }
    tracing::info!(pgdata = %layout.pgdata.display(), "stopping the embedded PostgreSQL server");
    let mut cmd = pg_command(&binaries.pg_ctl, layout);
    cmd.arg("stop").arg("-D").arg(&layout.pgdata).args([
        "-m",
        "fast",
        "-w",
        "-t",
        &TIMEOUT_SECS.to_string(),
    ]);
    let output = run(&mut cmd, &binaries.pg_ctl).await?;
    if output.status.success() {
        return Ok(());
    }
    Err(EmbeddedError::Stop {
        pgdata: layout.pgdata.clone(),
        status: output.status.to_string(),
        output: output_excerpt(&output),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;
    use std::str::FromStr;

    #[test]
    fn finds_the_installed_binaries() {
        let found = find_binaries(None).expect("PostgreSQL binaries on this machine");
        assert!(found.bin_dir.is_absolute());
        for program in [&found.initdb, &found.pg_ctl, &found.postgres] {
            assert!(is_executable(program), "{}", program.display());
            assert_eq!(program.parent(), Some(found.bin_dir.as_path()));
        }
        let pg15 = Path::new("/usr/lib/postgresql/15/bin");
        if pg15.join("initdb").exists() && binaries_in(Path::new("/usr/local/bin")).is_some() {
            // /usr/local/bin/initdb is a symlink here: the real bin dir is used.
            let via_path = find_binaries_in(None, Some(OsStr::new("/nowhere:/usr/local/bin")), &[])
                .expect("found through PATH");
            assert_eq!(via_path.bin_dir, pg15);
        }
        if pg15.join("initdb").exists() {
            let via_default =
                find_binaries_in(None, Some(OsStr::new("")), DEFAULT_BIN_PATTERNS).unwrap();
            assert!(via_default.bin_dir.starts_with("/usr/lib/postgresql/"));
        }
    }

    #[test]
    fn missing_binaries_explain_every_way_out() {
        // a configured directory is the only place searched
        let pg15 = Path::new("/usr/lib/postgresql/15/bin");
        let explicit = find_binaries_in(
            Some(Path::new("/nonexistent/pg/bin")),
            Some(OsStr::new("/usr/local/bin")),
            &["/usr/lib/postgresql/*/bin"],
        );
        if pg15.join("initdb").exists() {
            let message = explicit.unwrap_err().to_string();
            assert!(
                message.contains("/nonexistent/pg/bin (MUTASK_PG_BIN_DIR)"),
                "{message}"
            );
        }
        let err = find_binaries_in(
            None,
            Some(OsStr::new("")),
            &["/nonexistent/lib/postgresql/*/bin"],
        )
        .unwrap_err();
        assert!(matches!(err, EmbeddedError::NoBinaries { .. }), "{err:?}");
        let message = err.to_string();
        for needle in [
            "MUTASK_DATABASE_URL",
            "docker-compose up",
            "apt-get install postgresql",
            "/nonexistent/lib/postgresql/*/bin",
        ] {
            assert!(message.contains(needle), "{needle:?} missing in: {message}");
        }
        assert!(!message.contains('\n'), "one line: {message}");
    }

    #[test]
    fn patterns_expand_highest_version_first() {
        let dir = tempfile::tempdir().unwrap();
        for version in ["9.6", "15", "10", "notaversion"] {
            fs::create_dir_all(dir.path().join(version).join("bin")).unwrap();
        }
        fs::create_dir_all(dir.path().join("16")).unwrap(); // no bin: skipped
        let pattern = format!("{}/*/bin", dir.path().display());
        let found: Vec<String> = expand_pattern(&pattern)
            .iter()
            .map(|p| {
                p.parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(found, ["15", "10", "9.6", "notaversion"]);
        assert_eq!(version_key("@14"), vec![14]);
        assert_eq!(
            expand_pattern("/usr/local/pgsql/bin"),
            [PathBuf::from("/usr/local/pgsql/bin")]
        );
    }

    #[test]
    fn url_escapes_the_socket_dir() {
        assert_eq!(percent_encode(b"/tmp/a b+c&d", true), "/tmp/a%20b%2Bc%26d");
        assert_eq!(percent_encode(b"x/y", false), "x%2Fy");
        assert_eq!(conf_quote("/it's\\"), "'/it''s\\\\'");
    }

    async fn select_one(options: &PgConnectOptions) -> i32 {
        let mut conn = PgConnection::connect_with(options).await.expect("connect");
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        one
    }

    /// A tempdir the server user can reach when we are root (whatever the umask).
    fn open_tempdir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[tokio::test]
    async fn cluster_starts_serves_and_keeps_data_across_restarts() {
        let dir = open_tempdir();
        let data_dir = dir.path().join("data");
        let pg = EmbeddedPostgres::start(&data_dir)
            .await
            .expect("first start");
        let data_dir = fs::canonicalize(&data_dir).unwrap();
        assert_eq!(pg.pgdata(), data_dir.join("pg"));
        assert_eq!(pg.socket_dir(), data_dir.join("run"));
        assert!(pg.socket_dir().join(".s.PGSQL.5432").exists());
        if geteuid().is_root() {
            let owner = fs::metadata(pg.pgdata()).unwrap().uid();
            assert_ne!(owner, 0, "the cluster must not belong to root");
        }

        assert_eq!(select_one(&pg.connect_options(DATABASE)).await, 1);
        let url = pg.url(DATABASE);
        assert!(url.contains("?host=/"), "{url}");
        let from_url = PgConnectOptions::from_str(&url).expect("sqlx parses the url");
        assert_eq!(from_url.get_socket(), Some(&pg.socket_dir().to_path_buf()));
        assert_eq!(from_url.get_database(), Some(DATABASE));
        assert_eq!(select_one(&from_url).await, 1);

        let mut conn = PgConnection::connect_with(&pg.connect_options(DATABASE))
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        pg.stop().await.expect("stop");
        assert!(!data_dir.join("pg/postmaster.pid").exists());

        let pg = EmbeddedPostgres::start(&data_dir)
            .await
            .expect("second start");
        let mut conn = PgConnection::connect_with(&pg.connect_options(DATABASE))
            .await
            .unwrap();
        let row = sqlx::query("SELECT v FROM kept")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("v"), "survives");
        let fsync: String = sqlx::query_scalar("SHOW fsync")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(fsync, "on");
        let listen: String = sqlx::query_scalar("SHOW listen_addresses")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(listen, "");
        conn.close().await.unwrap();
        pg.stop().await.expect("second stop");
    }

    #[tokio::test]
    async fn running_server_is_adopted_and_stale_pid_files_are_removed() {
        let dir = open_tempdir();
        let opts = EmbeddedOptions {
            durable: false,
            ..EmbeddedOptions::new(dir.path())
        };
        let first = EmbeddedPostgres::start_with(opts.clone()).await.unwrap();
        let pid_file = first.pgdata().join("postmaster.pid");
        let running_pid = fs::read_to_string(&pid_file).unwrap();
        // As if mutask had been killed with -9: the handle is gone, the server is not.
        drop(first);
        let adopted = EmbeddedPostgres::start_with(opts.clone()).await.unwrap();
        assert_eq!(
            fs::read_to_string(&pid_file).unwrap(),
            running_pid,
            "not restarted"
        );
        assert_eq!(select_one(&adopted.connect_options(DATABASE)).await, 1);
        adopted.stop().await.unwrap();
        assert!(!pid_file.exists());
        assert!(!EmbeddedPostgres::stop_existing(&opts).await.unwrap());

        let own_pid = std::process::id().to_string();
        for stale_pid in ["999999", own_pid.as_str()] {
            fs::write(
                &pid_file,
                format!("{stale_pid}\n/elsewhere\n1700000000\n5432\n/tmp\n\n  0 0\nready   \n"),
            )
            .unwrap();
            let pg = EmbeddedPostgres::start_with(opts.clone())
                .await
                .unwrap_or_else(|e| panic!("start over a stale pid {stale_pid}: {e}"));
            assert_eq!(select_one(&pg.connect_options(DATABASE)).await, 1);
            assert!(EmbeddedPostgres::stop_existing(&opts).await.unwrap());
        }
    }

    #[tokio::test]
    async fn failed_start_quotes_the_server_log() {
        let dir = open_tempdir();
        let opts = EmbeddedOptions {
            durable: false,
            ..EmbeddedOptions::new(dir.path())
        };
        let pg = EmbeddedPostgres::start_with(opts.clone()).await.unwrap();
        let auto_conf = pg.pgdata().join("postgresql.auto.conf");
        pg.stop().await.unwrap();
        let mut conf = fs::read_to_string(&auto_conf).unwrap();
        conf.push_str("work_mem = 'plenty'\n");
        fs::write(&auto_conf, conf).unwrap();

        let err = EmbeddedPostgres::start_with(opts).await.unwrap_err();
        assert!(matches!(err, EmbeddedError::Start { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("pg.log"), "{message}");
        assert!(
            message.contains("work_mem"),
            "the log excerpt names the cause: {message}"
        );
    }

    #[tokio::test]
    async fn root_relocates_a_cluster_its_server_user_cannot_reach() {
        if !geteuid().is_root() {
            eprintln!("skipped: only meaningful as root");
            return;
        }
        // A root-owned 0700 dir (like /root): `postgres` cannot traverse it.
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let expected = resolve_layout(dir.path()).unwrap().pgdata;
        assert!(
            expected.starts_with(RELOCATED_ROOT),
            "{}",
            expected.display()
        );
        /// Shuts down and removes the relocated cluster even when an assertion fails.
        struct Cleanup(PathBuf);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                if let Ok(text) = fs::read_to_string(self.0.join("postmaster.pid"))
                    && let Some(pid) = text.lines().next().and_then(|l| l.parse().ok())
                    && is_live_postgres(pid, Some(&self.0))
                {
                    // Immediate shutdown.
                    let _ = kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGQUIT);
                }
                let _ = fs::remove_dir_all(&self.0);
                let mut log = self.0.clone().into_os_string();
                log.push(".log");
                let _ = fs::remove_file(log);
            }
        }
        let _cleanup = Cleanup(expected.clone());

        let opts = EmbeddedOptions {
            durable: false,
            ..EmbeddedOptions::new(dir.path())
        };
        let pg = EmbeddedPostgres::start_with(opts.clone())
            .await
            .expect("start");
        assert_eq!(pg.pgdata(), expected);
        let recorded = fs::read_to_string(dir.path().join("pg-location")).unwrap();
        assert_eq!(recorded.trim(), expected.to_string_lossy());
        assert!(
            pg.socket_dir()
                .to_string_lossy()
                .starts_with("/tmp/mutask-"),
            "{}",
            pg.socket_dir().display()
        );
        assert_ne!(fs::metadata(pg.pgdata()).unwrap().uid(), 0);
        assert_eq!(select_one(&pg.connect_options(DATABASE)).await, 1);
        let socket_dir = pg.socket_dir().to_path_buf();
        pg.stop().await.unwrap();
        assert!(
            !socket_dir.exists(),
            "private /tmp socket dir removed at stop"
        );

        // The location is remembered, and the data found again.
        assert_eq!(resolve_layout(dir.path()).unwrap().pgdata, expected);
        let pg = EmbeddedPostgres::start_with(opts).await.expect("restart");
        assert_eq!(pg.pgdata(), expected);
        pg.stop().await.unwrap();
    }
}
