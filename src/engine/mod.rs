//! The engine: runs resolutions, one **cycle** at a time, exactly as µTask does (inventory
//! §2.4): claim the resolution (RUNNING, owned by this instance, fencing counter + 1), run every
//! available step — concurrently — until nothing more can run, then compute the resolution and
//! task states and release it.
//!
//! Invariants: no database transaction is open while an action runs; every write during a
//! cycle is fenced by the claim (owner + `claim_attempt`), so an instance that lost its lease
//! writes nothing more; the cycle logic itself lives in the pure [`resolve`] module and the
//! per-step work in [`step`]. [`Engine::run_cycle`] is the entry point used by the collectors,
//! `POST /resolution/{id}/run`, and the conformance tests.

pub mod batch;
pub mod condition;
pub mod cycle;
pub mod js;
pub mod logs;
pub mod model;
pub mod plan;
pub mod resolve;
pub mod resources;
pub mod retry;
pub mod runner;
pub mod schema;
pub mod step;
pub mod templating;
pub mod values;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::action::{ActionEnv, Registry};
use crate::domain::{InstanceId, ResolutionId};
use crate::store::resolution::{LostClaim, NewStep};
use crate::store::{Store, StoreError};
use crate::template::model::{FunctionSet, TaskTemplate};
use crate::template::render::Renderer;

pub use templating::JsEval;

/// Errors of a cycle.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The resolution cannot run in its current state (µTask's messages).
    #[error("Can't run resolution: {0}")]
    Refused(&'static str),
    #[error("resolution {0} not found")]
    NotFound(ResolutionId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    LostClaim(#[from] LostClaim),
    #[error("resolution {0} cannot be run: {1}")]
    Invalid(ResolutionId, String),
}

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How long a claim is valid without a heartbeat.
    pub lease: Duration,
    /// Step timeout when a step sets none (`None`: no limit beyond the action's own).
    pub default_step_timeout: Option<Duration>,
    /// Values exposed to templates as `config`.
    pub config_values: Value,
    /// Executions of each step whose logs are kept (`MUTASK_LOG_KEEP_EXECUTIONS`).
    pub log_keep_executions: i32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            lease: Duration::from_secs(60),
            default_step_timeout: None,
            config_values: Value::Object(Default::default()),
            log_keep_executions: crate::engine::logs::KEEP_EXECUTIONS,
        }
    }
}

/// Runs resolutions.
#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    pub renderer: Arc<Renderer>,
    pub functions: Arc<FunctionSet>,
    pub actions: Registry,
    pub action_env: Arc<ActionEnv>,
    pub instance: InstanceId,
    pub js: Option<Arc<dyn JsEval>>,
    pub settings: Arc<EngineSettings>,
    /// Cancelled when the instance shuts down: cycles stop launching steps, let running ones
    /// finish, and end CRASHED so another instance resumes them.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Named concurrency limits (µTask's resources).
    pub resources: Arc<resources::Resources>,
    /// Writes the ends of concurrent cycles together.
    pub ends: batch::Ends,
    /// Reads what concurrent cycles start from together.
    pub loads: batch::Loads,
}

/// The initial steps of a new resolution of `template` (all TODO).
pub fn initial_steps(template: &TaskTemplate) -> Result<Vec<NewStep>, serde_json::Error> {
    template
        .steps
        .iter()
        .map(|(name, step)| {
            Ok(NewStep {
                name: name.clone(),
                state: crate::domain::StepState::Todo,
                definition: serde_json::to_value(model::StepDef::new(step.clone()))?,
            })
        })
        .collect()
}
