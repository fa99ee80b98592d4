//! # `tag` — set or delete tags on the task
//!
//! Sets the given tags on the task that runs the step, as µTask's `tag` plugin does. The engine
//! merges them into the task's tags when the step ends: a key with an empty value (`""`) or
//! `null` deletes that tag, other keys are set or replaced, tags not named are kept.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `tags` | map of strings | tags to set; `""` deletes a tag |
//!
//! Numbers and booleans are stored as strings. Keys must be 1 to 256 characters and values at
//! most 4096. The reserved `_utask_parent_task_id` (set by mutask on subtasks) cannot be
//! changed. A missing `tags` map, a key or value breaking these rules, or a value that is a
//! list or a map is a CLIENT_ERROR naming the key; no tag is changed then. The step has no
//! output.
//!
//! ```yaml
//! action:
//!   type: tag
//!   configuration:
//!     tags:
//!       customer: "{{ input.customer_id }}"
//!       stage: deployed
//!       pending_review: ""
//! ```

use serde_json::{Map, Value};

use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture};

/// Longest tag key.
pub const MAX_KEY_CHARS: usize = 256;
/// Longest tag value.
pub const MAX_VALUE_CHARS: usize = 4096;

/// The tag action.
pub struct Tag;

fn tags(config: &Value) -> Result<Map<String, Value>, String> {
    let given = match config.get("tags") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => return Err("tag: `tags` (a map) is required".into()),
        Some(_) => return Err("tag: `tags` must be a map of strings".into()),
    };
    let mut out = Map::new();
    for (key, value) in given {
        if key.trim().is_empty() || key.chars().count() > MAX_KEY_CHARS {
            return Err(format!(
                "tag: key {key:?} must be 1 to {MAX_KEY_CHARS} characters"
            ));
        }
        if key == crate::tasks::PARENT_TAG {
            return Err(format!(
                "tag: `{key}` is reserved and set by mutask; it cannot be changed"
            ));
        }
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(format!(
                    "tag: `tags.{key}` must be a string, not a list or a map"
                ));
            }
        };
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(format!(
                "tag: `tags.{key}` is longer than {MAX_VALUE_CHARS} characters"
            ));
        }
        out.insert(key.clone(), Value::String(value));
    }
    Ok(out)
}

fn run(config: &Value) -> ActionResult {
    match tags(config) {
        Ok(t) => ActionResult {
            tags: Some(t),
            ..ActionResult::default()
        },
        Err(m) => ActionResult::err(ActionError::Client(m)),
    }
}

impl Action for Tag {
    fn name(&self) -> &'static str {
        "tag"
    }

    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(async move { run(&req.config) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn returns_tags_and_refuses_bad_ones() {
        let r = run(&json!({"tags": {"a": "x", "n": 3, "b": true, "gone": "", "nil": null}}));
        assert_eq!(r.error, None);
        assert_eq!(r.output, None);
        assert_eq!(
            Value::Object(r.tags.unwrap()),
            json!({"a": "x", "n": "3", "b": "true", "gone": "", "nil": ""})
        );
        let client = |v: Value| match run(&v).error {
            Some(ActionError::Client(m)) => m,
            other => panic!("{v}: {other:?}"),
        };
        assert!(client(json!({})).contains("`tags`"));
        assert!(client(json!({"tags": "a=b"})).contains("`tags`"));
        assert!(client(json!({"tags": {"": "x"}})).contains("1 to 256"));
        assert!(client(json!({"tags": {"k".repeat(257): "x"}})).contains("1 to 256"));
        assert!(client(json!({"tags": {"_utask_parent_task_id": "x"}})).contains("reserved"));
        assert!(client(json!({"tags": {"k": [1]}})).contains("`tags.k`"));
        assert!(client(json!({"tags": {"k": "v".repeat(4097)}})).contains("`tags.k`"));
        // nothing is set when one key is bad
        assert_eq!(run(&json!({"tags": {"ok": "1", "bad": {}}})).tags, None);
        assert!(run(&json!({"tags": {}})).tags.unwrap().is_empty());
    }
}
