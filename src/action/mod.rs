//! Actions: what a step does. Each builtin is one file implementing [`Action`]; the
//! [`Registry`] maps a template's `action.type` to it.
//!
//! Contract: an action receives its configuration already rendered (every string leaf
//! templated, the base configuration merged underneath) and returns an [`ActionResult`]:
//! output, metadata, tags to set on the task, and optionally an [`ActionError`] whose class
//! decides the step state — client → CLIENT_ERROR, server → SERVER_ERROR, fatal → FATAL_ERROR,
//! waiting → WAITING (resumed later: subtask, batch, callback), retry → TO_RETRY. An action
//! never panics on bad configuration: it answers a client error naming the field.

pub mod batch;
pub mod callback;
pub mod echo;
pub mod email;
pub mod http;
pub mod log;
pub mod notify;
pub mod ping;
pub mod plugin;
mod process;
pub mod schema;
pub mod script;
pub mod ssh;
pub mod subtask;
pub mod tag;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::domain::{ResolutionId, TaskId};

/// A boxed future (actions are stored as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How an action failed; decides the step state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// Bad input, 4xx-like: CLIENT_ERROR (the resolution blocks for a human).
    Client(String),
    /// Transient, 5xx-like: SERVER_ERROR (retried with backoff).
    Server(String),
    /// Cannot succeed as configured: FATAL_ERROR.
    Fatal(String),
    /// Not finished, resumed later: WAITING.
    Waiting(String),
    /// Retry at the next cycle: TO_RETRY.
    Retry(String),
}

impl ActionError {
    pub fn message(&self) -> &str {
        match self {
            ActionError::Client(m)
            | ActionError::Server(m)
            | ActionError::Fatal(m)
            | ActionError::Waiting(m)
            | ActionError::Retry(m) => m,
        }
    }
}

/// What an action produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionResult {
    pub output: Option<Value>,
    pub metadata: Option<Value>,
    /// Tags to set on the task ("" deletes a tag).
    pub tags: Option<Map<String, Value>>,
    pub error: Option<ActionError>,
}

impl ActionResult {
    pub fn ok(output: Option<Value>, metadata: Option<Value>) -> ActionResult {
        ActionResult {
            output,
            metadata,
            tags: None,
            error: None,
        }
    }
    pub fn err(error: ActionError) -> ActionResult {
        ActionResult {
            error: Some(error),
            ..Default::default()
        }
    }
}

/// Process-wide settings and handles actions need.
#[derive(Clone, Default)]
pub struct ActionEnv {
    pub scripts_dir: PathBuf,
    /// Storage, for actions that create tasks (subtask, batch) or callbacks.
    pub store: Option<crate::store::Store>,
    /// Renders titles of tasks created by actions.
    pub renderer: Option<Arc<crate::template::render::Renderer>>,
    /// Admin user names (a subtask created for an admin auto-runs).
    pub admins: std::collections::HashSet<String>,
    /// Public base URL of the API (callback links).
    pub base_url: String,
    /// Names of the notification backends configured (`notify` action).
    pub notify_backends: Vec<String>,
}

impl std::fmt::Debug for ActionEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionEnv")
            .field("scripts_dir", &self.scripts_dir)
            .finish_non_exhaustive()
    }
}

/// One execution request.
#[derive(Debug, Clone)]
pub struct ActionRequest {
    pub step_name: String,
    pub task_id: TaskId,
    pub resolution_id: ResolutionId,
    pub requester_username: String,
    pub config: Value,
    /// The step's output from its previous execution (a subtask finds its child there).
    pub previous_output: Option<Value>,
    /// The step's metadata from its previous execution (a batch finds its progress there).
    pub previous_metadata: Option<Value>,
    pub env: Arc<ActionEnv>,
    /// This execution's log (stdout/stderr, request summaries, progress).
    pub log: log::StepLog,
}

/// A builtin action.
pub trait Action: Send + Sync {
    /// The `action.type` it answers to.
    fn name(&self) -> &'static str;
    /// Runs it.
    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult>;
    /// Whether running it can be observed outside the step (a request sent, a command run, a
    /// task created). The engine persists a step as RUNNING before starting an action with
    /// side effects, so that a crash meanwhile blocks a non-idempotent step for a human check;
    /// an action without any (running it twice is indistinguishable from once) skips that write.
    fn has_side_effects(&self) -> bool {
        true
    }
}

/// Action types → implementations.
#[derive(Clone, Default)]
pub struct Registry {
    actions: HashMap<&'static str, Arc<dyn Action>>,
}

impl Registry {
    /// The builtin actions.
    pub fn builtin() -> Registry {
        let mut r = Registry::default();
        r.register(Arc::new(echo::Echo));
        r.register(Arc::new(script::Script));
        r.register(Arc::new(subtask::Subtask));
        r.register(Arc::new(batch::Batch));
        r.register(Arc::new(callback::Callback));
        r.register(Arc::new(http::Http::default()));
        r.register(Arc::new(ping::Ping::default()));
        r.register(Arc::new(tag::Tag));
        r.register(Arc::new(email::Email::default()));
        r.register(Arc::new(notify::Notify));
        r.register(Arc::new(ssh::Ssh::default()));
        r
    }

    pub fn register(&mut self, a: Arc<dyn Action>) {
        self.actions.insert(a.name(), a);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Action>> {
        self.actions.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.actions.keys().copied().collect();
        v.sort();
        v
    }
}

/// Reads a boolean that may have been templated into a string (`"true"`).
pub fn config_bool(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Reads a string field (numbers and booleans are stringified).
pub fn config_str<'a>(config: &'a Value, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    match config.get(key)? {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Value::Null => None,
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        _ => None,
    }
}
