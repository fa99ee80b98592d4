//! # Plugins: actions in any language
//!
//! A plugin is a folder under `MUTASK_PLUGINS_DIR` (`./plugins`) holding a `manifest.yaml` and
//! an executable. mutask loads every plugin at startup; its `name` becomes an action type that
//! templates use like a builtin. No recompiling.
//!
//! ```yaml
//! # plugins/greet/manifest.yaml
//! name: greet
//! version: 1.0.0
//! description: Greets someone
//! executable: greet.py          # relative to the folder; must be executable
//! timeout: 30s                  # default 2m; the process is killed past it
//! max_output_bytes: 1048576     # stdout limit (default 1 MiB)
//! config_schema:                # JSON schema of the step's configuration
//!   type: object
//!   required: [name]
//!   additionalProperties: false
//!   properties:
//!     name: {type: string}
//! metadata_schema:              # optional: JSON schema of the metadata it returns
//!   type: object
//!   properties:
//!     task: {type: string}
//! ```
//!
//! Both schemas are served by `GET /action` (fields `schema` and `metadata_schema`) for the
//! template editor. Templates are checked against `config_schema` when they load (at startup,
//! in the editor and by `mutask template validate`, which loads `MUTASK_PLUGINS_DIR` too): a
//! missing required field, an unknown field (with `additionalProperties: false`) or a literal
//! value of the wrong type, at any depth, is a warning with its file, line and column, like a
//! builtin action's configuration problem. A value holding a template expression (`{{ }}`) is
//! only checked when the step runs, against the whole schema.
//!
//! A step then says:
//!
//! ```yaml
//! steps:
//!   hello:
//!     action:
//!       type: greet
//!       configuration:
//!         name: "{{ input.who }}"
//! ```
//!
//! ## Protocol
//!
//! The executable runs in its folder with a clean environment (`PATH`, `LANG`, `HOME`, and
//! `MUTASK_TASK_ID`, `MUTASK_RESOLUTION_ID`, `MUTASK_STEP_NAME`, `MUTASK_PLUGIN`). It reads one
//! JSON document on stdin:
//!
//! ```json
//! {"config": {"name": "world"},
//!  "step": {"name": "hello", "task_id": "…", "resolution_id": "…", "requester": "alice"},
//!  "previous_output": null, "previous_metadata": null}
//! ```
//!
//! (the configuration is rendered and checked against `config_schema` first: a mismatch is a
//! CLIENT_ERROR naming the field, and the plugin does not run). It writes its result as the
//! **last line** of stdout, one JSON object (earlier lines, like stderr, are kept as the step's
//! log in the metadata):
//!
//! ```json
//! {"output": {"greeting": "hello world"}, "metadata": {"took_ms": 3}}
//! {"error": {"class": "server", "message": "upstream unavailable"}}
//! ```
//!
//! | result | step state |
//! |---|---|
//! | `output` / `metadata`, no `error` | DONE (subject to the step's conditions) |
//! | `error.class` `client` / `server` / `fatal` / `waiting` | CLIENT_ERROR / SERVER_ERROR / FATAL_ERROR / WAITING |
//! | no JSON last line, non-zero exit | SERVER_ERROR with the exit status and the end of stderr |
//! | timeout, or stdout over `max_output_bytes` | SERVER_ERROR (the process and every process it started are killed; `log` keeps what it printed) |
//!
//! Metadata always carries `exit_code`, `execution_time` and `log` (stderr and earlier stdout
//! lines, at most 64 KiB). Stdout and stderr lines also go to the step's log as they are
//! printed — all but the JSON result line: the last stdout line is held back until another
//! follows, and logged at the end only when it is not the result (or the plugin was killed).
//! A line `MUTASK-PROGRESS: <percent> <message>` there reports progress
//! ([docs/step-logs.md](../step-logs.md)). `plugins/greet/` is a complete example in Python.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::process::GroupKiller;
use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture};

/// Longest log kept in the metadata.
const MAX_LOG: usize = 64 << 10;

/// `manifest.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub executable: String,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub max_output_bytes: Option<usize>,
    #[serde(default)]
    pub config_schema: Option<Value>,
    #[serde(default)]
    pub metadata_schema: Option<Value>,
}

/// A loaded plugin.
pub struct Plugin {
    pub manifest: Manifest,
    name: &'static str,
    dir: PathBuf,
    exe: PathBuf,
    timeout: Duration,
    max_output: usize,
    validator: Option<jsonschema::Validator>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Loads one plugin folder.
pub fn load(dir: &Path) -> Result<Plugin, String> {
    let mpath = dir.join("manifest.yaml");
    let text = std::fs::read_to_string(&mpath)
        .map_err(|e| format!("{}: cannot read: {e}", mpath.display()))?;
    let manifest: Manifest = crate::yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        format!("{}{at}: {e}", mpath.display())
    })?;
    let fail = |m: String| Err(format!("{}: {m}", mpath.display()));
    if !valid_name(&manifest.name) {
        return fail(format!(
            "name `{}` must be 1-64 of a-z, 0-9, `-`, `_`",
            manifest.name
        ));
    }
    if super::Registry::builtin().get(&manifest.name).is_some()
        || crate::template::model::is_builtin_action(&manifest.name)
    {
        return fail(format!("name `{}` is a builtin action type", manifest.name));
    }
    let exe = super::script::resolve_in(dir, &manifest.executable)
        .map_err(|e| format!("{}: executable: {e}", mpath.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&exe)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        if mode & 0o111 == 0 {
            return fail(format!(
                "executable `{}` is not executable",
                manifest.executable
            ));
        }
    }
    let timeout = match manifest.timeout.as_deref() {
        None => Duration::from_secs(120),
        Some(t) => crate::domain::duration::parse(t)
            .map_err(|e| format!("{}: timeout: {e}", mpath.display()))?,
    };
    let validator = match &manifest.config_schema {
        None => None,
        Some(s) => Some(
            jsonschema::validator_for(s)
                .map_err(|e| format!("{}: config_schema: {e}", mpath.display()))?,
        ),
    };
    Ok(Plugin {
        name: Box::leak(manifest.name.clone().into_boxed_str()),
        max_output: manifest
            .max_output_bytes
            .unwrap_or(1 << 20)
            .clamp(1024, 64 << 20),
        dir: dir.to_path_buf(),
        exe,
        timeout,
        validator,
        manifest,
    })
}

/// The plugins' action types and configuration schemas, for template validation.
pub fn validation_types(plugins: &[Plugin]) -> crate::template::validate::PluginTypes {
    plugins
        .iter()
        .map(|p| (p.manifest.name.clone(), p.manifest.config_schema.clone()))
        .collect()
}

/// Every plugin under `dir` (one per sub-folder with a manifest); problems are returned, never
/// fatal. A missing directory holds no plugins.
pub fn load_dir(dir: &Path) -> (Vec<Plugin>, Vec<String>) {
    let (mut plugins, mut problems) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (plugins, problems);
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.join("manifest.yaml").is_file())
        .collect();
    dirs.sort();
    for d in dirs {
        match load(&d) {
            Ok(p) if plugins.iter().any(|q: &Plugin| q.name == p.name) => problems.push(format!(
                "{}: plugin `{}` is defined twice",
                d.display(),
                p.name
            )),
            Ok(p) => plugins.push(p),
            Err(e) => problems.push(e),
        }
    }
    (plugins, problems)
}

fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

impl Plugin {
    async fn execute(&self, req: ActionRequest) -> ActionResult {
        let client = |m: String| ActionResult::err(ActionError::Client(m));
        if let Some(v) = &self.validator {
            let errors: Vec<String> = v
                .iter_errors(&req.config)
                .map(|e| {
                    let at = e.instance_path().to_string();
                    let at = if at.is_empty() {
                        "configuration".into()
                    } else {
                        format!("configuration{at}")
                    };
                    format!("{at}: {e}")
                })
                .collect();
            if !errors.is_empty() {
                return client(format!("{}: {}", self.name, errors.join("; ")));
            }
        }
        let input = json!({
            "config": req.config,
            "step": {"name": req.step_name, "task_id": req.task_id.to_string(),
                     "resolution_id": req.resolution_id.to_string(),
                     "requester": req.requester_username},
            "previous_output": req.previous_output,
            "previous_metadata": req.previous_metadata,
        });
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("LANG", "C.UTF-8")
            .env(
                "HOME",
                std::env::var_os("HOME").unwrap_or_else(|| "/".into()),
            )
            .env("MUTASK_TASK_ID", req.task_id.to_string())
            .env("MUTASK_RESOLUTION_ID", req.resolution_id.to_string())
            .env("MUTASK_STEP_NAME", &req.step_name)
            .env("MUTASK_PLUGIN", self.name)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // its own process group: a timeout kills everything it started, not only itself
            .process_group(0)
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return ActionResult::err(ActionError::Server(format!(
                    "{}: cannot run `{}`: {e}",
                    self.name,
                    self.exe.display()
                )));
            }
        };
        let mut group = GroupKiller::new(&child);
        let mut stdin = child.stdin.take();
        let body = serde_json::to_vec(&input).unwrap_or_default();
        let writer = tokio::spawn(async move {
            if let Some(si) = stdin.as_mut() {
                let _ = si.write_all(&body).await;
            }
            drop(stdin);
        });
        // Both pipes are read until they close, the deadline passes, or stdout outgrows its
        // limit (which stops the stderr reader too); what was read is kept in every case.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let flooded = tokio_util::sync::CancellationToken::new();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let max = self.max_output;
        let out_log = req.log.clone();
        let out_flooded = flooded.clone();
        let read_out = async move {
            let mut out = Vec::new();
            let mut end = Ended::Closed;
            // live in the step log, all but the result line
            let mut lines = StdoutLog::default();
            if let Some(s) = stdout.as_mut() {
                let mut buf = vec![0u8; 8192];
                loop {
                    match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                        Err(_) => {
                            end = Ended::TimedOut;
                            break;
                        }
                        Ok(Ok(0) | Err(_)) => break,
                        Ok(Ok(n)) => {
                            lines.feed(&out_log, &buf[..n]);
                            out.extend_from_slice(&buf[..n]);
                            if out.len() > max {
                                out_flooded.cancel();
                                end = Ended::TooLarge;
                                break;
                            }
                        }
                    }
                }
            }
            lines.finish(&out_log, end == Ended::Closed);
            (out, end)
        };
        let log = req.log.clone();
        let read_err = async move {
            let mut err = Vec::new();
            let mut timed_out = false;
            let mut lines = super::log::LineSplitter::default();
            if let Some(s) = stderr.as_mut() {
                let mut buf = vec![0u8; 8192];
                loop {
                    let n = tokio::select! {
                        r = tokio::time::timeout_at(deadline, s.read(&mut buf)) => match r {
                            Err(_) => {
                                timed_out = true;
                                break;
                            }
                            Ok(Ok(0) | Err(_)) => break,
                            Ok(Ok(n)) => n,
                        },
                        _ = flooded.cancelled() => break,
                    };
                    // live in the step log
                    lines.feed(&log, super::log::Stream::Stderr, &buf[..n]);
                    if err.len() < MAX_LOG {
                        err.extend_from_slice(&buf[..n.min(MAX_LOG - err.len())]);
                    }
                }
            }
            lines.finish(&log, super::log::Stream::Stderr);
            (err, timed_out)
        };
        let ((out, out_end), (err, err_timed_out)) = tokio::join!(read_out, read_err);
        // both pipes closed: the plugin has exited or is about to (a plugin that closes them
        // and goes on running still meets the deadline)
        let status = match (out_end, err_timed_out) {
            (Ended::Closed, false) => tokio::time::timeout_at(deadline, child.wait()).await.ok(),
            _ => None,
        };
        let Some(status) = status else {
            drop(group);
            let _ = child.kill().await;
            writer.abort();
            let message = if out_end == Ended::TooLarge {
                format!(
                    "{}: stdout larger than max_output_bytes ({} > {})",
                    self.name,
                    out.len(),
                    self.max_output
                )
            } else {
                format!("{}: timed out after {:?}", self.name, self.timeout)
            };
            // what it printed until then, as the log of a finished run would carry it
            let out = String::from_utf8_lossy(&out);
            let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
            let meta = json!({
                "exit_code": "-1",
                "execution_time": format!("{:?}", started.elapsed()),
                "log": run_log(&lines, &String::from_utf8_lossy(&err)),
            });
            return ActionResult {
                metadata: Some(meta),
                ..ActionResult::err(ActionError::Server(message))
            };
        };
        group.disarm();
        let _ = writer.await;
        let code = status.ok().and_then(|s| s.code()).unwrap_or(-1);
        parse_result(self.name, &out, &err, code, started.elapsed())
    }
}

/// How the reading of a plugin's stdout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The pipe closed: the plugin is done printing.
    Closed,
    TimedOut,
    /// Over `max_output_bytes`.
    TooLarge,
}

/// The `log` metadata of a run: stdout's non-empty lines (but the result line), then stderr; its
/// last [`MAX_LOG`] bytes.
fn run_log(stdout_lines: &[&str], err: &str) -> String {
    let mut log = stdout_lines.join("\n");
    if !err.is_empty() {
        if !log.is_empty() {
            log.push('\n');
        }
        log.push_str(err);
    }
    tail(&log, MAX_LOG)
}

/// Stdout lines go to the step log as they are printed, except the protocol's result line: the
/// last non-empty line is held back until another one follows, and at the end it is logged only
/// when it is not a JSON object (then it is no result, see [`parse_result`]).
#[derive(Debug, Default)]
struct StdoutLog {
    partial: Vec<u8>,
    held: Option<Vec<u8>>,
}

impl StdoutLog {
    fn feed(&mut self, log: &super::log::StepLog, bytes: &[u8]) {
        for b in bytes {
            if *b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.push(log, line);
            } else {
                self.partial.push(*b);
            }
        }
    }

    fn push(&mut self, log: &super::log::StepLog, line: Vec<u8>) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if let Some(previous) = self.held.replace(line) {
            Self::emit(log, &previous);
        }
    }

    /// The end of stdout. `result_possible` is false when the plugin did not finish printing
    /// (killed at its deadline or past its output limit): its last line is then no result.
    fn finish(&mut self, log: &super::log::StepLog, result_possible: bool) {
        let rest = std::mem::take(&mut self.partial);
        self.push(log, rest);
        if let Some(last) = self.held.take() {
            let result = result_possible
                && std::str::from_utf8(&last)
                    .ok()
                    .and_then(|l| serde_json::from_str::<Value>(l.trim()).ok())
                    .is_some_and(|v| v.is_object());
            if !result {
                Self::emit(log, &last);
            }
        }
    }

    fn emit(log: &super::log::StepLog, line: &[u8]) {
        let line = &line[..line.len().min(super::log::MAX_LINE_BYTES)];
        log.line(super::log::Stream::Stdout, &String::from_utf8_lossy(line));
    }
}

/// A plugin's result from what it printed: the last non-empty line of stdout is the protocol's
/// JSON object (`output`, `metadata`, `error: {class, message}`); earlier stdout lines and stderr
/// become metadata `log`. Pure, so it is fuzzed (`fuzz/fuzz_targets/plugin_result.rs`).
pub fn parse_result(
    name: &str,
    out: &[u8],
    err: &[u8],
    code: i32,
    elapsed: std::time::Duration,
) -> ActionResult {
    let server = |m: String, meta: Value| ActionResult {
        metadata: Some(meta),
        ..ActionResult::err(ActionError::Server(m))
    };
    let out = String::from_utf8_lossy(out).into_owned();
    let err = String::from_utf8_lossy(err).into_owned();
    let mut lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    let result: Option<Value> = lines
        .last()
        .and_then(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object);
    if result.is_some() {
        lines.pop();
    }
    let mut meta = json!({
        "exit_code": code.to_string(),
        "execution_time": format!("{elapsed:?}"),
        "log": run_log(&lines, &err),
    });
    let Some(result) = result else {
        return server(
            format!(
                "{}: no JSON result on the last line of stdout (exit status {code}): {}",
                name,
                tail(err.trim(), 500)
            ),
            meta,
        );
    };
    if let Some(Value::Object(m)) = result.get("metadata") {
        for (k, v) in m {
            meta[k] = v.clone();
        }
    }
    let output = result.get("output").cloned().filter(|v| !v.is_null());
    let error = match result.get("error") {
        None | Some(Value::Null) => None,
        Some(e) => {
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the plugin reported an error")
                .to_string();
            let message = format!("{}: {message}", name);
            Some(
                match e.get("class").and_then(Value::as_str).unwrap_or("server") {
                    "client" => ActionError::Client(message),
                    "fatal" => ActionError::Fatal(message),
                    "waiting" => ActionError::Waiting(message),
                    _ => ActionError::Server(message),
                },
            )
        }
    };
    let error = error.or_else(|| {
        (code != 0).then(|| ActionError::Server(format!("{}: exit status {code}", name)))
    });
    ActionResult {
        output,
        metadata: Some(meta),
        tags: None,
        error,
    }
}

impl Action for Plugin {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(self.execute(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The step log lines of a plugin that printed `chunks` (and finished printing when
    /// `finished`).
    fn logged_by(chunks: &[&[u8]], finished: bool) -> Vec<String> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let log = super::super::log::StepLog::new(tx);
        let mut lines = StdoutLog::default();
        for c in chunks {
            lines.feed(&log, c);
        }
        lines.finish(&log, finished);
        drop(log);
        let mut out = Vec::new();
        while let Ok((_, text)) = rx.try_recv() {
            out.push(text);
        }
        out
    }

    fn logged(chunks: &[&[u8]]) -> Vec<String> {
        logged_by(chunks, true)
    }

    #[test]
    fn stdout_lines_are_logged_but_the_result_line() {
        // split anywhere, blank lines skipped, the JSON result held back and dropped
        assert_eq!(
            logged(&[b"one\ntw", b"o\n\n{\"output\": ", b"{\"a\": 1}}\n"]),
            ["one", "two"]
        );
        // without a trailing newline too
        assert_eq!(logged(&[b"one\n{\"output\": 1}"]), ["one"]);
        // a last line that is no result is a log line like the others
        assert_eq!(logged(&[b"one\nnot json\n"]), ["one", "not json"]);
        assert_eq!(logged(&[b"[1, 2]\n"]), ["[1, 2]"]);
    }

    #[test]
    fn the_last_line_of_a_killed_plugin_is_logged_whatever_it_is() {
        assert_eq!(
            logged_by(&[b"one\n{\"output\": 1}\n"], false),
            ["one", "{\"output\": 1}"]
        );
        assert_eq!(logged_by(&[b"one\npart"], false), ["one", "part"]);
    }
}
