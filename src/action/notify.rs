//! # `notify` — send a message through the notification backends
//!
//! µTask's `notify` action: a message (and fields) goes to the notification backends configured
//! for the instance (`MUTASK_NOTIFY_WEBHOOK_URL`, `MUTASK_NOTIFY_SLACK_URL`,
//! `MUTASK_NOTIFY_EMAIL_URL`: [docs/notifications.md](../notifications.md)), whatever the
//! notification strategy. The message is queued in the notification outbox in one transaction
//! (sealed, delivered with retries by any instance, never blocking the step) and the step is
//! DONE once it is queued.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `message` | string | the text (required, at most 4000 characters) |
//! | `fields` | map of strings | extra key/values sent with it |
//! | `backends` | list of names | `webhook`, `slack`, `email`; empty or absent = every configured backend |
//! | `level` | `info` (default), `warning`, `error` | carried in the payload |
//!
//! Payload (generic webhook): `{"action": "notify_action", "level", "subject": <message>,
//! "fields", "task": {id, title, state, template, requester, resolution}, "links": {task},
//! "step"}`; Slack gets the message and the task link; email a message whose subject is the
//! message. **Output**: none (as µTask). **Metadata**: `backends` (where it was queued).
//! **Errors**: no backend configured, an unknown backend name or a bad field → CLIENT_ERROR;
//! the database unavailable → SERVER_ERROR.
//!
//! ```yaml
//! action:
//!   type: notify
//!   configuration:
//!     message: "{{ input.service }} deployed to {{ input.environment }}"
//!     fields:
//!       version: "{{ resolver_input.version }}"
//!     backends: [slack]
//! ```

use serde_json::{Map, Value, json};

use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture, config_str};

/// Longest message.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// The notify action.
pub struct Notify;

/// A notify step, checked.
#[derive(Debug)]
struct Params {
    message: String,
    fields: Map<String, Value>,
    backends: Vec<String>,
    level: String,
}

fn params(config: &Value, configured: &[String]) -> Result<Params, String> {
    let message = match config_str(config, "message") {
        Some(m) if !m.trim().is_empty() => m.into_owned(),
        _ => return Err("notify: `message` is required".into()),
    };
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(format!(
            "notify: `message` is longer than {MAX_MESSAGE_CHARS} characters"
        ));
    }
    let mut fields = Map::new();
    match config.get("fields") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(_) | Value::Bool(_) | Value::Null => v.to_string(),
                    _ => return Err(format!("notify: `fields.{k}` must be a string")),
                };
                fields.insert(k.clone(), Value::String(v));
            }
        }
        Some(_) => return Err("notify: `fields` must be a map of strings".into()),
    }
    let level = config_str(config, "level")
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "info".into());
    if !matches!(level.as_str(), "info" | "warning" | "error") {
        return Err(format!(
            "notify: `level` must be info, warning or error, not {level:?}"
        ));
    }
    if configured.is_empty() {
        return Err(
            "notify: no notification backend is configured on this instance (MUTASK_NOTIFY_WEBHOOK_URL, MUTASK_NOTIFY_SLACK_URL or MUTASK_NOTIFY_EMAIL_URL)"
                .into(),
        );
    }
    let wanted: Vec<String> = match config.get("backends") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| format!("notify: `backends[{i}]` must be a string"))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) => s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
        Some(_) => return Err("notify: `backends` must be a list of names".into()),
    };
    for (i, w) in wanted.iter().enumerate() {
        if !configured.contains(w) {
            return Err(format!(
                "notify: `backends[{i}]`: `{w}` is not configured here (configured: {})",
                configured.join(", ")
            ));
        }
    }
    let backends = if wanted.is_empty() {
        configured.to_vec()
    } else {
        wanted
    };
    Ok(Params {
        message,
        fields,
        backends,
        level,
    })
}

async fn run(req: ActionRequest) -> ActionResult {
    let Params {
        message,
        fields,
        backends,
        level,
    } = match params(&req.config, &req.env.notify_backends) {
        Ok(p) => p,
        Err(m) => return ActionResult::err(ActionError::Client(m)),
    };
    let Some(store) = &req.env.store else {
        return ActionResult::err(ActionError::Fatal(
            "notify: no storage available to queue the message".into(),
        ));
    };
    let task = match crate::store::task::get(store, req.task_id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return ActionResult::err(ActionError::Fatal(format!(
                "notify: task {} not found",
                req.task_id
            )));
        }
        Err(e) => return ActionResult::err(ActionError::Server(format!("notify: {e}"))),
    };
    let payload = json!({
        "action": "notify_action",
        "level": level,
        "subject": message,
        "fields": fields,
        "step": req.step_name,
        "task": {
            "id": task.id, "title": task.title, "state": task.state.as_str(),
            "template": task.template_name, "requester": task.requester_username,
            "resolution": req.resolution_id,
        },
        "links": {"task": format!("{}/task/{}", req.env.base_url, task.id)},
        "at": chrono::Utc::now(),
    });
    match crate::store::notification::enqueue(
        store,
        task.id.0,
        &task.template_name,
        &backends,
        &payload,
    )
    .await
    {
        Ok(()) => ActionResult::ok(None, Some(json!({ "backends": backends }))),
        Err(e) => ActionResult::err(ActionError::Server(format!(
            "notify: the message could not be queued: {e}"
        ))),
    }
}

impl Action for Notify {
    fn name(&self) -> &'static str {
        "notify"
    }

    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(run(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_checked() {
        let all = vec!["webhook".to_string(), "slack".to_string()];
        let p = params(
            &json!({"message": "hi", "fields": {"n": 3}, "backends": ["slack"]}),
            &all,
        )
        .unwrap();
        assert_eq!(p.message, "hi");
        assert_eq!(p.backends, ["slack"]);
        assert_eq!(p.level, "info");
        assert_eq!(p.fields["n"], "3");
        let p = params(&json!({"message": "hi"}), &all).unwrap();
        assert_eq!(p.backends, all);
        for (c, needle) in [
            (json!({}), "message"),
            (
                json!({"message": "x", "backends": ["email"]}),
                "backends[0]",
            ),
            (json!({"message": "x", "fields": {"a": [1]}}), "fields.a"),
            (json!({"message": "x", "level": "loud"}), "level"),
        ] {
            assert!(params(&c, &all).unwrap_err().contains(needle), "{c}");
        }
        assert!(
            params(&json!({"message": "x"}), &[])
                .unwrap_err()
                .contains("no notification backend")
        );
    }
}
