//! `GET /resolution/{id}/step/{name}/log`: what an execution of a step printed (script and
//! plugin stdout/stderr, http request summaries, progress lines), as JSON pages or live as
//! server-sent events (`Accept: text/event-stream`). Shown to those who see step outputs
//! (admins and the task's managers), never to requesters and watchers only.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ErrorBody;
use super::{ApiError, AppState, Caller};
use crate::action::log::parse_progress;
use crate::domain::ResolutionId;
use crate::store::{self, step_log::Chunk};

/// Query of the log route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Which execution (1 = the first); default the latest that has a log.
    pub execution: Option<i32>,
    /// Only chunks after this one (the `next` of the previous answer).
    pub after: Option<i32>,
}

/// One log line (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct LogLine {
    pub chunk: i32,
    pub at: chrono::DateTime<chrono::Utc>,
    /// `stdout`, `stderr`, `http`, `progress` or `system`.
    pub stream: String,
    pub text: String,
}

/// The latest progress report (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct Progress {
    pub percent: Option<u8>,
    pub message: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The answer of the log route (OpenAPI schema).
#[derive(utoipa::ToSchema)]
pub struct StepLog {
    pub step: String,
    /// The step's current state.
    pub state: String,
    pub execution: Option<i32>,
    /// Executions that have a log (the last 5 are kept).
    pub executions: Vec<i32>,
    pub lines: Vec<LogLine>,
    /// Pass as `after` to get only newer lines.
    pub next: Option<i32>,
    pub progress: Option<Progress>,
}

fn lines_json(chunks: &[Chunk]) -> Vec<Value> {
    chunks
        .iter()
        .flat_map(|c| {
            c.lines.iter().map(
                move |l| json!({"chunk": c.chunk, "at": l.at, "stream": l.stream, "text": l.text}),
            )
        })
        .collect()
}

fn progress_json(chunks: &[Chunk]) -> Value {
    chunks
        .iter()
        .flat_map(|c| c.lines.iter())
        .rfind(|l| l.stream == "progress")
        .map(|l| {
            let (percent, message) = parse_progress(&l.text);
            json!({"percent": percent, "message": message, "at": l.at})
        })
        .unwrap_or(Value::Null)
}

/// A step's log (JSON), or its lines as they come (server-sent events: `line` and `progress`
/// events carry a line as JSON, `end` comes once the step stopped running).
#[utoipa::path(
    get,
    path = "/resolution/{id}/step/{name}/log",
    tag = "resolution",
    operation_id = "get_step_log",
    params(
        ("id" = uuid::Uuid, Path, description = "Resolution id."),
        ("name" = String, Path, description = "Step name."),
        LogQuery,
    ),
    responses(
        (status = 200, description = "The log (JSON), or a stream of `line`, `progress` and `end` events with `Accept: text/event-stream`.",
         content((StepLog = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "Malformed id or query.", body = ErrorBody),
        (status = 403, description = "The caller may not see step outputs of this resolution.", body = ErrorBody),
        (status = 404, description = "No such resolution or step.", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let res: ResolutionId = super::resolution::check_output_reader(&state, &caller, &id).await?;
    let Some(step_state) = store::step_log::step_state(&state.store, res, &name).await? else {
        return Err(ApiError::NotFound(format!(
            "step `{name}` not found in resolution {res}"
        )));
    };
    let executions = store::step_log::executions(&state.store, res, &name).await?;
    let execution = q.execution.or(executions.last().copied());
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if sse {
        return Ok(stream(state, res, name, execution, q.after).into_response());
    }
    let chunks = match execution {
        Some(e) => store::step_log::read(&state.store, res, &name, e, q.after).await?,
        None => Vec::new(),
    };
    Ok(Json(json!({
        "step": name,
        "state": step_state,
        "execution": execution,
        "executions": executions,
        "lines": lines_json(&chunks),
        "next": chunks.last().map(|c| c.chunk).or(q.after),
        "progress": progress_json(&chunks),
    }))
    .into_response())
}

/// Whether a follower should keep waiting: the step is running, or it has not started yet
/// (no execution, still TODO) while its resolution can still get to it.
fn more_may_come(execution: Option<i32>, step: &str, resolution: &str) -> bool {
    if step == "RUNNING" {
        return true;
    }
    let resolution_stopped =
        resolution == "DONE" || resolution == "CANCELLED" || resolution.starts_with("BLOCKED_");
    execution.is_none() && step == "TODO" && !resolution_stopped
}

/// Longest a live stream stays open.
const MAX_STREAM: Duration = Duration::from_secs(30 * 60);

struct Follow {
    state: AppState,
    res: ResolutionId,
    step: String,
    execution: Option<i32>,
    after: Option<i32>,
    started: Instant,
    done: bool,
}

fn stream(
    state: AppState,
    res: ResolutionId,
    step: String,
    execution: Option<i32>,
    after: Option<i32>,
) -> impl IntoResponse {
    let follow = Follow {
        state,
        res,
        step,
        execution,
        after,
        started: Instant::now(),
        done: false,
    };
    let events = futures_util::stream::unfold(follow, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            if f.execution.is_none() {
                // the first execution may not have started yet
                f.execution = store::step_log::executions(&f.state.store, f.res, &f.step)
                    .await
                    .ok()
                    .and_then(|e| e.last().copied());
            }
            let chunks = match f.execution {
                Some(e) => store::step_log::read(&f.state.store, f.res, &f.step, e, f.after)
                    .await
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            if let Some(last) = chunks.last() {
                f.after = Some(last.chunk);
                let events: Vec<Result<Event, std::convert::Infallible>> = chunks
                    .iter()
                    .flat_map(|c| c.lines.iter().map(move |l| (c.chunk, l)))
                    .map(|(chunk, l)| {
                        let kind = if l.stream == "progress" {
                            "progress"
                        } else {
                            "line"
                        };
                        Ok(Event::default().event(kind).data(
                            json!({"chunk": chunk, "at": l.at, "stream": l.stream, "text": l.text})
                                .to_string(),
                        ))
                    })
                    .collect();
                return Some((futures_util::stream::iter(events), f));
            }
            let more = match store::step_log::follow_states(&f.state.store, f.res, &f.step).await {
                Ok(Some((step, resolution))) => more_may_come(f.execution, &step, &resolution),
                _ => false,
            };
            if !more || f.started.elapsed() > MAX_STREAM {
                f.done = true;
                let end = Event::default()
                    .event("end")
                    .data(json!({"execution": f.execution, "next": f.after}).to_string());
                return Some((futures_util::stream::iter(vec![Ok(end)]), f));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .flatten();
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::more_may_come;

    #[test]
    fn a_follower_waits_for_a_step_that_has_not_started_while_its_resolution_can_reach_it() {
        assert!(more_may_come(Some(1), "RUNNING", "RUNNING"));
        assert!(more_may_come(None, "TODO", "RUNNING"));
        assert!(more_may_come(None, "TODO", "TO_AUTORUN"));
        assert!(more_may_come(None, "TODO", "WAITING"));
        // finished, or nothing will reach it without an operator
        assert!(!more_may_come(Some(1), "DONE", "RUNNING"));
        assert!(!more_may_come(None, "DONE", "DONE"));
        assert!(!more_may_come(None, "TODO", "CANCELLED"));
        assert!(!more_may_come(None, "TODO", "BLOCKED_TOCHECK"));
        assert!(!more_may_come(Some(1), "TO_RETRY", "RETRY"));
    }
}
