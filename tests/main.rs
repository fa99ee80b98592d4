//! mutask's integration tests, in one test binary: one link instead of one per file, and the
//! test harness runs tests of different files side by side (`cargo test` runs test binaries one
//! after another). Each file below is a module; run one with its path as the filter, e.g.
//! `cargo test --test suite exactly_once::` or `cargo test --test suite api_task::`.
//!
//! A new `tests/<name>.rs` needs its `mod <name>;` line here: `Cargo.toml` has
//! `autotests = false`, so nothing else would build it (and
//! `docs::every_test_file_is_a_module_of_the_suite` fails until it is declared).
//!
//! Shared helpers are in `common/`. Tests run side by side (as many at a time as the machine
//! has cores, or `RUST_TEST_THREADS`): a test that measures something the others could disturb
//! keeps to itself (`idle_queries` counts transactions on a private cluster; the PostgreSQL
//! restarts happen on private clusters too).

mod common;

mod action_callback;
mod action_email;
mod action_http;
mod action_ping_tag;
mod action_script;
mod action_ssh;
mod action_subtask_batch;
mod api_auth;
mod api_comment;
mod api_listing;
mod api_resolution;
mod api_roles;
mod api_routes;
mod api_task;
mod api_template_editor;
mod chaos_soak;
mod conformance;
mod docs;
mod engine_http;
mod engine_limits;
mod exactly_once;
mod garbage_collection;
mod helm_chart;
mod hostile;
mod idle_queries;
mod key_rotation;
mod kill_campaign;
mod multi_instance;
mod notify;
mod openapi;
mod plugin;
mod run_control;
mod sandbox;
mod schedule;
mod secrets;
mod serve_binary;
mod step_logs;
mod store_fencing;
mod task_wait;
mod template_cache;
mod template_load;
mod ui_browser;
mod webhook;
