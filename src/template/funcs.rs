//! The template function library, with the semantics of Go `text/template` + sprig + µTask.
//!
//! Role: every function a µTask template can call (`{{ add 1 .x }}`, `{{ .x | toJson }}`) is
//! registered in the minijinja environment as `go_<name>` (for example `go_add`, `go_toJson`,
//! `go_b64RawEnc`); the dialect translator ([`super::dialect`]) rewrites Go calls to those names.
//! A few internal helpers used by the translated code carry a `__` prefix: `__get` (Go field
//! chain `.a.b`), `__print` (Go's printing of an action's value), `__truth` (Go's truth for
//! `if`/`with`) and `__range` (Go's `range` iteration). Native Jinja templates get natural names
//! for the µTask-specific helpers (see [`register`] for the list) and may call any `go_<name>`.
//!
//! Value model (how Go values live in minijinja [`Value`]s):
//! - a missing map key (Go's invalid `reflect.Value`) is `Undefined`; a JSON `null` is `None`.
//!   Both print `<no value>` at the top of an action (Go digs the `nil` out of the interface)
//!   and `<nil>` inside a collection or through `print`/`printf`;
//! - integers are Go ints (JSON integers stay exact, `1619464078`); floats are Go `float64`
//!   printed like `fmt`'s `%v` (`666`, `-2.3`, `1e+06`, `1e+21`); `fromJson` yields `float64`
//!   numbers like Go's `json.Unmarshal`;
//! - maps print as `map[k:v]` with sorted keys, lists as `[1 2 3]`, `toJson` is Go's
//!   `json.Marshal` (sorted keys, `<`,`>`,`&` escaped as `\u003c`…);
//! - times (`now`, `toDate`) are a [`GoTime`] object printed like Go's `time.Time`.
//!
//! Invariants: every function is total — a wrong argument count or type is a minijinja error
//! with a clear message (`error calling <name>: …`), never a panic; every function that can
//! grow data (`repeat`, `concat`, `indent`, `join`, printing, JSON encoding, …) checks the size
//! of what it builds against the render's byte cap before and while building it; nothing here
//! reads the environment, the network or the filesystem (sprig's `env`/`expandenv` are not
//! provided). Functions never keep state between calls; per-render state (the root, the
//! variable evaluator results, the byte cap) lives in a per-render `RenderCtx` object,
//! reached through the render's context.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, Value};

#[path = "funcs_fmt.rs"]
pub(crate) mod fmt;
#[path = "funcs_sprig.rs"]
mod sprig;
#[path = "funcs_time.rs"]
pub(crate) mod time;

pub use time::GoTime;

/// Byte cap used when a function runs outside a [`super::render::Renderer`] render.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 8 << 20;

/// Text contained in every error raised because a value outgrew the render's byte cap.
pub(crate) const SIZE_LIMIT_MARK: &str = "exceeds the size limit of";

/// Text of the error used to suspend a render until a variable is evaluated (see [`RenderCtx`]).
pub(crate) const EVAL_PENDING_MARK: &str = "mutask: variable evaluation pending";

/// Name of the context key holding the template's root data (Go's `.` at top level and `$`).
pub const ROOT_KEY: &str = "__root";
/// Name of the context key holding the per-render [`RenderCtx`].
pub(crate) const CTX_KEY: &str = "__mutask";

// ------------------------------------------------------------------------------------------
// Per-render state
// ------------------------------------------------------------------------------------------

/// Per-render state shared by the functions of one render.
///
/// `eval`/`evalCache` cannot call the caller's borrowed evaluator from inside minijinja (its
/// objects must be `'static`), so the renderer runs the template, and when a function needs a
/// variable that was not evaluated yet, it records the request in `pending` and fails; the
/// renderer evaluates the variable with the caller's hook, stores the result in `evals` and
/// renders again. Each variable is evaluated at most once per render.
#[derive(Debug)]
pub(crate) struct RenderCtx {
    pub(crate) max_bytes: usize,
    pub(crate) has_eval: bool,
    pub(crate) evals: Mutex<HashMap<(String, bool), Result<Value, String>>>,
    pub(crate) pending: Mutex<Option<(String, bool)>>,
}

impl Object for RenderCtx {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
}

/// The context object of a render: `__root`, `__mutask`, and the root's own keys (so that
/// native templates can write `{{ input.name }}`).
#[derive(Debug)]
pub(crate) struct CtxRoot {
    pub(crate) root: Value,
    pub(crate) ctx: Value,
}

impl Object for CtxRoot {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            ROOT_KEY => Some(self.root.clone()),
            CTX_KEY => Some(self.ctx.clone()),
            k => match self.root.get_attr(k) {
                Ok(v) if !v.is_undefined() => Some(v),
                _ => None,
            },
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }
}

fn with_ctx<R>(state: &State, f: impl FnOnce(Option<&RenderCtx>) -> R) -> R {
    let v = state.lookup(CTX_KEY);
    let ctx = v
        .as_ref()
        .and_then(|v| v.downcast_object_ref::<RenderCtx>());
    f(ctx)
}

/// The byte cap of the current render.
pub(crate) fn max_bytes(state: &State) -> usize {
    with_ctx(state, |c| {
        c.map_or(DEFAULT_MAX_VALUE_BYTES, |c| c.max_bytes)
    })
}

/// Fails when `n` bytes (or slots) would exceed the render's byte cap.
pub(crate) fn check_size(state: &State, n: usize) -> Result<(), Error> {
    let cap = max_bytes(state);
    if n > cap {
        Err(size_error(cap))
    } else {
        Ok(())
    }
}

pub(crate) fn size_error(cap: usize) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("result {SIZE_LIMIT_MARK} {cap} bytes"),
    )
}

// ------------------------------------------------------------------------------------------
// Value classification and helpers
// ------------------------------------------------------------------------------------------

/// A Go-eyed view of a minijinja value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GV<'a> {
    /// Go's invalid value (missing map key).
    Missing,
    /// `nil`.
    Nil,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    List,
    Map,
    Time(&'a GoTime),
    Other,
}

pub(crate) fn gv(v: &Value) -> GV<'_> {
    match v.kind() {
        ValueKind::Undefined => GV::Missing,
        ValueKind::None => GV::Nil,
        ValueKind::Bool => GV::Bool(v.is_true()),
        ValueKind::Number => {
            if v.is_integer() {
                match i128::try_from(v.clone()) {
                    Ok(i) => GV::Int(i),
                    Err(_) => GV::Float(f64::try_from(v.clone()).unwrap_or(f64::NAN)),
                }
            } else {
                GV::Float(f64::try_from(v.clone()).unwrap_or(f64::NAN))
            }
        }
        ValueKind::String => GV::Str(v.as_str().unwrap_or("")),
        ValueKind::Bytes => GV::Bytes(v.as_bytes().unwrap_or(&[])),
        ValueKind::Seq | ValueKind::Iterable => GV::List,
        ValueKind::Map => GV::Map,
        ValueKind::Plain => match v.downcast_object_ref::<GoTime>() {
            Some(t) => GV::Time(t),
            None => GV::Other,
        },
        _ => GV::Other,
    }
}

/// Go's `%T`-like type name, used in error messages.
pub(crate) fn go_type_name(v: &Value) -> &'static str {
    match gv(v) {
        GV::Missing | GV::Nil => "<nil>",
        GV::Bool(_) => "bool",
        GV::Int(_) => "int",
        GV::Float(_) => "float64",
        GV::Str(_) => "string",
        GV::Bytes(_) => "[]uint8",
        GV::List => "[]interface {}",
        GV::Map => "map[string]interface {}",
        GV::Time(_) => "time.Time",
        GV::Other => "object",
    }
}

/// Go's truth (`if`, `with`, `and`, `or`, `not`): false for missing, nil, false, 0, and empty
/// strings, lists and maps.
pub(crate) fn truth(v: &Value) -> bool {
    match gv(v) {
        GV::Missing | GV::Nil => false,
        GV::Bool(b) => b,
        GV::Int(i) => i != 0,
        GV::Float(f) => f != 0.0,
        GV::Str(s) => !s.is_empty(),
        GV::Bytes(b) => !b.is_empty(),
        GV::List | GV::Map => v.len().unwrap_or(0) > 0,
        GV::Time(_) | GV::Other => true,
    }
}

/// The items of a list (or any iterable); `None` for other values.
pub(crate) fn list_items(v: &Value) -> Option<Vec<Value>> {
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => v.try_iter().ok().map(|it| it.collect()),
        _ => None,
    }
}

/// The key of a map entry as a Go string.
pub(crate) fn key_string(k: &Value) -> String {
    match k.as_str() {
        Some(s) => s.to_string(),
        None => fmt::sprint_plain(k),
    }
}

/// The entries of a map in the map's own order; `None` for other values.
pub(crate) fn map_entries(v: &Value) -> Option<Vec<(String, Value)>> {
    if v.kind() != ValueKind::Map {
        return None;
    }
    let keys = v.try_iter().ok()?;
    Some(
        keys.map(|k| {
            let val = v.get_item(&k).unwrap_or(Value::UNDEFINED);
            (key_string(&k), val)
        })
        .collect(),
    )
}

/// The entries of a map sorted by key (Go's printing and JSON order).
pub(crate) fn map_entries_sorted(v: &Value) -> Option<Vec<(String, Value)>> {
    let mut e = map_entries(v)?;
    e.sort_by(|a, b| a.0.cmp(&b.0));
    Some(e)
}

/// Looks a key up in a map value: `None` when `v` is not a map, `Some(Undefined)` when the
/// key is missing.
pub(crate) fn map_get(v: &Value, key: &str) -> Option<Value> {
    if v.kind() != ValueKind::Map {
        return None;
    }
    Some(v.get_item(&Value::from(key)).unwrap_or(Value::UNDEFINED))
}

pub(crate) fn mk_map(entries: Vec<(String, Value)>) -> Value {
    Value::from_pairs(entries)
}

pub(crate) fn mk_list(items: Vec<Value>) -> Value {
    Value::from(items)
}

/// Converts an integer result to a value (i64 when it fits).
pub(crate) fn int_value(i: i128) -> Value {
    match i64::try_from(i) {
        Ok(i) => Value::from(i),
        Err(_) => Value::from(i),
    }
}

/// Go converts a missing value to `nil` when it is passed to an `interface{}` parameter.
pub(crate) fn nil_if_missing(v: &Value) -> Value {
    if v.is_undefined() {
        Value::from(())
    } else {
        v.clone()
    }
}

pub(crate) fn err(msg: impl Into<Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// Checks the number of arguments.
pub(crate) fn want(args: &[Value], n: usize) -> Result<(), Error> {
    if args.len() != n {
        return Err(err(format!(
            "wrong number of args: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

pub(crate) fn want_min(args: &[Value], n: usize) -> Result<(), Error> {
    if args.len() < n {
        return Err(err(format!(
            "wrong number of args: want at least {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

pub(crate) fn want_range(args: &[Value], lo: usize, hi: usize) -> Result<(), Error> {
    if args.len() < lo || args.len() > hi {
        return Err(err(format!(
            "wrong number of args: want {lo} to {hi} got {}",
            args.len()
        )));
    }
    Ok(())
}

/// A Go `string` parameter. Numbers are accepted as their printed form (µTask's values hold
/// `json.Number`s, which are strings); missing values and other types are rejected like Go.
pub(crate) fn arg_str(v: &Value) -> Result<Cow<'_, str>, Error> {
    match gv(v) {
        GV::Str(s) => Ok(Cow::Borrowed(s)),
        GV::Int(_) | GV::Float(_) => Ok(Cow::Owned(fmt::sprint_plain(v))),
        GV::Missing | GV::Nil => Err(err("invalid value; expected string")),
        _ => Err(err(format!(
            "wrong type for value; expected string; got {}",
            go_type_name(v)
        ))),
    }
}

/// A Go `int` parameter (integral numbers only).
pub(crate) fn arg_int(v: &Value) -> Result<i64, Error> {
    match gv(v) {
        GV::Int(i) => i64::try_from(i).map_err(|_| err(format!("{i} overflows int"))),
        GV::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
        GV::Missing | GV::Nil => Err(err("invalid value; expected int")),
        _ => Err(err(format!(
            "wrong type for value; expected int; got {}",
            go_type_name(v)
        ))),
    }
}

/// A Go `bool` parameter.
pub(crate) fn arg_bool(v: &Value) -> Result<bool, Error> {
    match gv(v) {
        GV::Bool(b) => Ok(b),
        GV::Missing | GV::Nil => Err(err("invalid value; expected bool")),
        _ => Err(err(format!(
            "wrong type for value; expected bool; got {}",
            go_type_name(v)
        ))),
    }
}

/// A Go `map[string]interface{}` parameter: nil is an empty map.
pub(crate) fn arg_map(v: &Value) -> Result<Vec<(String, Value)>, Error> {
    match gv(v) {
        GV::Map => Ok(map_entries(v).unwrap_or_default()),
        GV::Missing | GV::Nil => Ok(Vec::new()),
        _ => Err(err(format!(
            "wrong type for value; expected map[string]interface {{}}; got {}",
            go_type_name(v)
        ))),
    }
}

/// Parses an integer the way Go's `strconv.ParseInt(s, 0, 64)` does (base prefixes, `_`).
pub(crate) fn parse_go_int(s: &str) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    if digits.contains('_') {
        // Underscores are only allowed between digits (and after a base prefix).
        let ok = digits
            .split('_')
            .enumerate()
            .all(|(i, part)| !part.is_empty() || (i == 0 && prefixed));
        if !ok {
            return None;
        }
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() {
        return None;
    }
    let n = i128::from_str_radix(&clean, radix).ok()?;
    let n = if neg { -n } else { n };
    if n > i64::MAX as i128 || n < i64::MIN as i128 {
        return None;
    }
    Some(n)
}

/// spf13/cast's `trimZeroDecimal`: `"12.00"` → `"12"`.
fn trim_zero_decimal(s: &str) -> &str {
    let b = s.as_bytes();
    let mut found_zero = false;
    let mut i = b.len();
    while i > 0 {
        match b[i - 1] {
            b'.' => {
                if found_zero {
                    return &s[..i - 1];
                }
            }
            b'0' => found_zero = true,
            _ => return s,
        }
        i -= 1;
    }
    s
}

/// spf13/cast `ToInt64` as used by sprig (errors give 0).
pub(crate) fn to_int64(v: &Value) -> i64 {
    match gv(v) {
        GV::Int(i) => i as i64,
        GV::Float(f) => {
            if f.is_nan() {
                0
            } else {
                f as i64
            }
        }
        GV::Bool(b) => b as i64,
        GV::Str(s) => parse_go_int(trim_zero_decimal(s)).map_or(0, |i| i as i64),
        _ => 0,
    }
}

/// spf13/cast `ToFloat64` as used by sprig (errors give 0).
pub(crate) fn to_float64(v: &Value) -> f64 {
    match gv(v) {
        GV::Int(i) => i as f64,
        GV::Float(f) => f,
        GV::Bool(b) => b as i64 as f64,
        GV::Str(s) => s.trim().parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// sprig's `strval`: strings as-is, everything else through `%v`.
pub(crate) fn strval(v: &Value) -> String {
    match gv(v) {
        GV::Str(s) => s.to_string(),
        GV::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => fmt::sprint_plain(v),
    }
}

/// sprig's `empty`.
pub(crate) fn is_empty(v: &Value) -> bool {
    !truth(v)
}

/// Converts a JSON value to a minijinja value; with `go_floats`, every number becomes a
/// `float64` like Go's `json.Unmarshal` into `interface{}`.
pub(crate) fn json_to_value(j: &serde_json::Value, go_floats: bool) -> Value {
    match j {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => {
            if go_floats {
                Value::from(n.as_f64().unwrap_or(0.0))
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => {
            mk_list(a.iter().map(|x| json_to_value(x, go_floats)).collect())
        }
        serde_json::Value::Object(o) => mk_map(
            o.iter()
                .map(|(k, x)| (k.clone(), json_to_value(x, go_floats)))
                .collect(),
        ),
    }
}

// ------------------------------------------------------------------------------------------
// Internal helpers used by translated templates
// ------------------------------------------------------------------------------------------

/// Go's field chain `.a.b` on `base`: missing stays missing, `nil` reads as missing, a map is
/// looked up, anything else is Go's "can't evaluate field" error.
pub(crate) fn field_chain(base: &Value, keys: &[Value]) -> Result<Value, Error> {
    let mut cur = base.clone();
    for k in keys {
        let name = k.as_str().unwrap_or("");
        cur = match gv(&cur) {
            GV::Missing | GV::Nil => return Ok(Value::UNDEFINED),
            GV::Map => map_get(&cur, name).unwrap_or(Value::UNDEFINED),
            GV::Other => match cur.get_attr(name) {
                Ok(v) => v,
                Err(_) => Value::UNDEFINED,
            },
            _ => {
                return Err(err(format!(
                    "can't evaluate field {name} in type {}",
                    go_type_name(&cur)
                )));
            }
        };
    }
    Ok(cur)
}

fn h_get(_state: &State, args: Rest<Value>) -> Result<Value, Error> {
    let Some((base, keys)) = args.split_first() else {
        return Err(err("__get: missing base"));
    };
    field_chain(base, keys)
}

fn h_print(state: &State, v: Value) -> Result<String, Error> {
    if v.is_undefined() || v.is_none() {
        return Ok("<no value>".to_string());
    }
    let mut out = fmt::Out::new(max_bytes(state));
    fmt::write_v(&v, &mut out, 0)?;
    Ok(out.into_string())
}

fn h_truth(v: Value) -> bool {
    truth(&v)
}

/// Go's `range` over a value, as `[key, element]` pairs: lists by index, maps by sorted key,
/// integers `0..n`; missing/nil iterate nothing.
fn h_range(state: &State, v: Value) -> Result<Value, Error> {
    let pairs: Vec<Value> = match gv(&v) {
        GV::Missing | GV::Nil => Vec::new(),
        GV::List => list_items(&v)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, e)| Value::from(vec![Value::from(i as i64), e]))
            .collect(),
        GV::Map => map_entries_sorted(&v)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, e)| Value::from(vec![Value::from(k), e]))
            .collect(),
        GV::Int(n) => {
            let n = n.max(0);
            check_size(state, (n as usize).saturating_mul(16))?;
            (0..n as i64)
                .map(|i| Value::from(vec![Value::from(i), Value::from(i)]))
                .collect()
        }
        _ => {
            return Err(err(format!(
                "range can't iterate over {}",
                fmt::sprint_plain(&v)
            )));
        }
    };
    Ok(Value::from(pairs))
}

// ------------------------------------------------------------------------------------------
// Registry
// ------------------------------------------------------------------------------------------

/// A Go-callable template function: receives the render state and the evaluated arguments.
pub(crate) type GoFn = fn(&State, &[Value]) -> Result<Value, Error>;

/// The Go names of every function a µTask template may call (for editors and docs);
/// `and`/`or` are lowered by the translator and listed too.
pub fn function_names() -> impl Iterator<Item = &'static str> {
    ["and", "or"]
        .into_iter()
        .chain(GO_FUNCS.iter().map(|(n, _)| *n))
}

/// Whether `name` is a function a µTask template may call.
pub fn is_go_function(name: &str) -> bool {
    name == "and" || name == "or" || GO_FUNCS.iter().any(|(n, _)| *n == name)
}

/// sprig functions deliberately not provided, with the reason (for the translator's error).
pub fn unsupported_reason(name: &str) -> Option<&'static str> {
    match name {
        "env" | "expandenv" => Some("reading the server's environment is not allowed"),
        "getHostByName" => Some("network lookups are not allowed"),
        "genPrivateKey"
        | "derivePassword"
        | "buildCustomCert"
        | "genCA"
        | "genCAWithKey"
        | "genSelfSignedCert"
        | "genSelfSignedCertWithKey"
        | "genSignedCert"
        | "genSignedCertWithKey"
        | "encryptAES"
        | "decryptAES"
        | "bcrypt"
        | "htpasswd"
        | "randBytes" => Some("cryptographic helpers are not provided"),
        "semver" | "semverCompare" | "urlParse" | "urlJoin" | "osBase" | "osDir" | "osClean"
        | "osExt" | "osIsAbs" | "ago" | "duration" | "durationRound" | "abbrevboth"
        | "wrapWith" | "wrap" | "snakecase" | "camelcase" | "kebabcase" | "shuffle" | "b32enc"
        | "b32dec" | "decimal" | "toDecimal" => {
            Some("this sprig function is not provided by mutask")
        }
        "define" | "template" | "block" => Some("nested template definitions are not supported"),
        _ => None,
    }
}

fn call_go(name: &str, f: GoFn, state: &State, args: &[Value]) -> Result<Value, Error> {
    f(state, args).map_err(|e| {
        if e.kind() == ErrorKind::InvalidOperation {
            let detail = e.detail().unwrap_or("failed");
            if detail.starts_with(EVAL_PENDING_MARK) {
                e
            } else {
                err(format!("error calling {name}: {detail}"))
            }
        } else {
            e
        }
    })
}

/// Registers the whole library in `env`.
///
/// - Go/sprig/µTask functions as `go_<name>` (used by translated µTask templates; native
///   templates may call them too, e.g. `{{ go_add(1, 2) }}`).
/// - internal helpers `__get`, `__print`, `__truth`, `__range`.
/// - natural names for native Jinja templates: functions `eval(name)`, `evalCache(name)`
///   (alias `eval_cache`), `field(k1, k2, …)`, `uuid()`, `now()`; filters `fromjson`,
///   `mustfromjson`, `gotojson` (Go's `json.Marshal`), `b64encode`, `b64decode`,
///   `b64rawencode`, `b64rawdecode`, `sha1sum`, `sha256sum`, `hmac_sha256(key)`,
///   `regex_match(re)`,
///   `regex_replace(re, repl)`, `regex_find(re)`, `regex_find_all(re)`, `regex_split(re)`,
///   `goprint` (Go's `%v`). minijinja's own builtins (`tojson`, `default`, `join`, `upper`, …)
///   stay available with their Jinja semantics.
pub fn register(env: &mut Environment<'static>) {
    for &(name, f) in GO_FUNCS {
        env.add_function(
            format!("go_{name}"),
            move |state: &State, args: Rest<Value>| call_go(name, f, state, &args),
        );
    }
    env.add_function("__get", h_get);
    env.add_function("__print", h_print);
    env.add_function("__truth", h_truth);
    env.add_function("__range", h_range);

    // Natural names for native templates.
    let natural_fns: &[(&str, &str)] = &[
        ("eval", "eval"),
        ("evalCache", "evalCache"),
        ("eval_cache", "evalCache"),
        ("field", "field"),
        ("uuid", "uuid"),
        ("now", "now"),
    ];
    for &(alias, go) in natural_fns {
        if let Some(&(name, f)) = GO_FUNCS.iter().find(|(n, _)| *n == go) {
            env.add_function(alias, move |state: &State, args: Rest<Value>| {
                call_go(name, f, state, &args)
            });
        }
    }
    // Filters: the piped value comes first (Jinja), Go passes it last.
    let natural_filters: &[(&str, &str)] = &[
        ("fromjson", "fromJson"),
        ("mustfromjson", "mustFromJson"),
        ("gotojson", "toJson"),
        ("b64encode", "b64enc"),
        ("b64decode", "b64dec"),
        ("b64rawencode", "b64RawEnc"),
        ("b64rawdecode", "b64RawDec"),
        ("sha1sum", "sha1sum"),
        ("sha256sum", "sha256sum"),
        ("hmac_sha256", "hmacSha256"),
        ("regex_match", "regexMatch"),
        ("regex_replace", "regexReplaceAll"),
        ("regex_find", "regexFind"),
        ("regex_find_all", "regexFindAll"),
        ("regex_split", "regexSplit"),
        ("goprint", "toString"),
    ];
    for &(alias, go) in natural_filters {
        if let Some(&(name, f)) = GO_FUNCS.iter().find(|(n, _)| *n == go) {
            env.add_filter(
                alias,
                move |state: &State, value: Value, args: Rest<Value>| {
                    let mut rest = args.0.into_iter();
                    let all: Vec<Value> = match name {
                        // sprig's regex functions take the regex first, the piped text next.
                        "regexMatch" | "regexFind" | "regexReplaceAll" => {
                            let re = rest.next().unwrap_or(Value::UNDEFINED);
                            let mut v = vec![re, value];
                            v.extend(rest);
                            v
                        }
                        "regexFindAll" | "regexSplit" => {
                            let re = rest.next().unwrap_or(Value::UNDEFINED);
                            let n = rest.next().unwrap_or(Value::from(-1));
                            let mut v = vec![re, value, n];
                            v.extend(rest);
                            v
                        }
                        _ => {
                            let mut v: Vec<Value> = rest.collect();
                            v.push(value);
                            v
                        }
                    };
                    call_go(name, f, state, &all)
                },
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// Go builtins and µTask functions
// ------------------------------------------------------------------------------------------

fn f_not(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(!truth(&a[0])))
}

fn f_len(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    match gv(&a[0]) {
        GV::Missing | GV::Nil => Err(err("len of nil pointer")),
        GV::Str(s) => Ok(Value::from(s.len() as i64)),
        GV::Bytes(b) => Ok(Value::from(b.len() as i64)),
        GV::List | GV::Map => Ok(Value::from(a[0].len().unwrap_or(0) as i64)),
        _ => Err(err(format!("len of type {}", go_type_name(&a[0])))),
    }
}

fn index_arg(key: &Value, len: usize) -> Result<usize, Error> {
    match gv(key) {
        GV::Int(i) => {
            if i < 0 || i >= len as i128 {
                Err(err(format!("index out of range: {i}")))
            } else {
                Ok(i as usize)
            }
        }
        GV::Missing | GV::Nil => Err(err("cannot index slice/array with nil")),
        _ => Err(err(format!(
            "cannot index slice/array with type {}",
            go_type_name(key)
        ))),
    }
}

fn f_index(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    let mut cur = a[0].clone();
    if matches!(gv(&cur), GV::Missing | GV::Nil) {
        return Err(err("index of untyped nil"));
    }
    for key in &a[1..] {
        cur = match gv(&cur) {
            GV::Missing | GV::Nil => return Err(err("index of nil pointer")),
            GV::Str(s) => {
                let i = index_arg(key, s.len())?;
                Value::from(s.as_bytes()[i] as i64)
            }
            GV::Bytes(b) => {
                let i = index_arg(key, b.len())?;
                Value::from(b[i] as i64)
            }
            GV::List => {
                let items = list_items(&cur).unwrap_or_default();
                let i = index_arg(key, items.len())?;
                items[i].clone()
            }
            GV::Map => {
                let Some(k) = key.as_str() else {
                    return Err(err(format!(
                        "value has type {}; should be string",
                        go_type_name(key)
                    )));
                };
                match map_get(&cur, k) {
                    Some(v) if !v.is_undefined() => v,
                    _ => Value::from(()),
                }
            }
            _ => {
                return Err(err(format!(
                    "can't index item of type {}",
                    go_type_name(&cur)
                )));
            }
        };
    }
    Ok(cur)
}

#[derive(Debug, Clone, Copy)]
enum Basic<'a> {
    Nil,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
    Other(&'static str),
}

fn basic(v: &Value) -> Basic<'_> {
    match gv(v) {
        GV::Missing | GV::Nil => Basic::Nil,
        GV::Bool(b) => Basic::Bool(b),
        GV::Int(i) => Basic::Int(i),
        GV::Float(f) => Basic::Float(f),
        GV::Str(s) => Basic::Str(s),
        _ => Basic::Other(go_type_name(v)),
    }
}

/// Go's `eq` for two values (numbers across int/float compare numerically; a number and a
/// string compare as text, like µTask's `json.Number`s).
pub(crate) fn go_eq(a: &Value, b: &Value) -> Result<bool, Error> {
    Ok(match (basic(a), basic(b)) {
        (Basic::Nil, Basic::Nil) => true,
        (Basic::Nil, _) | (_, Basic::Nil) => false,
        (Basic::Bool(x), Basic::Bool(y)) => x == y,
        (Basic::Int(x), Basic::Int(y)) => x == y,
        (Basic::Float(x), Basic::Float(y)) => x == y,
        (Basic::Int(x), Basic::Float(y)) | (Basic::Float(y), Basic::Int(x)) => (x as f64) == y,
        (Basic::Str(x), Basic::Str(y)) => x == y,
        (Basic::Str(s), Basic::Int(_) | Basic::Float(_)) => s == fmt::sprint_plain(b),
        (Basic::Int(_) | Basic::Float(_), Basic::Str(s)) => s == fmt::sprint_plain(a),
        (Basic::Other(t), _) | (_, Basic::Other(t)) => {
            return Err(err(format!("non-comparable type {t}")));
        }
        _ => return Err(err("incompatible types for comparison")),
    })
}

fn go_lt(a: &Value, b: &Value) -> Result<bool, Error> {
    Ok(match (basic(a), basic(b)) {
        (Basic::Int(x), Basic::Int(y)) => x < y,
        (Basic::Float(x), Basic::Float(y)) => x < y,
        (Basic::Int(x), Basic::Float(y)) => (x as f64) < y,
        (Basic::Float(x), Basic::Int(y)) => x < (y as f64),
        (Basic::Str(x), Basic::Str(y)) => x < y,
        (Basic::Nil | Basic::Bool(_) | Basic::Other(_), _)
        | (_, Basic::Nil | Basic::Bool(_) | Basic::Other(_)) => {
            return Err(err("invalid type for comparison"));
        }
        _ => return Err(err("incompatible types for comparison")),
    })
}

fn f_eq(_s: &State, a: &[Value]) -> Result<Value, Error> {
    if a.len() < 2 {
        return Err(err("missing argument for comparison"));
    }
    for b in &a[1..] {
        if go_eq(&a[0], b)? {
            return Ok(Value::from(true));
        }
    }
    Ok(Value::from(false))
}

fn f_ne(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(!go_eq(&a[0], &a[1])?))
}

fn f_lt(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(go_lt(&a[0], &a[1])?))
}

fn f_le(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(go_lt(&a[0], &a[1])? || go_eq(&a[0], &a[1])?))
}

fn f_gt(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(!(go_lt(&a[0], &a[1])? || go_eq(&a[0], &a[1])?)))
}

fn f_ge(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(!go_lt(&a[0], &a[1])?))
}

fn f_print(s: &State, a: &[Value]) -> Result<Value, Error> {
    let mut out = fmt::Out::new(max_bytes(s));
    fmt::sprint(a, &mut out)?;
    Ok(Value::from(out.into_string()))
}

fn f_println(s: &State, a: &[Value]) -> Result<Value, Error> {
    let mut out = fmt::Out::new(max_bytes(s));
    fmt::sprintln(a, &mut out)?;
    Ok(Value::from(out.into_string()))
}

fn f_printf(s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    let f = arg_str(&a[0])?;
    let mut out = fmt::Out::new(max_bytes(s));
    fmt::sprintf(&f, &a[1..], &mut out)?;
    Ok(Value::from(out.into_string()))
}

/// text/template's `evalArgs`: one string argument as-is, otherwise `fmt.Sprint`.
fn eval_args(s: &State, a: &[Value]) -> Result<String, Error> {
    if a.len() == 1
        && let GV::Str(x) = gv(&a[0])
    {
        return Ok(x.to_string());
    }
    let mut out = fmt::Out::new(max_bytes(s));
    fmt::sprint(a, &mut out)?;
    Ok(out.into_string())
}

fn f_html(s: &State, a: &[Value]) -> Result<Value, Error> {
    let text = eval_args(s, a)?;
    let mut o = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\0' => o.push('\u{FFFD}'),
            '"' => o.push_str("&#34;"),
            '\'' => o.push_str("&#39;"),
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            c => o.push(c),
        }
    }
    check_size(s, o.len())?;
    Ok(Value::from(o))
}

fn f_js(s: &State, a: &[Value]) -> Result<Value, Error> {
    let text = eval_args(s, a)?;
    let mut o = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("\\'"),
            '"' => o.push_str("\\\""),
            '<' => o.push_str("\\u003C"),
            '>' => o.push_str("\\u003E"),
            '&' => o.push_str("\\u0026"),
            '=' => o.push_str("\\u003D"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04X}", c as u32)),
            c if (c as u32) >= 0x80 && c.is_control() => {
                o.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => o.push(c),
        }
    }
    check_size(s, o.len())?;
    Ok(Value::from(o))
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(text: &str) -> String {
    let mut o = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            b => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

fn f_urlquery(s: &State, a: &[Value]) -> Result<Value, Error> {
    let text = eval_args(s, a)?;
    let o = query_escape(&text);
    check_size(s, o.len())?;
    Ok(Value::from(o))
}

fn f_call(_s: &State, _a: &[Value]) -> Result<Value, Error> {
    Err(err(
        "call is not supported: template data holds no functions",
    ))
}

fn f_eval_impl(s: &State, a: &[Value], cache: bool) -> Result<Value, Error> {
    want(a, 1)?;
    let name = arg_str(&a[0])?.into_owned();
    with_ctx(s, |ctx| {
        let Some(ctx) = ctx else {
            return Err(err(format!(
                "Var name not found in template: '{name}' (no variable evaluator in this context)"
            )));
        };
        let key = (name.clone(), cache);
        if let Some(r) = ctx.evals.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return r.map_err(err);
        }
        if !ctx.has_eval {
            return Err(err(format!(
                "Var name not found in template: '{name}' (no variable evaluator in this context)"
            )));
        }
        if let Ok(mut p) = ctx.pending.lock() {
            *p = Some(key);
        }
        Err(err(EVAL_PENDING_MARK))
    })
}

fn f_eval(s: &State, a: &[Value]) -> Result<Value, Error> {
    f_eval_impl(s, a, false)
}

fn f_eval_cache(s: &State, a: &[Value]) -> Result<Value, Error> {
    f_eval_impl(s, a, true)
}

/// µTask's `fieldFn`: lookup by keys, missing/non-map → missing.
fn field_lookup(mut cur: Value, keys: &[Value]) -> Result<Value, Error> {
    for k in keys {
        let Some(k) = k.as_str() else {
            return Err(err(format!(
                "wrong type for value; expected string; got {}",
                go_type_name(k)
            )));
        };
        cur = match map_get(&cur, k) {
            Some(v) if !v.is_undefined() => v,
            _ => return Ok(Value::UNDEFINED),
        };
    }
    Ok(cur)
}

fn f_field(s: &State, a: &[Value]) -> Result<Value, Error> {
    let root = s.lookup(ROOT_KEY).unwrap_or(Value::UNDEFINED);
    field_lookup(root, a)
}

fn f_field_from(_s: &State, a: &[Value]) -> Result<Value, Error> {
    if a.len() < 2 {
        return Err(err("invalid number of parameters given"));
    }
    let (last, keys) = a.split_last().unwrap_or((&a[0], &[]));
    if !matches!(gv(last), GV::Map) {
        return Err(err("unable to cast given data to a map[string]"));
    }
    if keys.iter().any(|k| k.as_str().is_none()) {
        return Err(err("keys must be strings"));
    }
    field_lookup(last.clone(), keys)
}

pub(crate) fn parse_json_go(s: &str) -> Result<Value, Error> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Null) => Ok(Value::UNDEFINED),
        Ok(j) => Ok(json_to_value(&j, true)),
        Err(e) => Err(err(e.to_string())),
    }
}

fn f_from_json(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let text = arg_str(&a[0])?;
    Ok(parse_json_go(&text).unwrap_or(Value::UNDEFINED))
}

fn f_must_from_json(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let text = arg_str(&a[0])?;
    parse_json_go(&text)
}

fn f_uuid(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 0)?;
    Ok(Value::from(uuid::Uuid::new_v4().to_string()))
}

fn f_b64_raw_enc(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let text = arg_str(&a[0])?;
    check_size(s, text.len() / 3 * 4 + 4)?;
    Ok(Value::from(sprig::raw_b64_encode(text.as_bytes())))
}

/// Go's message for a corrupt base64 input at byte `offset`.
pub(crate) fn b64_corrupt(offset: usize) -> String {
    format!("illegal base64 data at input byte {offset}")
}

/// µTask's `b64RawDec`: a decoding error returns the error's text.
fn f_b64_raw_dec(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(sprig::raw_b64_decode(&arg_str(&a[0])?)))
}

static GO_FUNCS: &[(&str, GoFn)] = &[
    // Go text/template builtins (`slice` is sprig's, which overrides Go's).
    ("not", f_not),
    ("len", f_len),
    ("index", f_index),
    ("eq", f_eq),
    ("ne", f_ne),
    ("lt", f_lt),
    ("le", f_le),
    ("gt", f_gt),
    ("ge", f_ge),
    ("print", f_print),
    ("printf", f_printf),
    ("println", f_println),
    ("html", f_html),
    ("js", f_js),
    ("urlquery", f_urlquery),
    ("call", f_call),
    // µTask additions and overrides.
    ("eval", f_eval),
    ("evalCache", f_eval_cache),
    ("field", f_field),
    ("fieldFrom", f_field_from),
    ("fromJson", f_from_json),
    ("mustFromJson", f_must_from_json),
    ("uuid", f_uuid),
    ("b64RawEnc", f_b64_raw_enc),
    ("b64RawDec", f_b64_raw_dec),
    // sprig: defaults and flow.
    ("default", sprig::default),
    ("empty", sprig::empty),
    ("coalesce", sprig::coalesce),
    ("ternary", sprig::ternary),
    ("all", sprig::all),
    ("any", sprig::any),
    ("fail", sprig::fail),
    ("deepEqual", sprig::deep_equal),
    ("typeOf", sprig::type_of),
    ("kindOf", sprig::kind_of),
    ("typeIs", sprig::type_is),
    ("kindIs", sprig::kind_is),
    ("typeIsLike", sprig::type_is),
    // sprig: lists.
    ("list", sprig::list),
    ("tuple", sprig::list),
    ("append", sprig::append),
    ("push", sprig::append),
    ("mustAppend", sprig::append),
    ("mustPush", sprig::append),
    ("prepend", sprig::prepend),
    ("mustPrepend", sprig::prepend),
    ("first", sprig::first),
    ("mustFirst", sprig::first),
    ("rest", sprig::rest),
    ("mustRest", sprig::rest),
    ("last", sprig::last),
    ("mustLast", sprig::last),
    ("initial", sprig::initial),
    ("mustInitial", sprig::initial),
    ("concat", sprig::concat),
    ("has", sprig::has),
    ("mustHas", sprig::has),
    ("without", sprig::without),
    ("mustWithout", sprig::without),
    ("uniq", sprig::uniq),
    ("mustUniq", sprig::uniq),
    ("compact", sprig::compact),
    ("mustCompact", sprig::compact),
    ("reverse", sprig::reverse),
    ("mustReverse", sprig::reverse),
    ("slice", sprig::slice),
    ("mustSlice", sprig::slice),
    ("chunk", sprig::chunk),
    ("mustChunk", sprig::chunk),
    ("until", sprig::until),
    ("untilStep", sprig::until_step),
    ("seq", sprig::seq),
    ("sortAlpha", sprig::sort_alpha),
    // sprig: strings.
    ("join", sprig::join),
    ("split", sprig::split),
    ("splitList", sprig::split_list),
    ("splitn", sprig::splitn),
    ("toString", sprig::to_string),
    ("toStrings", sprig::to_strings),
    ("quote", sprig::quote),
    ("squote", sprig::squote),
    ("cat", sprig::cat),
    ("upper", sprig::upper),
    ("lower", sprig::lower),
    ("title", sprig::title),
    ("untitle", sprig::untitle),
    ("trim", sprig::trim),
    ("trimAll", sprig::trim_all),
    ("trimall", sprig::trim_all),
    ("trimPrefix", sprig::trim_prefix),
    ("trimSuffix", sprig::trim_suffix),
    ("replace", sprig::replace),
    ("contains", sprig::contains),
    ("hasPrefix", sprig::has_prefix),
    ("hasSuffix", sprig::has_suffix),
    ("repeat", sprig::repeat),
    ("substr", sprig::substr),
    ("trunc", sprig::trunc),
    ("abbrev", sprig::abbrev),
    ("nospace", sprig::nospace),
    ("indent", sprig::indent),
    ("nindent", sprig::nindent),
    ("plural", sprig::plural),
    ("initials", sprig::initials),
    ("swapcase", sprig::swapcase),
    // sprig: numbers.
    ("atoi", sprig::atoi),
    ("int", sprig::to_int),
    ("int64", sprig::to_int),
    ("float64", sprig::to_float),
    ("add", sprig::add),
    ("add1", sprig::add1),
    ("sub", sprig::sub),
    ("mul", sprig::mul),
    ("div", sprig::div),
    ("mod", sprig::modulo),
    ("max", sprig::max),
    ("biggest", sprig::max),
    ("min", sprig::min),
    ("addf", sprig::addf),
    ("add1f", sprig::add1f),
    ("subf", sprig::subf),
    ("mulf", sprig::mulf),
    ("divf", sprig::divf),
    ("maxf", sprig::maxf),
    ("minf", sprig::minf),
    ("round", sprig::round),
    ("floor", sprig::floor),
    ("ceil", sprig::ceil),
    ("randInt", sprig::rand_int),
    ("randAlphaNum", sprig::rand_alpha_num),
    ("randAlpha", sprig::rand_alpha),
    ("randNumeric", sprig::rand_numeric),
    ("randAscii", sprig::rand_ascii),
    // sprig: dictionaries.
    ("dict", sprig::dict),
    ("get", sprig::get),
    ("set", sprig::set),
    ("unset", sprig::unset),
    ("hasKey", sprig::has_key),
    ("keys", sprig::keys),
    ("values", sprig::values),
    ("pick", sprig::pick),
    ("omit", sprig::omit),
    ("pluck", sprig::pluck),
    ("merge", sprig::merge),
    ("mustMerge", sprig::merge),
    ("mergeOverwrite", sprig::merge_overwrite),
    ("mustMergeOverwrite", sprig::merge_overwrite),
    ("dig", sprig::dig),
    ("deepCopy", sprig::deep_copy),
    ("mustDeepCopy", sprig::deep_copy),
    // sprig: encodings, JSON, regexes, hashes.
    ("toJson", sprig::to_json),
    ("mustToJson", sprig::must_to_json),
    ("toPrettyJson", sprig::to_pretty_json),
    ("mustToPrettyJson", sprig::must_to_pretty_json),
    ("toRawJson", sprig::to_raw_json),
    ("mustToRawJson", sprig::must_to_raw_json),
    ("b64enc", sprig::b64enc),
    ("b64dec", sprig::b64dec),
    ("sha256sum", sprig::sha256sum),
    ("hmacSha256", sprig::hmac_sha256),
    ("sha1sum", sprig::sha1sum),
    ("adler32sum", sprig::adler32sum),
    ("regexMatch", sprig::regex_match),
    ("mustRegexMatch", sprig::must_regex_match),
    ("regexFind", sprig::regex_find),
    ("mustRegexFind", sprig::regex_find),
    ("regexFindAll", sprig::regex_find_all),
    ("mustRegexFindAll", sprig::regex_find_all),
    ("regexReplaceAll", sprig::regex_replace_all),
    ("mustRegexReplaceAll", sprig::regex_replace_all),
    ("regexReplaceAllLiteral", sprig::regex_replace_all_literal),
    (
        "mustRegexReplaceAllLiteral",
        sprig::regex_replace_all_literal,
    ),
    ("regexSplit", sprig::regex_split),
    ("mustRegexSplit", sprig::regex_split),
    ("regexQuoteMeta", sprig::regex_quote_meta),
    ("uuidv4", sprig::uuidv4),
    ("base", sprig::path_base),
    ("dir", sprig::path_dir),
    ("ext", sprig::path_ext),
    ("clean", sprig::path_clean),
    ("isAbs", sprig::path_is_abs),
    // sprig: dates.
    ("now", time::now),
    ("date", time::date),
    ("dateInZone", time::date_in_zone),
    ("date_in_zone", time::date_in_zone),
    ("htmlDate", time::html_date),
    ("htmlDateInZone", time::html_date_in_zone),
    ("unixEpoch", time::unix_epoch),
    ("toDate", time::to_date),
    ("mustToDate", time::must_to_date),
    ("dateModify", time::date_modify),
    ("date_modify", time::date_modify),
    ("mustDateModify", time::must_date_modify),
];

#[cfg(test)]
#[path = "funcs_tests.rs"]
mod tests;
