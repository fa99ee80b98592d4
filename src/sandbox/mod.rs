//! Sandbox: a pool of child processes that evaluate untrusted code (µTask JS `expression`
//! variables today; non-admin template renders later) so that no evaluation can hurt the server.
//!
//! Threat model: the code is attacker-controlled (inputs are rendered into the expression text).
//! The JS engine's own limits stop loops and recursion, but native built-ins can allocate
//! gigabytes, abort the process or spin for minutes. So every job runs in a `mutask sandbox`
//! child with `RLIMIT_AS`/`RLIMIT_CPU`, an empty environment (no secrets to leak) and nothing
//! injected into the JS global scope; the parent SIGKILLs it at the wall-clock deadline.
//!
//! Invariants: the worst outcome of one job is a [`SandboxError`] for that job (timeout, crash,
//! script error); other jobs keep running on other workers; a worker is only reused after it
//! answered cleanly, dead or late workers are killed and respawned lazily; the pool is a value
//! (no globals) and dropping its last clone kills its idle children.
//!
//! Layout: [`protocol`] (JSON lines exchanged), [`worker`] (child side, [`run_worker`]),
//! [`pool`] (parent side, [`SandboxPool`]), [`js`] (`boa_engine` evaluation and µTask's
//! result-to-string rules).

pub mod js;
pub mod pool;
pub mod protocol;
pub mod worker;

pub use js::{JsLimits, eval_js_in_process};
pub use pool::{SandboxConfig, SandboxError, SandboxPool};
pub use protocol::{ErrorKind, Job};
pub use worker::run_worker;
