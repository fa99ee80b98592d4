//! # `echo` — return a value, or fail on purpose
//!
//! Returns its `output` and `metadata` as they are (after templating). Useful to build values,
//! to test templates, and to force an error path.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `output` | any | the step output |
//! | `metadata` | map | the step metadata |
//! | `unmarshal` | bool | parse a string `output` as JSON (or YAML) |
//! | `error_message` | string | when set, the step fails with this message |
//! | `error_type` | `client` \| `server` (default) | CLIENT_ERROR or SERVER_ERROR |
//!
//! The output and metadata are returned even when `error_message` makes the step fail.
//!
//! ```yaml
//! action:
//!   type: echo
//!   configuration:
//!     output: {message: "Hello {{ input.name }}"}
//! ```

use serde_json::Value;

use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture, config_bool, config_str};

/// The echo action.
pub struct Echo;

fn run(config: &Value) -> ActionResult {
    let mut output = config.get("output").cloned().filter(|v| !v.is_null());
    if config_bool(config.get("unmarshal"))
        && let Some(Value::String(s)) = &output
    {
        match serde_json::from_str::<Value>(s).or_else(|_| crate::yaml::from_str::<Value>(s)) {
            Ok(v) => output = Some(v),
            Err(e) => {
                return ActionResult::err(ActionError::Client(format!(
                    "echo: `output` is not valid JSON or YAML: {e}"
                )));
            }
        }
    }
    let metadata = config.get("metadata").cloned().filter(|v| !v.is_null());
    let mut result = ActionResult::ok(output, metadata);
    if let Some(msg) = config_str(config, "error_message").filter(|m| !m.is_empty()) {
        let kind = config_str(config, "error_type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        result.error = Some(match kind.as_str() {
            "client" => ActionError::Client(msg.into_owned()),
            _ => ActionError::Server(msg.into_owned()),
        });
    }
    result
}

impl Action for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn has_side_effects(&self) -> bool {
        false // it only returns its configuration
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
    fn echoes_and_fails_on_purpose() {
        let r = run(&json!({"output": {"a": 1}, "metadata": {"m": true}}));
        assert_eq!(
            r,
            ActionResult::ok(Some(json!({"a": 1})), Some(json!({"m": true})))
        );
        let r = run(&json!({"output": "x", "error_message": "FAIL!"}));
        assert_eq!(r.error, Some(ActionError::Server("FAIL!".into())));
        assert_eq!(r.output, Some(json!("x")));
        let r = run(&json!({"error_message": "bad", "error_type": "client"}));
        assert_eq!(r.error, Some(ActionError::Client("bad".into())));
        let r = run(&json!({"output": "{\"k\": [1]}", "unmarshal": "true"}));
        assert_eq!(r.output, Some(json!({"k": [1]})));
        let r = run(&json!({"output": "k: v", "unmarshal": true}));
        assert_eq!(r.output, Some(json!({"k": "v"})));
        let r = run(&json!({"output": "[unclosed", "unmarshal": true}));
        assert!(matches!(r.error, Some(ActionError::Client(_))));
    }
}
