//! JSON schemas of the builtin actions' configurations: served by `GET /action` (the editor
//! completes fields and shows their descriptions from them) and used at template load to report
//! missing required fields, unknown fields and literal values of the wrong type — at any depth
//! (`auth.basic.user`, `hops[0]`) — with their line and column. Any value may also be a template
//! string, so a string is accepted wherever a number, a boolean, a list or a map is expected (it
//! is checked when the step runs). Plugins publish their own `config_schema` (manifest.yaml),
//! checked the same way: a value holding a template expression (`{{ }}`, `{% %}`) is never
//! type-checked, since only its rendering tells its type.

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

/// A nested map with known fields (or a template string).
fn object(description: &str, props: &[(&str, Value)]) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert((*k).to_string(), v.clone());
    }
    json!({
        "type": ["object", "string"],
        "description": description,
        "properties": p,
        "additionalProperties": false,
    })
}

/// A list whose items follow `item` (or a template string).
fn list_of(item: Value, description: &str) -> Value {
    json!({"type": ["array", "string"], "description": description, "items": item})
}

/// `schema` needing at least one of `names` (a field and its alias).
fn with_any_required(mut schema: Value, names: &[&str]) -> Value {
    schema["anyOf"] = Value::Array(names.iter().map(|n| json!({"required": [n]})).collect());
    schema
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
        "script" => with_any_required(
            schema(
                "Runs an executable of MUTASK_SCRIPTS_DIR.",
                &[],
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
                        s("`manual-lastline` (default), `manual-delimiters`, `disabled`"),
                    ),
                    (
                        "output_manual_delimiters",
                        l("two regexes around the JSON output"),
                    ),
                    (
                        "exit_codes_unrecoverable",
                        l("exit codes (or ranges) meaning CLIENT_ERROR"),
                    ),
                ],
            ),
            &["file_path", "file"],
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
                    prop(&["array", "object"], "query: [{name, value}] or a map"),
                ),
                ("timeout", s("Go duration, default 30s")),
                (
                    "auth",
                    object(
                        "{basic: {user, password}}, {bearer: token} or {mutual_tls: {client_cert, client_key}}",
                        &[
                            (
                                "basic",
                                object(
                                    "user and password",
                                    &[("user", s("user name")), ("password", s("password"))],
                                ),
                            ),
                            ("bearer", s("bearer token")),
                            (
                                "mutual_tls",
                                object(
                                    "client certificate (PEM strings)",
                                    &[
                                        ("client_cert", s("PEM certificate")),
                                        ("client_key", s("PEM private key")),
                                    ],
                                ),
                            ),
                        ],
                    ),
                ),
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
                (
                    "hops",
                    list_of(s("a bastion, [user@]host[:port]"), "bastions, in order"),
                ),
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
                (
                    "resolver_usernames",
                    prop(
                        &["array", "string"],
                        "resolvers of each task (a list, or a JSON list)",
                    ),
                ),
                (
                    "resolver_groups",
                    prop(
                        &["array", "string"],
                        "resolver groups of each task (a list, or a JSON list)",
                    ),
                ),
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

/// Problems of a configuration against a schema: (field path, message) for missing required
/// fields, unknown fields and literal values of a type the field does not take, at any depth
/// (`auth.basic.user`, `hops[0]`). Values holding a template expression always pass.
pub fn check(schema: &Value, config: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    check_value(schema, config, "", 0, &mut out);
    out
}

/// Deepest nesting followed (schemas are small; this bounds hostile ones).
const MAX_DEPTH: usize = 32;

fn templated(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.contains("{{") || s.contains("{%"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn check_value(
    schema: &Value,
    value: &Value,
    path: &str,
    depth: usize,
    out: &mut Vec<(String, String)>,
) {
    if depth > MAX_DEPTH || templated(value) || !schema.is_object() {
        return;
    }
    if !value.is_null()
        && let Some(types) = schema.get("type")
    {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let t = json_type(value);
        let integer = value.as_f64().is_some_and(|f| f.fract() == 0.0);
        let ok = allowed.is_empty()
            || allowed.contains(&t)
            || (t == "number" && integer && allowed.contains(&"integer"));
        if !ok {
            let name = if path.is_empty() {
                "the configuration"
            } else {
                path
            };
            out.push((
                path.to_string(),
                format!("`{name}` takes {}, not {t}", allowed.join(" or ")),
            ));
            return;
        }
    }
    match value {
        Value::Object(map) => check_object(schema, map, path, depth, out),
        Value::Array(items) => {
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                for (i, v) in items.iter().enumerate() {
                    check_value(item, v, &format!("{path}[{i}]"), depth + 1, out);
                }
            }
        }
        _ => {}
    }
}

fn present(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_some_and(|v| !v.is_null())
}

fn check_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    depth: usize,
    out: &mut Vec<(String, String)>,
) {
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !present(map, r) {
            out.push((join(path, r), format!("missing required field `{r}`")));
        }
    }
    // `anyOf: [{required: [a]}, {required: [b]}]`: a field and its alias
    if let Some(alternatives) = schema.get("anyOf").and_then(Value::as_array) {
        let names: Vec<Vec<&str>> = alternatives
            .iter()
            .filter_map(|a| a.get("required").and_then(Value::as_array))
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .collect();
        if !names.is_empty()
            && names.len() == alternatives.len()
            && !names.iter().any(|r| r.iter().all(|k| present(map, k)))
        {
            let first = names[0].first().copied().unwrap_or_default();
            let all: Vec<String> = names
                .iter()
                .map(|r| format!("`{}`", r.join("`+`")))
                .collect();
            out.push((
                join(path, first),
                format!("missing required field: one of {}", all.join(", ")),
            ));
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    let extra = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, v) in map {
        let field = join(path, k);
        match props.and_then(|p| p.get(k)) {
            Some(p) => check_value(p, v, &field, depth + 1, out),
            None if closed => {
                let mut known: Vec<&str> = props
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                known.sort_unstable();
                out.push((
                    field,
                    format!("unknown field `{k}` (known: {})", known.join(", ")),
                ));
            }
            None => {
                if let Some(a) = extra {
                    check_value(a, v, &field, depth + 1, out);
                }
            }
        }
    }
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
            &json!({"to": 42, "subjekt": "x", "smtp_port": "{{ .config.port }}", "html": true,
                    "smtp_hostname": "h", "from_address": "a@b", "subject": "s", "body": "b"}),
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

    #[test]
    fn required_fields_are_reported_and_aliases_count() {
        let email = builtin("email").unwrap();
        let p = check(
            &email,
            &json!({"smtp_hostname": "h", "from_address": "a@b", "to": ["c@d"], "body": "x"}),
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "subject");
        assert!(p[0].1.contains("missing required field `subject`"));
        // null is missing too
        let p = check(
            &email,
            &json!({"smtp_hostname": "h", "from_address": "a@b", "to": ["c@d"], "body": "x",
                    "subject": null}),
        );
        assert_eq!(p.len(), 1, "{p:?}");

        let script = builtin("script").unwrap();
        assert!(check(&script, &json!({"file_path": "a.sh"})).is_empty());
        assert!(check(&script, &json!({"file": "a.sh"})).is_empty());
        let p = check(&script, &json!({"argv": []}));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].1.contains("`file_path`") && p[0].1.contains("`file`"),
            "{p:?}"
        );
        let p = check(
            &script,
            &json!({"file_path": "a.sh", "output_mode": "auto-result"}),
        );
        assert!(
            p.is_empty(),
            "a string value is only checked when the step runs: {p:?}"
        );
    }

    #[test]
    fn nested_fields_are_checked() {
        let http = builtin("http").unwrap();
        let p = check(
            &http,
            &json!({"url": "http://x", "auth": {"basic": {"usr": "a", "password": ["p"]}}}),
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p.iter()
                .any(|(f, m)| f == "auth.basic.usr" && m.contains("unknown field `usr`")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|(f, m)| f == "auth.basic.password" && m.contains("not array")),
            "{p:?}"
        );
        let p = check(&http, &json!({"auth": {"digest": {"user": "a"}}}));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "auth.digest");
        // a templated map passes
        assert!(check(&http, &json!({"auth": "{{ .config.auth }}"})).is_empty());

        let ssh = builtin("ssh").unwrap();
        let p = check(
            &ssh,
            &json!({"target": "h", "ssh_key": "k", "script": "s", "hops": ["b1", {"host": "b2"}]}),
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "hops[1]");
        assert!(p[0].1.contains("not object"), "{p:?}");
    }

    #[test]
    fn plugin_schemas_are_strict_but_templates_pass() {
        let greet = json!({
            "type": "object", "required": ["name"], "additionalProperties": false,
            "properties": {"name": {"type": "string"}, "count": {"type": "integer"},
                           "opts": {"type": "object", "properties": {"loud": {"type": "boolean"}}}}
        });
        assert!(check(&greet, &json!({"name": "a", "count": 3})).is_empty());
        assert!(
            check(
                &greet,
                &json!({"name": "{{ .input.n }}", "count": "{{ .input.c }}"})
            )
            .is_empty()
        );
        let p = check(
            &greet,
            &json!({"count": "3", "opts": {"loud": "yes"}, "x": 1}),
        );
        let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["name", "count", "opts.loud", "x"], "{p:?}");
        assert!(p[1].1.contains("takes integer, not string"), "{p:?}");
        let p = check(&greet, &json!({"name": "a", "count": 1.5}));
        assert_eq!(p.len(), 1, "{p:?}");
    }
}
