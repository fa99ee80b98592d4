//! The parent side of the sandbox: [`SandboxPool`] keeps up to `workers` `mutask sandbox` child
//! processes, hands each job to an idle one (callers wait in FIFO order when all are busy), and
//! turns every way a job can end into a `Result`: a value, a script error, a
//! [`SandboxError::Timeout`] (the child is `SIGKILL`ed at `timeout + kill_grace`) or a
//! [`SandboxError::Crashed`] (the child died: memory limit, abort, CPU limit).
//!
//! Invariants: a worker is owned by exactly one job at a time and only goes back to the idle
//! list after a well-formed answer to that job; a worker that timed out, crashed, answered
//! garbage or served `max_jobs_per_worker` jobs is killed and reaped, and a new one is spawned
//! lazily by the next job; a cancelled job (its future dropped) kills its worker on drop. Waiting
//! for a free worker and spawning one do not count against a job's timeout. Children get an
//! empty environment plus their limits, so they hold no secrets.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::protocol::{
    ENV_MAX_RESPONSE, ENV_MEMORY_LIMIT, ErrorKind, Hello, Job, JobError, PROTOCOL_VERSION, Request,
    Response,
};

/// How the pool starts and limits its workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The `mutask` binary (`std::env::current_exe()` in production).
    pub program: PathBuf,
    /// Arguments that make it a worker: `["sandbox"]`.
    pub args: Vec<String>,
    /// Most worker processes alive at once (and most jobs running at once).
    pub workers: usize,
    /// Address space, in bytes, each worker may map beyond what it maps at startup (its
    /// `RLIMIT_AS` is that startup size plus this).
    pub memory_limit_bytes: u64,
    /// A worker is replaced after this many jobs (bounds leaks and fragmentation).
    pub max_jobs_per_worker: u64,
    /// Largest response a worker may send; a larger result is a [`ErrorKind::TooLarge`] error.
    pub max_response_bytes: usize,
    /// How long a new worker has to announce itself.
    pub startup_timeout: Duration,
    /// Extra wall-clock time after a job's timeout before its worker is killed (the worker
    /// normally reports the timeout itself and stays usable).
    pub kill_grace: Duration,
}

impl SandboxConfig {
    /// Defaults for `program`: 2 workers, 512 MiB, 500 jobs per worker, 8 MiB responses.
    #[must_use]
    pub fn new(program: PathBuf) -> Self {
        SandboxConfig {
            program,
            args: vec!["sandbox".to_owned()],
            workers: 2,
            memory_limit_bytes: 512 << 20,
            max_jobs_per_worker: 500,
            max_response_bytes: 8 << 20,
            startup_timeout: Duration::from_secs(10),
            kill_grace: Duration::from_millis(300),
        }
    }

    /// [`SandboxConfig::new`] for the running executable.
    pub fn from_current_exe() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?))
    }
}

/// Why a sandboxed job produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// The code ran and failed: syntax error, exception, engine limit, result too large.
    #[error("{message}")]
    Script {
        /// The class of failure.
        kind: ErrorKind,
        /// The engine's message, e.g. `ReferenceError: x is not defined`.
        message: String,
    },
    /// The job used up its wall-clock (or CPU) budget.
    #[error("the expression did not finish within {timeout:?}")]
    Timeout {
        /// The budget it had.
        timeout: Duration,
    },
    /// The worker died while running the job.
    #[error("the expression used too much memory or crashed ({detail})")]
    Crashed {
        /// How the worker ended and its last words.
        detail: String,
    },
    /// No worker could be started.
    #[error("the sandbox worker could not be started: {0}")]
    Unavailable(String),
    /// The worker answered something the pool does not understand.
    #[error("sandbox protocol error: {0}")]
    Protocol(String),
    /// [`SandboxPool::shutdown`] was called.
    #[error("the sandbox pool is shut down")]
    Closed,
}

impl SandboxError {
    fn from_job(error: JobError, timeout: Duration) -> Self {
        match error.kind {
            ErrorKind::Timeout => SandboxError::Timeout { timeout },
            kind => SandboxError::Script {
                kind,
                message: error.message,
            },
        }
    }
}

/// A pool of sandbox worker processes; cheap to clone (clones share the workers).
#[derive(Debug, Clone)]
pub struct SandboxPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    slots: Semaphore,
    idle: Mutex<Vec<Worker>>,
    next_id: AtomicU64,
}

impl SandboxPool {
    /// A pool with no worker yet: workers start on first use (see [`SandboxPool::warm_up`]).
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        if config.workers == 0 {
            return Err(SandboxError::Unavailable(
                "the pool needs at least one worker".into(),
            ));
        }
        if config.program.as_os_str().is_empty() {
            return Err(SandboxError::Unavailable(
                "no sandbox program configured".into(),
            ));
        }
        let slots = Semaphore::new(config.workers);
        let inner = Inner {
            config,
            slots,
            idle: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        };
        Ok(SandboxPool {
            inner: Arc::new(inner),
        })
    }

    /// The configuration the pool was built with.
    #[must_use]
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Evaluates JavaScript `code` (µTask `expression`) and returns the value of its last
    /// statement as a string, within `timeout`.
    pub async fn eval_js(&self, code: &str, timeout: Duration) -> Result<String, SandboxError> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.run(Job::Js {
            code: code.to_owned(),
            timeout_ms,
        })
        .await
    }

    /// Runs one job on a worker.
    pub async fn run(&self, job: Job) -> Result<String, SandboxError> {
        let _slot = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| SandboxError::Closed)?;
        let timeout = job.timeout();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut line = serde_json::to_vec(&Request { id, job })
            .map_err(|e| SandboxError::Protocol(format!("cannot encode the request: {e}")))?;
        line.push(b'\n');

        let mut worker = match self.inner.take_idle() {
            Some(worker) => worker,
            None => self.inner.spawn().await?,
        };
        let deadline = timeout.saturating_add(self.inner.config.kill_grace);
        if let Err(e) = worker.send(&line, deadline).await {
            // The worker died while idle (nothing of this job ran): one retry on a fresh one.
            tracing::debug!(pid = worker.pid, error = %e, "sandbox worker gone before the job; respawning");
            worker.kill().await;
            worker = self.inner.spawn().await?;
            if let Err(e) = worker.send(&line, deadline).await {
                return Err(worker.diagnose(Failure::Io(e), timeout).await);
            }
        }

        let cap = self.inner.config.max_response_bytes.saturating_add(4096);
        let answer = match tokio::time::timeout(deadline, worker.read_response(cap)).await {
            Err(_elapsed) => {
                tracing::debug!(
                    pid = worker.pid,
                    ?timeout,
                    "sandbox job over its deadline; killing the worker"
                );
                worker.kill().await;
                return Err(SandboxError::Timeout { timeout });
            }
            Ok(Err(failure)) => return Err(worker.diagnose(failure, timeout).await),
            Ok(Ok(response)) => response,
        };
        if answer.id != id {
            worker.kill().await;
            return Err(SandboxError::Protocol(format!(
                "answer to request {} received for {id}",
                answer.id
            )));
        }
        worker.jobs += 1;
        if worker.jobs < self.inner.config.max_jobs_per_worker {
            self.inner.put_idle(worker);
        } else {
            worker.kill().await;
        }
        answer
            .result
            .map_err(|e| SandboxError::from_job(e, timeout))
    }

    /// Starts workers until `workers` are idle, so that a missing or broken `sandbox`
    /// subcommand shows at startup instead of on the first task.
    pub async fn warm_up(&self) -> Result<(), SandboxError> {
        let mut started = Vec::new();
        for _ in 0..self.inner.config.workers {
            let Ok(slot) = self.inner.slots.try_acquire() else {
                break;
            };
            let worker = self.inner.spawn().await?;
            started.push((slot, worker));
        }
        for (_slot, worker) in started {
            self.inner.put_idle(worker);
        }
        Ok(())
    }

    /// Process ids of the idle workers (for logs, metrics and tests).
    #[must_use]
    pub fn idle_worker_pids(&self) -> Vec<u32> {
        self.inner.lock_idle().iter().map(|w| w.pid).collect()
    }

    /// Refuses new jobs and kills and reaps the idle workers. Jobs already running finish (or
    /// time out) and their workers are then killed.
    pub async fn shutdown(&self) {
        self.inner.slots.close();
        let idle = std::mem::take(&mut *self.inner.lock_idle());
        for mut worker in idle {
            worker.kill().await;
        }
    }
}

impl Inner {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Worker>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used live idle worker; dead ones are dropped (and reaped) on the way.
    fn take_idle(&self) -> Option<Worker> {
        let mut idle = self.lock_idle();
        while let Some(mut worker) = idle.pop() {
            match worker.child.try_wait() {
                Ok(None) => return Some(worker),
                Ok(Some(status)) => {
                    tracing::warn!(pid = worker.pid, %status, "idle sandbox worker died; it will be replaced");
                }
                Err(e) => {
                    tracing::warn!(pid = worker.pid, error = %e, "cannot check an idle sandbox worker");
                }
            }
        }
        None
    }

    fn put_idle(&self, worker: Worker) {
        if self.slots.is_closed() {
            return; // dropping the worker kills it
        }
        self.lock_idle().push(worker);
    }

    async fn spawn(&self) -> Result<Worker, SandboxError> {
        let config = &self.config;
        let mut child = Command::new(&config.program)
            .args(&config.args)
            .env_clear()
            .env(ENV_MEMORY_LIMIT, config.memory_limit_bytes.to_string())
            .env(ENV_MAX_RESPONSE, config.max_response_bytes.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SandboxError::Unavailable(format!("{}: {e}", config.program.display())))?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(SandboxError::Unavailable(
                "the worker's pipes are missing".into(),
            ));
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_task = tokio::spawn(forward_stderr(
            pid,
            BufReader::new(stderr),
            Arc::clone(&stderr_tail),
        ));
        let mut worker = Worker {
            child,
            pid,
            stdin,
            stdout: BufReader::new(stdout),
            jobs: 0,
            stderr_tail,
            stderr_task,
        };

        let hello = tokio::time::timeout(
            config.startup_timeout,
            read_line_capped(&mut worker.stdout, 4096),
        )
        .await;
        let problem = match hello {
            Err(_) => format!(
                "it did not announce itself within {:?}",
                config.startup_timeout
            ),
            Ok(Err(e)) => format!("cannot read from it: {e}"),
            Ok(Ok(Line::Eof)) => "it exited before announcing itself".to_owned(),
            Ok(Ok(Line::TooLong)) => "it wrote an unexpected line".to_owned(),
            Ok(Ok(Line::Complete(bytes))) => match serde_json::from_slice::<Hello>(&bytes) {
                Ok(h) if h.sandbox_protocol == PROTOCOL_VERSION => {
                    tracing::debug!(pid, "sandbox worker started");
                    return Ok(worker);
                }
                Ok(h) => format!(
                    "it speaks protocol {} instead of {PROTOCOL_VERSION}",
                    h.sandbox_protocol
                ),
                Err(_) => format!(
                    "it wrote {:?} instead of its greeting",
                    String::from_utf8_lossy(&bytes)
                ),
            },
        };
        let status = worker.kill().await;
        let mut detail = format!(
            "{} {}: {problem}",
            config.program.display(),
            config.args.join(" ")
        );
        if let Some(status) = status {
            detail = format!("{detail} ({})", describe_status(status));
        }
        if let Some(last) = worker.last_words().await {
            detail = format!("{detail}; it said: {last}");
        }
        Err(SandboxError::Unavailable(detail))
    }
}

/// One child process, owned by the idle list or by the job using it.
#[derive(Debug)]
struct Worker {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    jobs: u64,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_task: JoinHandle<()>,
}

/// How reading an answer went wrong.
#[derive(Debug)]
enum Failure {
    Io(std::io::Error),
    Eof,
    TooLong,
    Garbage(String),
}

impl Worker {
    /// Writes a request line; a worker that does not take it within `limit` is as good as dead.
    async fn send(&mut self, line: &[u8], limit: Duration) -> std::io::Result<()> {
        match tokio::time::timeout(limit, self.stdin.write_all(line)).await {
            Ok(written) => written,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the worker did not read its request",
            )),
        }
    }

    async fn read_response(&mut self, cap: usize) -> Result<Response, Failure> {
        match read_line_capped(&mut self.stdout, cap)
            .await
            .map_err(Failure::Io)?
        {
            Line::Eof => Err(Failure::Eof),
            Line::TooLong => Err(Failure::TooLong),
            Line::Complete(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| Failure::Garbage(e.to_string()))
            }
        }
    }

    /// SIGKILL (if still running) and reap; the exit status when it could be collected.
    async fn kill(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        if let Err(e) = self.child.start_kill() {
            tracing::debug!(pid = self.pid, error = %e, "cannot kill sandbox worker");
        }
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => None,
        }
    }

    /// The error for a job whose worker stopped answering properly; the worker is reaped.
    async fn diagnose(mut self, failure: Failure, timeout: Duration) -> SandboxError {
        let status = match &failure {
            // The worker closed its end: wait briefly for its exit status before killing it.
            Failure::Eof | Failure::Io(_) => {
                match tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await {
                    Ok(Ok(status)) => Some(status),
                    _ => self.kill().await,
                }
            }
            Failure::TooLong | Failure::Garbage(_) => self.kill().await,
        };
        if status.and_then(|s| s.signal()) == Some(libc::SIGXCPU) {
            return SandboxError::Timeout { timeout };
        }
        match failure {
            Failure::TooLong => {
                SandboxError::Protocol("the worker's answer is larger than allowed".into())
            }
            Failure::Garbage(e) => {
                SandboxError::Protocol(format!("unreadable answer from the worker: {e}"))
            }
            failure @ (Failure::Eof | Failure::Io(_)) => {
                let mut detail = match (status, failure) {
                    (Some(status), _) => describe_status(status),
                    (None, Failure::Io(e)) => format!("cannot talk to the worker: {e}"),
                    (None, _) => "the worker stopped answering".to_owned(),
                };
                if let Some(last) = self.last_words().await {
                    detail = format!("{detail}: {last}");
                }
                tracing::warn!(pid = self.pid, %detail, "sandbox worker crashed");
                SandboxError::Crashed { detail }
            }
        }
    }

    /// The last meaningful line the (dead) worker wrote on stderr, e.g. `memory allocation of
    /// 24000000000 bytes failed` (the runtime's `note: run with RUST_BACKTRACE...` is skipped).
    async fn last_words(&mut self) -> Option<String> {
        let _ = tokio::time::timeout(Duration::from_millis(500), &mut self.stderr_task).await;
        let tail = self
            .stderr_tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tail.iter()
            .rev()
            .find(|line| !line.starts_with("note: "))
            .or(tail.back())
            .cloned()
    }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("worker exited with status {code}"),
        (None, Some(signal)) => {
            let name =
                nix::sys::signal::Signal::try_from(signal).map_or("unknown signal", |s| s.as_str());
            format!("worker killed by {name}")
        }
        (None, None) => format!("worker ended: {status}"),
    }
}

/// Copies the worker's stderr to the log and keeps its last lines for error messages.
async fn forward_stderr<R: AsyncBufRead + Unpin>(
    pid: u32,
    mut stderr: R,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    const KEEP: usize = 8;
    const LINE_CAP: usize = 1000;
    loop {
        let text = match read_line_capped(&mut stderr, LINE_CAP).await {
            Ok(Line::Complete(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(Line::TooLong) => "(a line too long to show)".to_owned(),
            Ok(Line::Eof) | Err(_) => return,
        };
        if text.trim().is_empty() {
            continue;
        }
        tracing::warn!(pid, "sandbox worker stderr: {text}");
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.len() == KEEP {
            tail.pop_front();
        }
        tail.push_back(text);
    }
}

/// One line read with a size cap.
#[derive(Debug)]
enum Line {
    Complete(Vec<u8>),
    /// Longer than the cap: the rest of that line is skipped (up to EOF at worst).
    TooLong,
    /// End of stream; a partial last line is discarded as incomplete.
    Eof,
}

async fn read_line_capped<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    cap: usize,
) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut overflow = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..end], Some(end + 1)),
            None => (available, None),
        };
        if !overflow && line.len() + chunk.len() <= cap {
            line.extend_from_slice(chunk);
        } else {
            overflow = true;
            line = Vec::new();
        }
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(if overflow {
                Line::TooLong
            } else {
                Line::Complete(line)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capped_lines() {
        let data: &[u8] = b"short\nthis line is far too long\nok\npartial";
        let mut reader = BufReader::with_capacity(4, data);
        assert!(
            matches!(read_line_capped(&mut reader, 10).await, Ok(Line::Complete(l)) if l == b"short")
        );
        assert!(matches!(
            read_line_capped(&mut reader, 10).await,
            Ok(Line::TooLong)
        ));
        assert!(
            matches!(read_line_capped(&mut reader, 10).await, Ok(Line::Complete(l)) if l == b"ok")
        );
        assert!(matches!(
            read_line_capped(&mut reader, 10).await,
            Ok(Line::Eof)
        ));
    }

    #[test]
    fn config_is_checked() {
        let mut config = SandboxConfig::new(PathBuf::from("/bin/true"));
        config.workers = 0;
        assert!(matches!(
            SandboxPool::new(config),
            Err(SandboxError::Unavailable(_))
        ));
        assert!(SandboxPool::new(SandboxConfig::new(PathBuf::new())).is_err());
    }

    #[tokio::test]
    async fn a_program_that_is_not_a_worker_is_reported() {
        let mut config = SandboxConfig::new(PathBuf::from("/bin/sh"));
        config.args = vec!["-c".into(), "echo 'no such subcommand' >&2; exit 2".into()];
        let pool = SandboxPool::new(config).expect("pool");
        let err = pool
            .eval_js("1", Duration::from_secs(1))
            .await
            .expect_err("not a worker");
        let text = err.to_string();
        assert!(
            text.contains("exited before announcing itself")
                && text.contains("status 2")
                && text.contains("no such subcommand"),
            "{text}"
        );
    }
}
