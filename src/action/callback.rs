//! # `callback` — wait for an external system to call back
//!
//! `action: create` makes a one-time URL; `action: wait` keeps the step WAITING until that URL
//! receives a POST, then outputs the body. Typical use: hand the URL to a system that works
//! asynchronously (a CI job, a human form), and resume when it reports.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `action` | `create` \| `wait` | what to do |
//! | `schema` | JSON schema (map or JSON string) | `create`: the body the call must match |
//! | `id` | string | `wait`: the id output by `create` |
//!
//! Output of `create`: `{id, url, token, schema}` — `url` is
//! `<MUTASK_BASE_URL>/unsecured/callback/<id>?t=<token>`. Output of `wait` once called:
//! `{id, date, body}`. A call (`POST` with a JSON body) is accepted once; a wrong token answers
//! 401, a body that does not match the schema 422 with every violation, and nothing is recorded.
//! The call wakes the waiting resolution at once.
//!
//! ```yaml
//! steps:
//!   create:
//!     action: {type: callback, configuration: {action: create, schema: {type: object, required: [ok]}}}
//!   wait:
//!     dependencies: [create]
//!     action: {type: callback, configuration: {action: wait, id: "{{ step.create.output.id }}"}}
//! ```

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Action, ActionError, ActionRequest, ActionResult, BoxFuture, config_str};
use crate::store;

/// The callback action.
pub struct Callback;

fn parse_schema(v: Option<&Value>) -> Result<Option<Value>, String> {
    let schema = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|e| format!("`schema` is not valid JSON: {e}"))?,
        Some(other) => other.clone(),
    };
    jsonschema::validator_for(&schema)
        .map_err(|e| format!("`schema` is not a valid JSON schema: {e}"))?;
    Ok(Some(schema))
}

async fn run(req: ActionRequest) -> ActionResult {
    let client = |m: String| ActionResult::err(ActionError::Client(format!("callback: {m}")));
    let server = |m: String| ActionResult::err(ActionError::Server(format!("callback: {m}")));
    let Some(store) = req.env.store.clone() else {
        return ActionResult::err(ActionError::Fatal("callback: no store available".into()));
    };
    let c = &req.config;
    match config_str(c, "action").as_deref() {
        Some("create") => {
            let schema = match parse_schema(c.get("schema")) {
                Ok(s) => s,
                Err(e) => return client(e),
            };
            let mut secret = [0u8; 24];
            if let Err(e) = getrandom::fill(&mut secret) {
                return server(format!("random generator: {e}"));
            }
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
            let id = uuid::Uuid::now_v7();
            if let Err(e) = store::callback::create(
                &store,
                id,
                req.task_id,
                req.resolution_id,
                &req.step_name,
                &token,
                schema.as_ref(),
            )
            .await
            {
                return server(e.to_string());
            }
            let url = format!(
                "{}/unsecured/callback/{id}?t={token}",
                req.env.base_url.trim_end_matches('/')
            );
            ActionResult::ok(
                Some(json!({"id": id.to_string(), "url": url, "token": token, "schema": schema})),
                None,
            )
        }
        Some("wait") => {
            let Some(id) = config_str(c, "id").and_then(|i| i.trim().parse::<uuid::Uuid>().ok())
            else {
                return client("`id` must be the id output by a `create` callback step".into());
            };
            match store::callback::get(&store, id).await {
                Ok(Some(cb)) if cb.task_id != req.task_id => {
                    client(format!("callback {id} belongs to another task"))
                }
                Ok(Some(cb)) => match (cb.called, cb.body) {
                    (Some(date), body) => ActionResult::ok(
                        Some(
                            json!({"id": id.to_string(), "date": date.to_rfc3339(), "body": body}),
                        ),
                        None,
                    ),
                    (None, _) => ActionResult::err(ActionError::Waiting(format!(
                        "callback {id} not called yet"
                    ))),
                },
                Ok(None) => client(format!("callback {id} not found")),
                Err(e) => server(e.to_string()),
            }
        }
        Some(other) => client(format!(
            "`action` must be `create` or `wait`, got `{other}`"
        )),
        None => client("`action` is required (`create` or `wait`)".into()),
    }
}

impl Action for Callback {
    fn name(&self) -> &'static str {
        "callback"
    }

    fn run(&self, req: ActionRequest) -> BoxFuture<'_, ActionResult> {
        Box::pin(run(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_checked() {
        assert_eq!(parse_schema(None).unwrap(), None);
        assert!(
            parse_schema(Some(&json!("{\"type\": \"object\"}")))
                .unwrap()
                .is_some()
        );
        assert!(
            parse_schema(Some(&json!("{nope")))
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            parse_schema(Some(&json!({"type": 5})))
                .unwrap_err()
                .contains("not a valid JSON schema")
        );
    }
}
