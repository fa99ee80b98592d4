//! All SQL lives here (house rule 3), one file per table; call sites read noun then verb:
//! `store::task::create`, `store::template::upsert`.
//!
//! Invariants: every secret column is sealed here with the [`KeyRing`](crate::crypto::KeyRing)
//! (AAD = table, column, row id) before it leaves the process, and opened here on the way back;
//! transactions are short and never span an action's execution; state changes are guarded
//! UPDATEs that name the expected state (house rule 1).

pub mod callback;
pub mod comment;
pub mod control;
pub mod db;
pub mod embedded;
pub mod instance;
pub mod keys;
pub mod listing;
pub mod metrics;
pub mod notification;
pub mod resolution;
pub mod rotation;
pub mod schedule;
pub mod step_log;
pub mod task;
pub mod template;
pub mod token;
pub mod wake;
pub mod webhook;

use std::sync::Arc;

use sqlx::PgPool;

use crate::crypto::{CryptoError, KeyRing};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A task was prepared from a template version that is no longer current (see
    /// `task::NewTask::template_guard`); nothing was written.
    #[error("template `{0}` changed while the task was being created: retry")]
    TemplateChanged(String),
}

impl StoreError {
    /// The database cannot be reached now (a restart, a failover, a dropped connection): worth
    /// another try later, and a 503 for an API caller, not a 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Db(e) if db_unavailable(e))
    }
}

/// Connection-level failures: I/O, pool timeouts, TLS, and the SQLSTATEs of a server shutting
/// down or starting up (57P01–57P03) and of connection exceptions (class 08).
pub fn db_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(d) => matches!(
            d.code().as_deref(),
            Some("57P01" | "57P02" | "57P03" | "08000" | "08003" | "08006" | "08001" | "08004")
        ),
        _ => false,
    }
}

/// The pool and the key ring: everything a store function needs.
#[derive(Clone)]
pub struct Store {
    pub pool: PgPool,
    pub keys: Arc<KeyRing>,
    /// Parsed templates (see [`template::Cache`]), shared by the clones of this store.
    pub templates: Arc<template::Cache>,
}

impl Store {
    pub fn new(pool: PgPool, keys: Arc<KeyRing>) -> Store {
        Store {
            pool,
            keys,
            templates: Default::default(),
        }
    }
}
