//! The child side of the sandbox: `mutask sandbox` runs [`run_worker`], which confines itself
//! (`RLIMIT_AS` = what it maps at startup + [`ENV_MEMORY_LIMIT`], no core dumps, a per-job `RLIMIT_CPU` soft limit),
//! announces a [`Hello`], then answers [`Request`] lines from stdin with [`Response`] lines on
//! stdout until stdin closes.
//!
//! Invariants: limits are in place before the first byte of untrusted code is read; exactly one
//! response line per request; a panic inside a job is caught and answered as
//! [`ErrorKind::Panic`] (the panic hook is silenced so nothing leaks to stderr); a response
//! larger than the allowed size is replaced by an [`ErrorKind::TooLarge`] error. Failures the
//! worker cannot report (allocation failure aborts, stack overflow, CPU limit signals) end the
//! process; the parent sees the exit and reports a crash.

use std::cell::RefCell;
use std::io::{BufRead, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::js::{JsLimits, evaluate};
use super::protocol::{
    ENV_MAX_RESPONSE, ENV_MEMORY_LIMIT, ErrorKind, Hello, Job, JobError, PROTOCOL_VERSION, Request,
    Response,
};

/// Address-space limit when the parent did not say (matches the pool's default).
pub const DEFAULT_MEMORY_LIMIT: u64 = 512 << 20;
/// Response size limit when the parent did not say.
pub const DEFAULT_MAX_RESPONSE: usize = 8 << 20;
/// Stack of the thread that evaluates (boa's parser recurses on nested expressions).
const EVAL_STACK_BYTES: usize = 16 << 20;
/// CPU seconds allowed on top of a job's own budget before the kernel sends SIGXCPU.
const CPU_SLACK_SECS: u64 = 2;

/// Exit code for "could not set up the sandbox" (`EX_SOFTWARE`).
const EXIT_SETUP: i32 = 70;

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Entry point of `mutask sandbox`: serve jobs on stdin/stdout; returns the process exit code
/// (0 when stdin closed normally).
pub fn run_worker() -> i32 {
    let memory_limit = env_number(ENV_MEMORY_LIMIT).unwrap_or(DEFAULT_MEMORY_LIMIT);
    let max_response = env_number(ENV_MAX_RESPONSE)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(DEFAULT_MAX_RESPONSE);
    if let Err(e) = confine(memory_limit) {
        eprintln!("mutask sandbox: cannot set resource limits: {e}");
        return EXIT_SETUP;
    }
    std::panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
    }));
    let serving = std::thread::Builder::new()
        .name("mutask-sandbox".into())
        .stack_size(EVAL_STACK_BYTES)
        .spawn(move || {
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            let settings = ServeSettings {
                max_response,
                cpu_limit_per_job: true,
            };
            serve(stdin.lock(), stdout.lock(), settings)
        });
    match serving.map(std::thread::JoinHandle::join) {
        Ok(Ok(Ok(()))) => 0,
        Ok(Ok(Err(e))) => {
            eprintln!("mutask sandbox: {e}");
            1
        }
        Ok(Err(_)) => {
            eprintln!("mutask sandbox: the serving thread panicked");
            EXIT_SETUP
        }
        Err(e) => {
            eprintln!("mutask sandbox: cannot start the serving thread: {e}");
            EXIT_SETUP
        }
    }
}

/// How [`serve`] behaves.
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    /// Largest response line; a larger result becomes an [`ErrorKind::TooLarge`] error.
    pub max_response: usize,
    /// Move the process's `RLIMIT_CPU` soft limit before each job (only in a worker process:
    /// the limit is process-wide).
    pub cpu_limit_per_job: bool,
}

/// The request loop, generic over its streams so that it can be tested in process.
pub fn serve<R: BufRead, W: Write>(
    mut input: R,
    mut output: W,
    settings: ServeSettings,
) -> std::io::Result<()> {
    let max_response = settings.max_response;
    let hello = Hello {
        sandbox_protocol: PROTOCOL_VERSION,
        pid: std::process::id(),
    };
    write_line(&mut output, &serde_json::to_string(&hello)?)?;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                if settings.cpu_limit_per_job {
                    set_cpu_budget(
                        request
                            .job
                            .timeout()
                            .as_secs()
                            .saturating_add(1 + CPU_SLACK_SECS),
                    );
                }
                Response {
                    id: request.id,
                    result: run_job(&request.job),
                }
            }
            Err(e) => Response {
                id: request_id(&line),
                result: Err(JobError::new(
                    ErrorKind::BadRequest,
                    format!("unreadable request: {e}"),
                )),
            },
        };
        let mut text = serde_json::to_string(&response)?;
        if text.len() > max_response {
            let too_large = Response {
                id: response.id,
                result: Err(JobError::new(
                    ErrorKind::TooLarge,
                    format!(
                        "the result is too large ({} bytes, at most {max_response} allowed)",
                        text.len()
                    ),
                )),
            };
            text = serde_json::to_string(&too_large)?;
        }
        write_line(&mut output, &text)?;
    }
}

fn run_job(job: &Job) -> Result<String, JobError> {
    LAST_PANIC.with(|p| p.borrow_mut().take());
    let outcome = catch_unwind(AssertUnwindSafe(|| match job {
        Job::Js { code, .. } => evaluate(code, job.timeout(), JsLimits::default()),
        Job::Plan { request, .. } => run_plan(request),
    }));
    outcome.unwrap_or_else(|_| {
        let detail = LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "unknown panic".into());
        Err(JobError::new(
            ErrorKind::Panic,
            format!("the JS engine failed internally: {detail}"),
        ))
    })
}

/// JavaScript of a plan's expression variables, evaluated in this (sandboxed) process.
struct InProcessJs;

impl crate::engine::JsEval for InProcessJs {
    fn eval_js(&self, code: &str, timeout: std::time::Duration) -> Result<String, String> {
        super::js::eval_js_in_process(code, timeout)
    }
}

fn run_plan(request: &serde_json::Value) -> Result<String, JobError> {
    use crate::engine::plan::{PlanRequest, plan};
    use crate::template::render::{RenderOptions, Renderer};
    let req: PlanRequest = serde_json::from_value(request.clone()).map_err(|e| {
        JobError::new(
            ErrorKind::BadRequest,
            format!("unreadable plan request: {e}"),
        )
    })?;
    let renderer = std::sync::Arc::new(Renderer::new(RenderOptions::default()));
    let js: std::sync::Arc<dyn crate::engine::JsEval> = std::sync::Arc::new(InProcessJs);
    let p = plan(&req, renderer, Some(js));
    serde_json::to_string(&p)
        .map_err(|e| JobError::new(ErrorKind::Panic, format!("cannot encode the plan: {e}")))
}

/// Best effort: the id of a request that does not deserialize, so the parent can match it.
fn request_id(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

fn write_line<W: Write>(output: &mut W, text: &str) -> std::io::Result<()> {
    output.write_all(text.as_bytes())?;
    output.write_all(b"\n")?;
    output.flush()
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Limits that hold for the worker's whole life. `memory_limit` is the address space the worker
/// may add to what it already maps: what the process reserved before this point (the binary, an
/// async runtime's threads and their malloc arenas) varies with the host's core count, and
/// must neither eat the evaluation's allowance nor exceed it outright.
fn confine(memory_limit: u64) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // One malloc arena: new threads (the serving one) share it instead of reserving 64 MiB
        // of address space each. SAFETY: mallopt only tunes the allocator; it is thread-safe.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }
    let limit = mapped_bytes().saturating_add(memory_limit);
    setrlimit(libc::RLIMIT_AS, limit, limit)?;
    setrlimit(libc::RLIMIT_CORE, 0, 0)?;
    Ok(())
}

/// The process's current virtual size (`/proc/self/statm`), 0 when unknown.
fn mapped_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|pages| pages.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages.saturating_mul(page))
}

/// Lets the next job use `secs` more CPU seconds than the process used so far; past that the
/// kernel sends SIGXCPU (which kills the worker). Best effort: a failure leaves the old limit.
fn set_cpu_budget(secs: u64) {
    let used = cpu_seconds_used();
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; the resource constant is valid.
    if unsafe { libc::getrlimit(libc::RLIMIT_CPU, &raw mut current) } != 0 {
        return;
    }
    let soft = used.saturating_add(secs).min(current.rlim_max);
    let _ = setrlimit(libc::RLIMIT_CPU, soft, current.rlim_max);
}

fn cpu_seconds_used() -> u64 {
    // SAFETY: an all-zero rusage is a valid value and getrusage only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF is valid and `usage` is a live, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) } != 0 {
        return 0;
    }
    let secs = usage.ru_utime.tv_sec.saturating_add(usage.ru_stime.tv_sec);
    u64::try_from(secs).unwrap_or(0).saturating_add(1)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

fn setrlimit(resource: Resource, soft: u64, hard: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct we pass; the resource constant is valid.
    if unsafe { libc::setrlimit(resource, &raw const limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_answers_each_line() {
        let input = concat!(
            r#"{"id":1,"job":{"type":"js","code":"1+1","timeout_ms":5000}}"#,
            "\n\n",
            r#"{"id":2,"job":{"type":"render","template":"x"}}"#,
            "\n",
            r#"{"id":3,"job":{"type":"js","code":"'x'.repeat(300)","timeout_ms":5000}}"#,
            "\n"
        );
        let mut out = Vec::new();
        let settings = ServeSettings {
            max_response: 200,
            cpu_limit_per_job: false,
        };
        serve(input.as_bytes(), &mut out, settings).expect("serves");
        let lines: Vec<&str> = std::str::from_utf8(&out)
            .unwrap_or_default()
            .lines()
            .collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        let hello: Hello = serde_json::from_str(lines[0]).expect("hello");
        assert_eq!(hello.sandbox_protocol, PROTOCOL_VERSION);
        let r1: Response = serde_json::from_str(lines[1]).expect("r1");
        assert_eq!(
            r1,
            Response {
                id: 1,
                result: Ok("2".into())
            }
        );
        let r2: Response = serde_json::from_str(lines[2]).expect("r2");
        assert!(
            matches!(r2.result, Err(ref e) if e.kind == ErrorKind::BadRequest),
            "{r2:?}"
        );
        assert_eq!(r2.id, 2);
        let r3: Response = serde_json::from_str(lines[3]).expect("r3");
        assert!(
            matches!(r3.result, Err(ref e) if e.kind == ErrorKind::TooLarge),
            "{r3:?}"
        );
    }
}
