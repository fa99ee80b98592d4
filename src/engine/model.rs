//! The in-memory picture of a resolution during a cycle: its steps with their runtime state.
//!
//! A [`RunStep`] pairs a template [`Step`] definition (snapshotted into the resolution when it
//! was created, extended at run time for foreach children) with its runtime fields. The store
//! persists one row per step: the definition part ([`StepDef`]) and each runtime field sealed.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{ResolutionId, ResolutionState, StepState, TaskId};
use crate::template::model::Step;

/// The persisted definition of a step: the template step plus foreach bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDef {
    pub step: Step,
    /// Foreach child: the element of the parent's list (`.iterator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
    /// Foreach child: the name of its parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Foreach parent while EXPANDED: names of its live children.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children_steps: Vec<String>,
}

impl StepDef {
    pub fn new(step: Step) -> StepDef {
        StepDef {
            step,
            item: None,
            parent: None,
            children_steps: Vec::new(),
        }
    }
}

/// One step of a running resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStep {
    pub name: String,
    pub def: StepDef,
    pub state: StepState,
    pub try_count: i32,
    pub last_run: Option<DateTime<Utc>>,
    pub output: Option<Value>,
    pub metadata: Option<Value>,
    pub children: Option<Value>,
    pub error: Option<String>,
}

impl RunStep {
    pub fn new(name: impl Into<String>, step: Step) -> RunStep {
        RunStep {
            name: name.into(),
            def: StepDef::new(step),
            state: StepState::Todo,
            try_count: 0,
            last_run: None,
            output: None,
            metadata: None,
            children: None,
            error: None,
        }
    }

    /// A foreach child (it carries an iterator item).
    pub fn is_child(&self) -> bool {
        self.def.parent.is_some()
    }

    pub fn is_foreach(&self) -> bool {
        self.def.step.is_foreach() && !self.is_child()
    }
}

/// A resolution with its steps, as one cycle sees it.
#[derive(Debug, Clone)]
pub struct RunResolution {
    pub id: ResolutionId,
    pub task_id: TaskId,
    pub state: ResolutionState,
    pub run_count: i32,
    pub run_max: i32,
    pub next_retry: Option<DateTime<Utc>>,
    pub steps: IndexMap<String, RunStep>,
}

impl RunResolution {
    /// Sets a step's state (no-op for an unknown step).
    pub fn set_state(&mut self, step: &str, state: StepState) {
        if let Some(s) = self.steps.get_mut(step) {
            s.state = state;
        }
    }

    pub fn state_of(&self, step: &str) -> Option<&StepState> {
        self.steps.get(step).map(|s| &s.state)
    }
}
