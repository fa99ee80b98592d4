//! Plain domain types with no IO: id newtypes and the state enums of tasks, resolutions and steps.
//!
//! States are enums end to end: each maps to the exact text stored in PostgreSQL (where a CHECK
//! constraint lists the same values) and shown by the API. Custom step states declared by a
//! template are the single `StepState::Custom` variant. See `docs/state-machine.md`.

pub mod clock;
pub mod duration;
pub mod ids;
pub mod state;

/// One invalid field of a request (`input.name`, `tags.x`) and why.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

pub use ids::{BatchId, CommentId, InstanceId, ResolutionId, TaskId};
pub use state::{ResolutionState, StepState, TaskState, UnknownState};
