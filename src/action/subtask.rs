//! # `subtask` — create a task from another template and wait for it
//!
//! The first execution creates the child task (requester: the parent's requester; tag
//! `_utask_parent_task_id`); later executions read its state. When the child ends, the parent is
//! woken at once (no polling delay).
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `template` | string | the child template |
//! | `input` | map | child inputs |
//! | `json_input` | string | child inputs as a JSON object (its keys win over `input`) |
//! | `resolver_usernames`, `resolver_groups`, `watcher_usernames`, `watcher_groups` | list, or a JSON list in a string | people of the child task |
//! | `delay` | duration | run the child later |
//! | `tags` | map | child tags |
//!
//! Output: `{id, state, result, resolver_username, requester_username}` of the child. States:
//! child DONE → DONE; TODO or DELAYED → WAITING; RUNNING → TO_RETRY; CANCELLED, WONTFIX or
//! BLOCKED → CLIENT_ERROR; anything else → SERVER_ERROR. An unknown template or invalid child
//! inputs → CLIENT_ERROR naming the problem.
//!
//! ```yaml
//! action:
//!   type: subtask
//!   configuration:
//!     template: hello-world
//!     input: {name: "{{ input.name }}"}
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture, config_str};
use crate::domain::{TaskId, TaskState};
use crate::store;
use crate::tasks::{self, CreateError, CreateRequest, Requester};

/// The subtask action.
pub struct Subtask;

/// A list given as a list or as a JSON list in a string.
pub fn name_list(v: Option<&Value>, field: &str) -> Result<Option<Vec<String>>, String> {
    let parsed = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|e| format!("`{field}` is not a JSON list: {e}"))?,
        Some(other) => other.clone(),
    };
    match parsed {
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                other => Err(format!("`{field}` must hold strings, got {other}")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(format!("`{field}` must be a list, got {other}")),
    }
}

fn child_output(t: &store::task::TaskRecord) -> Value {
    json!({
        "id": t.id.to_string(),
        "state": t.state.as_str(),
        "result": t.result,
        "resolver_username": t.resolver_username,
        "requester_username": t.requester_username,
    })
}

fn outcome(t: &store::task::TaskRecord) -> ActionResult {
    let mut r = ActionResult::ok(Some(child_output(t)), None);
    let msg = |what: &str| format!("subtask {} is {what}", t.id);
    r.error = match t.state {
        TaskState::Done => None,
        TaskState::Todo | TaskState::Delayed => Some(ActionError::Waiting(msg("waiting to run"))),
        TaskState::Running => Some(ActionError::Retry(msg("running"))),
        TaskState::Cancelled | TaskState::WontFix | TaskState::Blocked => {
            Some(ActionError::Client(msg(t.state.as_str())))
        }
        TaskState::Waiting => Some(ActionError::Server(msg("WAITING"))),
    };
    r
}

async fn run(req: ActionRequest) -> ActionResult {
    let client = |m: String| ActionResult::err(ActionError::Client(format!("subtask: {m}")));
    let (Some(store), Some(renderer)) = (req.env.store.clone(), req.env.renderer.clone()) else {
        return ActionResult::err(ActionError::Fatal(
            "subtask: no task store available".into(),
        ));
    };
    // already created: follow the child
    if let Some(id) = req
        .previous_output
        .as_ref()
        .and_then(|o| o.get("id"))
        .and_then(Value::as_str)
        && let Ok(id) = id.parse::<TaskId>()
    {
        return match store::task::get(&store, id).await {
            Ok(Some(t)) => outcome(&t),
            Ok(None) => client(format!("the child task {id} no longer exists")),
            Err(e) => ActionResult::err(ActionError::Server(format!("subtask: {e}"))),
        };
    }
    let c = &req.config;
    let Some(template) = config_str(c, "template").filter(|t| !t.is_empty()) else {
        return client("`template` is required".into());
    };
    let mut input: Map<String, Value> = match c.get("input") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return client(format!("`input` must be a map, got {other}")),
    };
    if let Some(j) = config_str(c, "json_input").filter(|j| !j.trim().is_empty()) {
        match serde_json::from_str::<Value>(&j) {
            Ok(Value::Object(m)) => input.extend(m),
            Ok(other) => return client(format!("`json_input` must be a JSON object, got {other}")),
            Err(e) => return client(format!("`json_input` is not valid JSON: {e}")),
        }
    }
    let lists = (|| -> Result<_, String> {
        Ok((
            name_list(c.get("resolver_usernames"), "resolver_usernames")?,
            name_list(c.get("resolver_groups"), "resolver_groups")?,
            name_list(c.get("watcher_usernames"), "watcher_usernames")?.unwrap_or_default(),
            name_list(c.get("watcher_groups"), "watcher_groups")?.unwrap_or_default(),
        ))
    })();
    let (resolver_usernames, resolver_groups, watcher_usernames, watcher_groups) = match lists {
        Ok(l) => l,
        Err(e) => return client(e),
    };
    let mut tags = BTreeMap::new();
    if let Some(Value::Object(m)) = c.get("tags") {
        for (k, v) in m {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            tags.insert(k.clone(), v);
        }
    }
    let who = Requester {
        username: req.requester_username.clone(),
        groups: Vec::new(),
        is_admin: req.env.admins.contains(&req.requester_username),
    };
    let request = CreateRequest {
        template_name: template.into_owned(),
        input,
        comment: None,
        watcher_usernames,
        watcher_groups,
        resolver_usernames,
        resolver_groups,
        delay: config_str(c, "delay").map(|d| d.into_owned()),
        tags,
        parent_task_id: Some(req.task_id),
        batch_id: None,
        status_hook: None,
        ids: None,
        claim: None,
    };
    match tasks::create(&store, &renderer, &who, request).await {
        Ok((child, _)) => outcome(&child),
        Err(CreateError::Store(e)) => {
            ActionResult::err(ActionError::Server(format!("subtask: {e}")))
        }
        Err(CreateError::Internal(e)) => {
            ActionResult::err(ActionError::Server(format!("subtask: {e}")))
        }
        Err(e) => client(e.to_string()),
    }
}

impl Action for Subtask {
    fn name(&self) -> &'static str {
        "subtask"
    }

    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(run(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_as_json_strings_or_lists() {
        assert_eq!(
            name_list(Some(&json!("[\"a\",\"b\"]")), "x").unwrap(),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            name_list(Some(&json!(["a"])), "x").unwrap(),
            Some(vec!["a".into()])
        );
        assert_eq!(name_list(Some(&json!("")), "x").unwrap(), None);
        assert!(name_list(Some(&json!("{")), "x").is_err());
        assert!(name_list(Some(&json!([1])), "x").is_err());
    }
}
