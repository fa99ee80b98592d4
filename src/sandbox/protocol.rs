//! The wire protocol between [`super::SandboxPool`] and a `mutask sandbox` worker: one JSON
//! document per line. The worker first writes a [`Hello`]; then, for each [`Request`] line read
//! on stdin, it writes exactly one [`Response`] line on stdout carrying the same `id`. Nothing
//! else is ever written to stdout (diagnostics go to stderr).
//!
//! Invariants: [`Job`] is internally tagged by `type`, so new kinds of job (e.g. a template
//! render) are added as new variants without touching existing ones; a worker that receives a
//! job it does not know answers an [`ErrorKind::BadRequest`] error instead of dying. The limits
//! the worker applies to itself come from the environment variables named here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; the parent refuses a worker that announces another one.
pub const PROTOCOL_VERSION: u32 = 1;

/// Environment variable: the address space, in bytes, a worker may map on top of what it maps at
/// startup (its `RLIMIT_AS` is set to the sum).
pub const ENV_MEMORY_LIMIT: &str = "MUTASK_SANDBOX_MEMORY_LIMIT_BYTES";
/// Environment variable: the largest response line the worker may write, in bytes.
pub const ENV_MAX_RESPONSE: &str = "MUTASK_SANDBOX_MAX_RESPONSE_BYTES";

/// First line written by a worker once its limits are in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`PROTOCOL_VERSION`] of the worker's build.
    pub sandbox_protocol: u32,
    /// The worker's process id (for logs).
    pub pid: u32,
}

/// One job sent to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the [`Response`]; unique per pool.
    pub id: u64,
    /// What to do.
    pub job: Job,
}

/// The kinds of work a sandbox worker does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Evaluate a JavaScript program in a fresh context and return the value of its last
    /// statement converted to a string (µTask's otto `.String()`).
    Js {
        /// The program text.
        code: String,
        /// Wall-clock budget of the evaluation, in milliseconds.
        timeout_ms: u64,
    },
    /// Plan a template with inputs ([`crate::engine::plan::PlanRequest`] as JSON) and return
    /// the [`crate::engine::plan::Plan`] as JSON: the template text comes from the caller, so
    /// its rendering runs here, under the worker's limits.
    Plan {
        request: serde_json::Value,
        /// Wall-clock budget of the whole plan, in milliseconds.
        timeout_ms: u64,
    },
}

impl Job {
    /// The wall-clock budget the job asked for.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        match self {
            Job::Js { timeout_ms, .. } | Job::Plan { timeout_ms, .. } => {
                Duration::from_millis(*timeout_ms)
            }
        }
    }
}

/// The answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The job's textual result, or why it failed.
    pub result: Result<String, JobError>,
}

/// A job that ran (or could not run) and failed, with a message meant for the task's author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// Human-readable, e.g. `SyntaxError: unexpected token ...`.
    pub message: String,
}

impl JobError {
    /// Builds an error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        JobError {
            kind,
            message: message.into(),
        }
    }
}

/// Why a job failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The program does not parse.
    Syntax,
    /// The program threw (`TypeError`, `ReferenceError`, `throw x`, ...).
    Exception,
    /// A runtime limit of the engine was reached (loop iterations, recursion, stack).
    Limit,
    /// The wall-clock budget ran out (reported by the worker itself).
    Timeout,
    /// The result is larger than the worker may send back.
    TooLarge,
    /// The engine panicked; the worker survived it.
    Panic,
    /// The worker could not understand the request.
    BadRequest,
    /// A kind this build does not know (sent by a newer worker).
    #[serde(other)]
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_lines_are_stable() {
        let req = Request {
            id: 7,
            job: Job::Js {
                code: "1+1".into(),
                timeout_ms: 1500,
            },
        };
        let line = serde_json::to_string(&req).unwrap_or_default();
        assert_eq!(
            line,
            r#"{"id":7,"job":{"type":"js","code":"1+1","timeout_ms":1500}}"#
        );
        assert_eq!(req.job.timeout(), Duration::from_millis(1500));

        let ok = Response {
            id: 7,
            result: Ok("2".into()),
        };
        assert_eq!(
            serde_json::to_string(&ok).unwrap_or_default(),
            r#"{"id":7,"result":{"Ok":"2"}}"#
        );
        let err = Response {
            id: 8,
            result: Err(JobError::new(ErrorKind::TooLarge, "big")),
        };
        assert_eq!(
            serde_json::to_string(&err).unwrap_or_default(),
            r#"{"id":8,"result":{"Err":{"kind":"too_large","message":"big"}}}"#
        );
    }

    #[test]
    fn unknown_error_kind_and_job_type() {
        let r: Response =
            serde_json::from_str(r#"{"id":1,"result":{"Err":{"kind":"martian","message":"m"}}}"#)
                .expect("parses");
        assert_eq!(r.result, Err(JobError::new(ErrorKind::Other, "m")));
        assert!(serde_json::from_str::<Request>(r#"{"id":1,"job":{"type":"render"}}"#).is_err());
    }
}
