//! # mutask
//!
//! A PostgreSQL-backed, multi-instance automation engine compatible with OVH's µTask.
//!
//! Architecture (dependencies flow one way: `api → engine → action/template → store/crypto/domain`):
//! - [`config`]: one validated configuration (flags, `MUTASK_*` env, optional TOML file).
//! - [`domain`]: ids and state enums, no IO.
//! - [`template`]: the template model, YAML loading with line/column problems, validation.
//! - [`crypto`]: the AES-256-GCM key ring used for every sealed column.
//! - [`engine`]: execution cycles of resolutions (pure core in `engine::resolve`).
//! - [`action`]: builtin actions (echo, script, …).
//! - [`tasks`]: task creation shared by the API and the subtask/batch actions.
//! - [`sandbox`]: child-process pool for untrusted JS (rlimits, deadline kill).
//! - [`store`]: all SQL; migrations; the embedded PostgreSQL cluster.
//! - [`api`]: the axum HTTP surface.
//! - [`app`]: wiring, startup and graceful shutdown.
//!
//! Invariant: nothing secret (inputs, resolver inputs, step configurations and outputs, keys)
//! reaches a column or a log in clear; sealing happens in `store`, at the boundary.

pub mod action;
pub mod api;
pub mod app;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod engine;
pub mod notify;
pub mod sandbox;
pub mod schedule;
pub mod store;
pub mod tasks;
pub mod template;
#[doc(hidden)]
pub mod testing;
pub mod yaml;

/// Installs the process-wide TLS crypto provider (rustls on ring) once; reqwest needs it before
/// any client is built. Safe to call many times.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
