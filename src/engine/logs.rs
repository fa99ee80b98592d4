//! The log writer of one step execution: receives the lines an action prints
//! ([`crate::action::log::StepLog`]), masks secrets (the values of password inputs and resolver
//! inputs, whatever action printed them), caps the execution's log at [`MAX_BYTES`], and stores
//! the lines in sealed chunks about every 300 ms, so a running step's log can be followed live.
//! Only the last `keep` executions of a step keep their log (`MUTASK_LOG_KEEP_EXECUTIONS`,
//! default [`KEEP_EXECUTIONS`]); age-based retention (`MUTASK_LOG_RETENTION`) runs in the
//! runner's maintenance loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::action::log::{StepLog, Stream};
use crate::domain::ResolutionId;
use crate::store::Store;
use crate::store::step_log::{self, Line};

/// Most bytes of text kept per execution; then one `system` line says the log was cut.
pub const MAX_BYTES: usize = 256 * 1024;
/// Executions of one step whose logs are kept, by default.
pub const KEEP_EXECUTIONS: i32 = 5;
/// What replaces a secret in a log line.
pub const MASK: &str = "**__SECRET__**";

/// Replaces every occurrence of a secret (values shorter than 4 characters are not masked:
/// they would blank out ordinary words).
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.chars().count() >= 4) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// Starts the writer of one execution; drop every clone of the returned handle, then await the
/// join handle to flush the last lines.
pub fn start(
    store: Store,
    resolution: ResolutionId,
    step: String,
    execution: i32,
    keep: i32,
    secrets: Arc<Vec<String>>,
) -> (StepLog, JoinHandle<()>) {
    let keep = keep.max(1);
    let (tx, mut rx) = mpsc::unbounded_channel::<(Stream, String)>();
    let handle = tokio::spawn(async move {
        if execution >= keep
            && let Err(e) =
                step_log::prune_executions(&store, resolution, &step, execution - keep + 1).await
        {
            tracing::debug!(error = %e, "pruning old step logs failed");
        }
        let mut chunk = 0;
        let mut pending: Vec<Line> = Vec::new();
        let mut bytes = 0usize;
        let mut cut = false;
        let mut tick = tokio::time::interval(Duration::from_millis(300));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let open = tokio::select! {
                m = rx.recv() => match m {
                    Some((stream, text)) => {
                        if !cut {
                            bytes += text.len();
                            if bytes > MAX_BYTES {
                                cut = true;
                                pending.push(Line {
                                    at: chrono::Utc::now(),
                                    stream: Stream::System.as_str().into(),
                                    text: format!("log cut: more than {} KiB", MAX_BYTES / 1024),
                                });
                            } else {
                                pending.push(Line {
                                    at: chrono::Utc::now(),
                                    stream: stream.as_str().into(),
                                    text: mask(&text, &secrets),
                                });
                            }
                        }
                        if pending.len() < 200 {
                            continue;
                        }
                        true
                    }
                    None => false,
                },
                _ = tick.tick() => true,
            };
            if !pending.is_empty() {
                match step_log::append(&store, resolution, &step, execution, chunk, &pending).await
                {
                    Ok(()) => chunk += 1,
                    Err(e) => tracing::warn!(error = %e, step = %step, "step log lines lost"),
                }
                pending.clear();
            }
            if !open {
                return;
            }
        }
    });
    (StepLog::new(tx), handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_short_values_are_not() {
        let secrets = vec!["hunter22".to_string(), "ab".to_string()];
        assert_eq!(
            mask("login with hunter22 and ab", &secrets),
            "login with **__SECRET__** and ab"
        );
    }
}
