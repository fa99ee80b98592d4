//! # `batch` — create many tasks from one template and wait for all of them
//!
//! Creates a batch of child tasks (one per element of `inputs`), `sub_batch_size` at a time,
//! and stays WAITING until every child has ended; the last child to end wakes the parent.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `template_name` | string | the children's template |
//! | `inputs` | list of maps | one child per element |
//! | `json_inputs` | string | the same, as a JSON list (added after `inputs`) |
//! | `common_inputs` | map | inputs given to every child (a key may not also be in an element) |
//! | `common_json_inputs` | string | the same, as a JSON object |
//! | `sub_batch_size` | number or string | children running at once; `0` (default) = all |
//! | `tags` | map | children's tags |
//! | `comment` | string | first comment of each child |
//! | `watcher_usernames`, `watcher_groups` | list | watchers of each child |
//! | `resolver_usernames`, `resolver_groups` | list, or a JSON list in a string | resolvers of each child (µTask accepts these and ignores them; mutask applies them) |
//!
//! Output: none. Metadata: a JSON **string** (µTask's format)
//! `{"batch_id", "remaining_tasks", "tasks_started"}`. WAITING while children run; DONE when all
//! have ended; a bad configuration → CLIENT_ERROR naming the field.
//!
//! ```yaml
//! action:
//!   type: batch
//!   configuration:
//!     template_name: hello-world
//!     inputs: [{name: Ada}, {name: Grace}]
//!     sub_batch_size: 1
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::subtask::name_list;
use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture, config_str};
use crate::domain::BatchId;
use crate::store;
use crate::tasks::{self, CreateError, CreateRequest, Requester};

/// The batch action.
pub struct Batch;

/// Most children one batch step may create.
const MAX_CHILDREN: usize = 10_000;

fn object_list(v: Option<&Value>, field: &str) -> Result<Vec<Map<String, Value>>, String> {
    let parsed = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|e| format!("`{field}` is not valid JSON: {e}"))?,
        Some(other) => other.clone(),
    };
    match parsed {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(m) => Ok(m),
                other => Err(format!("`{field}[{i}]` must be a map, got {other}")),
            })
            .collect(),
        other => Err(format!("`{field}` must be a list, got {other}")),
    }
}

fn object(v: Option<&Value>, field: &str) -> Result<Map<String, Value>, String> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(format!("`{field}` must be a JSON object, got {other}")),
            Err(e) => Err(format!("`{field}` is not valid JSON: {e}")),
        },
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(format!("`{field}` must be a map, got {other}")),
    }
}

/// The children inputs of a configuration (elements merged with the common inputs).
pub fn children_inputs(c: &Value) -> Result<Vec<Map<String, Value>>, String> {
    let mut items = object_list(c.get("inputs"), "inputs")?;
    items.extend(object_list(c.get("json_inputs"), "json_inputs")?);
    let mut common = object(c.get("common_inputs"), "common_inputs")?;
    common.extend(object(c.get("common_json_inputs"), "common_json_inputs")?);
    if items.len() > MAX_CHILDREN {
        return Err(format!(
            "at most {MAX_CHILDREN} inputs per batch, got {}",
            items.len()
        ));
    }
    for (i, item) in items.iter_mut().enumerate() {
        for (k, v) in &common {
            if item.contains_key(k) {
                return Err(format!(
                    "input `{k}` of element #{i} is also a common input"
                ));
            }
            item.insert(k.clone(), v.clone());
        }
    }
    Ok(items)
}

fn sub_batch_size(c: &Value) -> Result<usize, String> {
    match c.get("sub_batch_size") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| format!("`sub_batch_size` must be ≥ 0, got {n}")),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(0),
        Some(Value::String(s)) => s
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("`sub_batch_size` must be a number ≥ 0, got `{s}`")),
        Some(other) => Err(format!("`sub_batch_size` must be a number, got {other}")),
    }
}

/// Progress kept in the step metadata between executions.
fn previous_progress(meta: Option<&Value>) -> Option<(BatchId, usize)> {
    let text = meta?.as_str()?;
    let v: Value = serde_json::from_str(text).ok()?;
    let id = v.get("batch_id")?.as_str()?.parse().ok()?;
    let started = v.get("tasks_started")?.as_u64()? as usize;
    Some((id, started))
}

async fn run(req: ActionRequest) -> ActionResult {
    let client = |m: String| ActionResult::err(ActionError::Client(format!("batch: {m}")));
    let server = |m: String| ActionResult::err(ActionError::Server(format!("batch: {m}")));
    let (Some(store), Some(renderer)) = (req.env.store.clone(), req.env.renderer.clone()) else {
        return ActionResult::err(ActionError::Fatal("batch: no task store available".into()));
    };
    let c = &req.config;
    let Some(template) = config_str(c, "template_name").filter(|t| !t.is_empty()) else {
        return client("`template_name` is required".into());
    };
    let inputs = match children_inputs(c) {
        Ok(i) => i,
        Err(e) => return client(e),
    };
    let size = match sub_batch_size(c) {
        Ok(s) => s,
        Err(e) => return client(e),
    };
    let (watchers, watcher_groups) = match (
        name_list(c.get("watcher_usernames"), "watcher_usernames"),
        name_list(c.get("watcher_groups"), "watcher_groups"),
    ) {
        (Ok(a), Ok(b)) => (a.unwrap_or_default(), b.unwrap_or_default()),
        (Err(e), _) | (_, Err(e)) => return client(e),
    };
    let (resolvers, resolver_groups) = match (
        name_list(c.get("resolver_usernames"), "resolver_usernames"),
        name_list(c.get("resolver_groups"), "resolver_groups"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return client(e),
    };
    let mut tags = BTreeMap::new();
    if let Some(Value::Object(m)) = c.get("tags") {
        for (k, v) in m {
            tags.insert(
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            );
        }
    }
    let (batch, mut started) = match previous_progress(req.previous_metadata.as_ref()) {
        Some(p) => p,
        None => match store::task::create_batch(&store).await {
            Ok(id) => (id, 0),
            Err(e) => return server(e.to_string()),
        },
    };
    let (total, unfinished) = match store::task::batch_progress(&store, batch).await {
        Ok(p) => p,
        Err(e) => return server(e.to_string()),
    };
    let _ = total;
    let room = if size == 0 {
        usize::MAX
    } else {
        size.saturating_sub(unfinished as usize)
    };
    let who = Requester {
        username: req.requester_username.clone(),
        groups: Vec::new(),
        is_admin: req.env.admins.contains(&req.requester_username),
    };
    let mut created = 0usize;
    while started < inputs.len() && created < room {
        let request = CreateRequest {
            template_name: template.to_string(),
            input: inputs[started].clone(),
            comment: config_str(c, "comment").map(|s| s.into_owned()),
            watcher_usernames: watchers.clone(),
            watcher_groups: watcher_groups.clone(),
            resolver_usernames: resolvers.clone(),
            resolver_groups: resolver_groups.clone(),
            delay: None,
            tags: tags.clone(),
            parent_task_id: Some(req.task_id),
            batch_id: Some(batch),
            status_hook: None,
            ids: None,
            claim: None,
        };
        match tasks::create(&store, &renderer, &who, request).await {
            Ok(_) => {}
            Err(CreateError::Store(e)) => return server(e.to_string()),
            Err(CreateError::Internal(e)) => return server(e),
            Err(e) => return client(format!("element #{started}: {e}")),
        }
        started += 1;
        created += 1;
    }
    let unfinished = match store::task::batch_progress(&store, batch).await {
        Ok((_, u)) => u as usize,
        Err(e) => return server(e.to_string()),
    };
    let remaining = inputs.len() - started + unfinished;
    let metadata = json!({"batch_id": batch.to_string(), "remaining_tasks": remaining, "tasks_started": started});
    let mut result = ActionResult::ok(None, Some(Value::String(metadata.to_string())));
    if remaining > 0 {
        result.error = Some(ActionError::Waiting(format!(
            "batch {batch}: {remaining} task(s) remaining"
        )));
    }
    result
}

impl Action for Batch {
    fn name(&self) -> &'static str {
        "batch"
    }

    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(run(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_merged_and_checked() {
        let c = json!({
            "inputs": [{"a": 1}], "json_inputs": "[{\"a\": 2}]",
            "common_inputs": {"c": "x"}, "common_json_inputs": "{\"d\": true}"
        });
        let items = children_inputs(&c).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[1],
            json!({"a": 2, "c": "x", "d": true})
                .as_object()
                .unwrap()
                .clone()
        );
        assert!(
            children_inputs(&json!({"inputs": [{"c": 1}], "common_inputs": {"c": 2}}))
                .unwrap_err()
                .contains("common")
        );
        assert!(
            children_inputs(&json!({"json_inputs": "[1]"}))
                .unwrap_err()
                .contains("json_inputs[0]")
        );
        assert_eq!(sub_batch_size(&json!({"sub_batch_size": "2"})).unwrap(), 2);
        assert!(sub_batch_size(&json!({"sub_batch_size": "-1"})).is_err());
        let meta =
            json!(json!({"batch_id": BatchId::new().to_string(), "tasks_started": 3}).to_string());
        assert_eq!(previous_progress(Some(&meta)).unwrap().1, 3);
    }
}
