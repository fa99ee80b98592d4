//! # `script` — run an executable from the scripts directory
//!
//! Runs `file_path` (resolved inside `MUTASK_SCRIPTS_DIR`; a path that escapes it is refused)
//! with `argv` as separate arguments — never through a shell, so templated values containing
//! `;`, backticks or `$(…)` reach the program as literal data.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `file_path` | string | executable, relative to the scripts dir (required) |
//! | `file` | string | µTask's older name of `file_path`, used when `file_path` is absent |
//! | `argv` | list of strings | arguments |
//! | `environment` | map | extra environment variables |
//! | `stdin` | string | written to the program's standard input |
//! | `timeout` | duration | default `2m`; past it the process and every process it started (its process group) are killed |
//! | `output_mode` | `manual-lastline` (default) \| `manual-delimiters` \| `disabled` | where the JSON output is read |
//! | `output_manual_delimiters` | [start, end] | regexes around the JSON output (`manual-delimiters`) |
//! | `exit_codes_unrecoverable` | list of codes or ranges (`"3"`, `"10-20"`) | exit codes that mean CLIENT_ERROR |
//!
//! The environment holds only `PATH`, `HOME`, `LANG`, the configured variables, and
//! `MUTASK_TASK_ID` / `MUTASK_RESOLUTION_ID` / `MUTASK_STEP_NAME` (also under µTask's `UTASK_*`
//! names). Output: the JSON object of the last stdout line (or between the delimiters), none if
//! that line is not JSON. Metadata: `exit_code` (string), `process_state`, `output` (stdout and
//! stderr interleaved), `execution_time`, `error`. Exit code 0 → DONE; a non-zero code →
//! SERVER_ERROR, or CLIENT_ERROR when listed in `exit_codes_unrecoverable`; a timeout →
//! SERVER_ERROR, with `process_state` `killed` and what the program printed until then in
//! `output`.
//!
//! **Step log**: every stdout and stderr line goes to the step's log as it is printed
//! (`GET /resolution/{id}/step/{name}/log`, live as server-sent events; secrets masked). A stdout
//! line `MUTASK-PROGRESS: 40 copying files` (percent, then a message; or a message alone) reports
//! progress, shown on the task ([docs/step-logs.md](../step-logs.md)).
//!
//! ```yaml
//! action:
//!   type: script
//!   configuration:
//!     file_path: deploy.sh
//!     argv: ["{{ input.service }}", "--version", "{{ resolver_input.version }}"]
//!     timeout: 5m
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::log::{LineSplitter, Stream};
use super::process::GroupKiller;
use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture, config_str};

/// The script action.
pub struct Script;

/// Longest output kept in metadata.
const MAX_OUTPUT: usize = 1024 * 1024;

/// Resolves `file` inside `dir`, refusing escapes (`..`, absolute paths, symlinks out).
pub fn resolve_in(dir: &Path, file: &str) -> Result<PathBuf, String> {
    let rel = Path::new(file);
    if rel.is_absolute() {
        return Err(format!(
            "script: file_path `{file}` must be relative to the scripts directory"
        ));
    }
    let base = dir.canonicalize().map_err(|e| {
        format!(
            "script: scripts directory {} is not usable: {e}",
            dir.display()
        )
    })?;
    let full = base
        .join(rel)
        .canonicalize()
        .map_err(|_| format!("script: `{file}` not found in the scripts directory"))?;
    if !full.starts_with(&base) {
        return Err(format!(
            "script: file_path `{file}` escapes the scripts directory"
        ));
    }
    if !full.is_file() {
        return Err(format!("script: `{file}` is not a file"));
    }
    Ok(full)
}

fn string_list(v: Option<&Value>, field: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                other => Err(format!(
                    "script: `{field}` items must be strings, got {other}"
                )),
            })
            .collect(),
        Some(other) => Err(format!("script: `{field}` must be a list, got {other}")),
    }
}

fn unrecoverable(codes: &[String], code: i32) -> bool {
    codes.iter().any(|c| match c.split_once('-') {
        Some((a, b)) => match (a.trim().parse::<i32>(), b.trim().parse::<i32>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&code),
            _ => false,
        },
        None => c.trim().parse::<i32>() == Ok(code),
    })
}

fn parse_output(out: &str, mode: &str, delimiters: &[String]) -> Option<Value> {
    match mode {
        "disabled" => None,
        "manual-delimiters" => {
            let (start, end) = (delimiters.first()?, delimiters.get(1)?);
            let re = regex::Regex::new(&format!("(?s){start}(.*){end}")).ok()?;
            let caps = re.captures(out)?;
            serde_json::from_str(caps.get(1)?.as_str().trim()).ok()
        }
        _ => {
            let line = out.trim_end_matches('\n').rsplit('\n').next()?;
            if !line.contains('{') {
                return None;
            }
            serde_json::from_str::<Value>(line.trim())
                .ok()
                .filter(|v| v.is_object())
        }
    }
}

async fn run(req: ActionRequest) -> ActionResult {
    let c = &req.config;
    let client = |m: String| ActionResult::err(ActionError::Client(m));
    let Some(file) = config_str(c, "file_path").or_else(|| config_str(c, "file")) else {
        return client("script: `file_path` is required".into());
    };
    let path = match resolve_in(&req.env.scripts_dir, &file) {
        Ok(p) => p,
        Err(e) => return client(e),
    };
    let argv = match string_list(c.get("argv"), "argv") {
        Ok(a) => a,
        Err(e) => return client(e),
    };
    let codes = match string_list(
        c.get("exit_codes_unrecoverable"),
        "exit_codes_unrecoverable",
    ) {
        Ok(a) => a,
        Err(e) => return client(e),
    };
    let delimiters = match string_list(
        c.get("output_manual_delimiters"),
        "output_manual_delimiters",
    ) {
        Ok(a) => a,
        Err(e) => return client(e),
    };
    let timeout = match config_str(c, "timeout") {
        Some(t) if !t.is_empty() => match crate::domain::duration::parse(&t) {
            Ok(d) => d,
            Err(e) => return client(format!("script: `timeout`: {e}")),
        },
        _ => Duration::from_secs(120),
    };
    let mut cmd = tokio::process::Command::new(&path);
    cmd.args(&argv)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("LANG", "C.UTF-8")
        .env(
            "HOME",
            std::env::var_os("HOME").unwrap_or_else(|| "/".into()),
        )
        .current_dir(path.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // its own process group: a timeout kills everything it started, not only itself
        .process_group(0)
        .kill_on_drop(true);
    if let Some(Value::Object(env)) = c.get("environment") {
        for (k, v) in env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return client(format!("script: invalid environment variable name `{k}`"));
            }
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            cmd.env(k, v);
        }
    }
    for (prefix, name) in [("MUTASK", "TASK_ID"), ("UTASK", "TASK_ID")] {
        cmd.env(format!("{prefix}_{name}"), req.task_id.to_string());
    }
    for prefix in ["MUTASK", "UTASK"] {
        cmd.env(
            format!("{prefix}_RESOLUTION_ID"),
            req.resolution_id.to_string(),
        );
        cmd.env(format!("{prefix}_STEP_NAME"), &req.step_name);
    }
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(ch) => ch,
        Err(e) => return client(format!("script: cannot run `{file}`: {e}")),
    };
    let mut group = GroupKiller::new(&child);
    let stdin_data = config_str(c, "stdin")
        .map(|s| s.into_owned())
        .unwrap_or_default();
    let mut stdin = child.stdin.take();
    let writer = tokio::spawn(async move {
        if let Some(si) = stdin.as_mut() {
            let _ = si.write_all(stdin_data.as_bytes()).await;
        }
        drop(stdin);
    });
    // interleave stdout and stderr into one buffer, as µTask's CombinedOutput
    // and line by line into the step log
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let mut readers = Vec::new();
    for (pipe, stream) in [
        (
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            Stream::Stdout,
        ),
        (
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            Stream::Stderr,
        ),
    ] {
        let Some(pipe) = pipe else { continue };
        let tx = tx.clone();
        let log = req.log.clone();
        readers.push(tokio::spawn(async move {
            let mut pipe = pipe;
            let mut buf = vec![0u8; 8192];
            let mut lines = LineSplitter::default();
            loop {
                match pipe.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        lines.feed(&log, stream, &buf[..n]);
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
            lines.finish(&log, stream);
        }));
    }
    drop(tx);
    // the output is kept as it comes, so that a timeout still reports what was printed
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    let keep = |out: &mut Vec<u8>, chunk: Vec<u8>| {
        if out.len() < MAX_OUTPUT {
            out.extend_from_slice(&chunk[..chunk.len().min(MAX_OUTPUT - out.len())]);
        }
    };
    let mut timed_out = false;
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(chunk) => keep(&mut out, chunk),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => {
                timed_out = true;
                break;
            }
        }
    }
    let status = if timed_out {
        None
    } else {
        tokio::time::timeout_at(deadline, child.wait()).await.ok()
    };
    let elapsed = started.elapsed();
    let Some(status) = status else {
        // the whole group first: a writer blocked on a full stdin pipe ends with it
        drop(group);
        let _ = child.kill().await;
        writer.abort();
        // what the killed processes wrote is still in the pipes: the readers take it (and log
        // a last line without its newline) until the pipes close — for at most a moment, as a
        // process that left the group may hold them open
        let grace = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(grace);
        loop {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(chunk) => keep(&mut out, chunk),
                    None => break,
                },
                _ = &mut grace => break,
            }
        }
        for r in readers {
            r.abort();
        }
        return ActionResult {
            metadata: Some(json!({
                "exit_code": "-1", "process_state": "killed",
                "output": String::from_utf8_lossy(&out),
                "execution_time": format!("{:?}", elapsed),
                "error": format!("timeout after {timeout:?}"),
            })),
            ..ActionResult::err(ActionError::Server(format!(
                "script: `{file}` timed out after {timeout:?}"
            )))
        };
    };
    group.disarm();
    let _ = writer.await;
    for r in readers {
        r.abort();
    }
    let out = String::from_utf8_lossy(&out).into_owned();
    let (code, state, error) = match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            match (s.code(), s.signal()) {
                (Some(c), _) => (
                    c,
                    format!("exit status {c}"),
                    if c == 0 {
                        String::new()
                    } else {
                        format!("exit status {c}")
                    },
                ),
                (None, Some(sig)) => (
                    -1,
                    format!("signal: {sig}"),
                    format!("killed by signal {sig}"),
                ),
                _ => (-1, "unknown".into(), "unknown exit status".into()),
            }
        }
        Err(e) => (-1, "unknown".into(), e.to_string()),
    };
    let mode = config_str(c, "output_mode")
        .map(|m| m.into_owned())
        .unwrap_or_default();
    let output = parse_output(&out, &mode, &delimiters);
    let metadata = json!({
        "exit_code": code.to_string(),
        "process_state": state,
        "output": out,
        "execution_time": format!("{:?}", elapsed),
        "error": error,
    });
    let mut result = ActionResult::ok(output, Some(metadata));
    if code != 0 {
        let msg = format!("script: `{file}` failed: {error}");
        result.error = Some(if unrecoverable(&codes, code) {
            ActionError::Client(msg)
        } else {
            ActionError::Server(msg)
        });
    }
    result
}

impl Action for Script {
    fn name(&self) -> &'static str {
        "script"
    }

    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(run(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_scripts_dir() {
        let dir = tempfile::tempdir().unwrap();
        let scripts = dir.path().join("scripts");
        std::fs::create_dir_all(scripts.join("sub")).unwrap();
        std::fs::write(scripts.join("sub/ok.sh"), "#!/bin/sh\n").unwrap();
        std::fs::write(dir.path().join("outside.sh"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.sh"), scripts.join("link.sh")).unwrap();
        assert!(resolve_in(&scripts, "sub/ok.sh").is_ok());
        assert!(resolve_in(&scripts, "./sub/../sub/ok.sh").is_ok());
        for bad in [
            "../outside.sh",
            "/etc/passwd",
            "link.sh",
            "missing.sh",
            "sub",
        ] {
            assert!(resolve_in(&scripts, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exit_code_ranges_and_output_modes() {
        let codes = vec!["3".to_string(), "10-20".to_string()];
        assert!(
            unrecoverable(&codes, 3) && unrecoverable(&codes, 15) && !unrecoverable(&codes, 21)
        );
        assert_eq!(
            parse_output("a\n{\"x\":1}\n", "", &[]),
            Some(json!({"x": 1}))
        );
        assert_eq!(parse_output("a\nnot json\n", "", &[]), None);
        assert_eq!(parse_output("{\"x\":1}", "disabled", &[]), None);
        let d = vec!["BEGIN".to_string(), "END".to_string()];
        assert_eq!(
            parse_output("x BEGIN {\"y\": 2} END z", "manual-delimiters", &d),
            Some(json!({"y": 2}))
        );
    }
}
