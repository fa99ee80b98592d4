//! Task templates: the typed model, YAML loading with file:line:column problems, validation.
//!
//! - [`model`]: serde types for every field of a µTask template (and mutask extensions), with
//!   µTask's lenient YAML reading and normalizations.
//! - [`position`]: path → line/column index of a YAML source.
//! - [`validate`]: pure checks returning ALL problems at once (errors and warnings), each with
//!   the path of the offending field and a message containing µTask's text where µTask has one.
//! - [`load`]: reads template and function directories, attaches file:line:column to every
//!   problem, skips bad templates while loading the good ones.
//!
//! Invariants: nothing here panics on any input (templates are untrusted YAML); validation is
//! pure (no IO, no clock); a template with at least one error-severity problem is never returned
//! as loaded.

pub mod input;
pub mod load;
pub mod model;
pub mod position;
pub mod validate;

pub use load::{
    LoadReport, LoadedFunction, LoadedTemplate, load_all, load_functions_dir, load_template_files,
    load_templates_dir, parse_function, parse_template,
};
pub use model::{
    Assert, Condition, ConditionForeach, ConditionType, Dialect, Executor, ForeachStrategy,
    Function, FunctionSet, Input, InputType, Operator, OperatorKind, OutputSpec, OutputStrategy,
    RetryPattern, Step, TaskTemplate, Variable,
};
pub use position::PositionIndex;
pub use validate::{Problem, Severity, ValidationContext, validate_function, validate_template};
pub mod dialect;
pub mod funcs;
pub mod render;
