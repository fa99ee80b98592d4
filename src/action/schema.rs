//! JSON schemas of the builtin actions' configurations: served by `GET /action` (the editor
//! completes fields and shows their descriptions from them) and used at template load to report
//! unknown fields and literal values of the wrong type, with their line and column. Any value may
//! also be a template string, so a string is accepted wherever a number, a boolean, a list or a
//! map is expected (it is checked when the step runs). Plugins publish their own
//! `config_schema` (manifest.yaml).

use serde_json::{Map, Value, json};

fn prop(types: &[&str], description: &str) -> Value {
    let mut t: Vec<&str> = types.to_vec();
    if !t.contains(&"string") {
        t.push("string"); // a template string that renders to it
    }
    json!({"type": t, "description": description})
}

fn schema(description: &str, required: &[&str], props: &[(&str, Value)]) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert((*k).to_string(), v.clone());
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "description": description,
        "required": required,
        "properties": p,
        "additionalProperties": false,
    })
}

/// The configuration schema of a builtin action type.
pub fn builtin(action_type: &str) -> Option<Value> {
    let s = |t: &str| prop(&[], t);
    let n = |t: &str| prop(&["number"], t);
    let b = |t: &str| prop(&["boolean"], t);
    let l = |t: &str| prop(&["array"], t);
    let m = |t: &str| prop(&["object"], t);
    let any = |t: &str| json!({"description": t});
    Some(match action_type {
        "echo" => schema(
            "Returns its configuration as output (or fails on purpose).",
            &[],
            &[
                ("output", any("the output")),
                ("metadata", any("the metadata")),
                ("unmarshal", b("parse a JSON string output")),
                ("error_message", s("fail with this message")),
                ("error_type", s("`client` or `server` (default)")),
            ],
        ),
        "script" => schema(
            "Runs an executable of MUTASK_SCRIPTS_DIR.",
            &["file_path"],
            &[
                (
                    "file_path",
                    s("the script, relative to the scripts directory"),
                ),
                ("file", s("µTask's older name of file_path")),
                ("argv", l("arguments, each passed as one argument")),
                ("environment", m("environment variables")),
                ("stdin", s("sent on standard input")),
                ("timeout", s("Go duration, default 2m")),
                (
                    "output_mode",
                    s("`auto-result`, `manual-lastline`, `manual-delimiters`, `disabled`"),
                ),
                (
                    "output_manual_delimiters",
                    l("two delimiters around the JSON output"),
                ),
                (
                    "exit_codes_unrecoverable",
                    l("exit codes (or ranges) meaning CLIENT_ERROR"),
                ),
            ],
        ),
        "http" => schema(
            "Sends an HTTP request.",
            &[],
            &[
                ("url", s("the URL (or host + path)")),
                ("host", s("scheme://host[:port]")),
                ("path", s("path appended to host")),
                (
                    "method",
                    s("GET (default), POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
                ),
                ("body", any("request body (a string, or JSON)")),
                (
                    "headers",
                    prop(&["array", "object"], "headers: [{name, value}] or a map"),
                ),
                (
                    "query_parameters",
                    prop(&["array", "object"], "query: [{key, value}] or a map"),
                ),
                ("timeout", s("Go duration, default 30s")),
                ("auth", m("{basic: {user, password}} or {bearer: token}")),
                ("follow_redirect", b("follow 3xx answers")),
                ("insecure_skip_verify", b("accept any TLS certificate")),
                ("root_ca", s("a PEM CA to trust")),
                (
                    "trim_prefix",
                    s("prefix removed from the body before decoding"),
                ),
            ],
        ),
        "ssh" => schema(
            "Runs a script on a remote host over SSH.",
            &["target", "ssh_key", "script"],
            &[
                ("target", s("host, host:port or user@host:port")),
                ("user", s("remote user")),
                ("hops", l("bastions, [user@]host[:port]")),
                ("ssh_key", s("private key text")),
                ("ssh_key_passphrase", s("its passphrase")),
                ("script", s("shell script")),
                (
                    "environment",
                    m("variables exported before the script, quoted"),
                ),
                (
                    "output_mode",
                    s("`auto-result`, `manual-lastline`, `manual-delimiters`, `disabled`"),
                ),
                ("result", m("output key → shell expression")),
                (
                    "output_manual_delimiters",
                    l("two delimiters around the JSON output"),
                ),
                (
                    "exit_codes_unrecoverable",
                    l("exit codes (or ranges) meaning CLIENT_ERROR"),
                ),
                ("timeout", s("Go duration, default 5m")),
                ("known_hosts", s("known_hosts lines")),
                ("skip_host_key_check", b("accept any host key")),
            ],
        ),
        "email" => schema(
            "Sends an email over SMTP.",
            &["smtp_hostname", "from_address", "to", "subject", "body"],
            &[
                ("smtp_hostname", s("SMTP server")),
                ("smtp_port", n("port")),
                ("smtp_username", s("user")),
                ("smtp_password", s("password")),
                ("smtp_tls", s("`auto`, `starttls`, `tls`, `none`")),
                ("smtp_skip_tls_verify", b("accept any certificate")),
                ("smtp_root_ca", s("a PEM CA to trust")),
                ("from_address", s("sender")),
                ("from_name", s("sender's name")),
                ("to", l("recipients")),
                ("cc", l("copies")),
                ("bcc", l("blind copies")),
                ("reply_to", s("Reply-To address")),
                ("subject", s("one line")),
                ("body", s("text (or HTML)")),
                ("html", b("the body is HTML")),
                ("timeout", s("Go duration, default 30s")),
            ],
        ),
        "notify" => schema(
            "Sends a message through the notification backends.",
            &["message"],
            &[
                ("message", s("the text")),
                ("fields", m("extra key/values")),
                ("backends", l("webhook, slack, email; all when empty")),
                ("level", s("`info`, `warning`, `error`")),
            ],
        ),
        "subtask" => schema(
            "Creates a task from another template and waits for it.",
            &["template"],
            &[
                ("template", s("template name")),
                ("input", m("its inputs")),
                ("json_input", s("its inputs as a JSON string")),
                (
                    "resolver_usernames",
                    prop(&["array"], "resolvers of the subtask"),
                ),
                ("resolver_groups", l("resolver groups")),
                ("watcher_usernames", l("watchers")),
                ("watcher_groups", l("watcher groups")),
                ("delay", s("Go duration before it runs")),
                ("tags", m("tags of the subtask")),
                ("id", s("an existing subtask to wait for")),
            ],
        ),
        "batch" => schema(
            "Creates many tasks from one template and waits for them.",
            &["template_name"],
            &[
                ("template_name", s("template name")),
                ("inputs", l("one input map per task")),
                ("json_inputs", s("inputs as a JSON string")),
                ("common_inputs", m("inputs given to every task")),
                ("common_json_inputs", s("common inputs as a JSON string")),
                ("sub_batch_size", n("tasks running at once (0: all)")),
                ("tags", m("tags of the tasks")),
                ("comment", s("a first comment on each task")),
                ("watcher_usernames", l("watchers")),
                ("watcher_groups", l("watcher groups")),
            ],
        ),
        "callback" => schema(
            "Creates a one-time callback URL, or waits for its call.",
            &["action"],
            &[
                ("action", s("`create` or `wait`")),
                ("schema", m("JSON schema the call's body must match")),
                ("id", s("the callback to wait for")),
            ],
        ),
        "ping" => schema(
            "Checks that a host answers TCP connections.",
            &["hostname"],
            &[
                ("hostname", s("host name or address")),
                ("port", n("TCP port, default 80")),
                ("count", n("probes, default 1")),
                ("interval_second", n("seconds between probes")),
                ("timeout", s("Go duration per probe, default 5s")),
            ],
        ),
        "tag" => schema(
            "Sets or deletes tags on the task.",
            &["tags"],
            &[("tags", m("key → value; \"\" deletes"))],
        ),
        _ => return None,
    })
}

/// Every builtin action type that has a schema.
pub const BUILTINS: &[&str] = &[
    "echo", "script", "http", "ssh", "email", "notify", "subtask", "batch", "callback", "ping",
    "tag",
];

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Problems of a configuration against a schema: (field, message) for unknown fields and
/// literal values of a type the field does not take. Templated values (strings) always pass.
pub fn check(schema: &Value, config: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Value::Object(cfg) = config else {
        return out;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    for (k, v) in cfg {
        match props.and_then(|p| p.get(k)) {
            None if closed => {
                let mut known: Vec<&str> = props
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                known.sort_unstable();
                out.push((
                    k.clone(),
                    format!("unknown field `{k}` (known: {})", known.join(", ")),
                ));
            }
            None => {}
            Some(p) => {
                let Some(types) = p.get("type") else { continue };
                let allowed: Vec<&str> = match types {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => continue,
                };
                let t = json_type(v);
                let ok = v.is_null()
                    || allowed.contains(&t)
                    || (t == "number" && allowed.contains(&"integer"));
                if !ok {
                    out.push((
                        k.clone(),
                        format!("`{k}` takes {}, not {t}", allowed.join(" or ")),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_a_schema_and_checks_fields() {
        for a in BUILTINS {
            let s = builtin(a).unwrap_or_else(|| panic!("{a}"));
            assert_eq!(s["type"], "object");
        }
        let s = builtin("email").unwrap();
        let p = check(
            &s,
            &json!({"to": 42, "subjekt": "x", "smtp_port": "{{ .config.port }}", "html": true}),
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|(f, m)| f == "to" && m.contains("array")));
        assert!(
            p.iter().any(|(f, m)| f == "subjekt"
                && m.contains("unknown field")
                && m.contains("subject"))
        );
        assert!(check(&builtin("echo").unwrap(), &json!({"output": [1, {"a": 2}]})).is_empty());
    }
}
