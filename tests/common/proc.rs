//! `mutask serve` as a separate process on a given database, for the fault campaigns
//! (tests/kill_campaign.rs, tests/chaos_soak.rs): start, wait until ready, signal, kill -9.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_mutask");

/// The templates and scripts of the fault tests.
pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fault")
}

pub struct Inst {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub name: String,
}

impl Inst {
    /// Starts an instance with the fault fixtures and a 3 s lease; admin:pw.
    pub fn start(db_url: &str, key: &str, dir: &Path, name: &str) -> Inst {
        Self::start_with_lease(db_url, key, dir, name, 3)
    }

    /// [`Inst::start`] with a lease of `lease` seconds.
    pub fn start_with_lease(db_url: &str, key: &str, dir: &Path, name: &str, lease: u64) -> Inst {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join(format!("{name}-{port}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MUTASK_DATABASE_URL", db_url)
            .env("MUTASK_ENCRYPTION_KEYS", key)
            .env("MUTASK_BASIC_AUTH", "admin:pw")
            .env("MUTASK_ADMIN_USERNAMES", "admin")
            .env("MUTASK_DATA_DIR", dir.join(name))
            .env("MUTASK_LISTEN", format!("127.0.0.1:{port}"))
            .env("MUTASK_TEMPLATES_DIR", fixture().join("templates"))
            .env("MUTASK_SCRIPTS_DIR", fixture().join("scripts"))
            .env("MUTASK_FUNCTIONS_DIR", dir.join("nofunctions"))
            .env("MUTASK_LEASE_SECONDS", lease.to_string())
            .env("RUST_LOG", "info,mutask=debug")
            // one JSON object per line: the chaos soak reads the levels back
            .env("MUTASK_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Inst {
            child,
            port,
            log,
            name: name.to_string(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to `limit`) until the instance answers ready.
    pub async fn ready(&mut self, limit: Duration) {
        let client = super::http();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("instance {} exited early ({s}):\n{}", self.name, self.log());
            }
            if let Ok(r) = client.get(self.url("/unsecured/mon/ready")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "instance {} not ready",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, s: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), s);
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn stop(self) {
        self.kill9();
    }

    pub fn kill9(mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
