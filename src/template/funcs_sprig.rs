//! The sprig (v3) functions µTask templates use, with sprig's argument order and semantics.
//!
//! Role: `default DEFAULT VALUE`, list/dict/string/number/regex/encoding helpers. Invariants:
//! argument order is sprig's (the piped value is the last argument); "empty" follows sprig
//! (`nil`, `false`, `0`, `""`, empty list/map); numbers go through spf13/cast like sprig
//! (`add "41" 1` is `42`); values are immutable, so `set`/`unset`/`merge` return a new map
//! (the translator re-binds a `$variable` passed to them, which covers sprig's mutating
//! idiom); everything that can grow is size-checked against the render's cap before it is
//! built; a bad regex or a bad argument is an error, never a panic.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use minijinja::{Error, State, Value};

use super::fmt::{JsonOpts, Out, go_quote, write_json, write_v};
use super::{
    GV, arg_bool, arg_int, arg_map, arg_str, check_size, err, go_type_name, gv, int_value,
    is_empty, list_items, map_entries, max_bytes, mk_list, mk_map, nil_if_missing, strval,
    to_float64, to_int64, want, want_min, want_range,
};

/// Rough memory cost of one list slot or map entry, for size checks.
const SLOT_BYTES: usize = 16;

const STD_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

const RAW_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Go's text for a base64 decoding error (`illegal base64 data at input byte N`).
pub(crate) fn b64_error_text(e: &base64::DecodeError, input: &str) -> String {
    let off = match e {
        base64::DecodeError::InvalidByte(o, _) | base64::DecodeError::InvalidLastSymbol(o, _) => *o,
        base64::DecodeError::InvalidLength(n) => n.saturating_sub(1),
        base64::DecodeError::InvalidPadding => input.find('=').unwrap_or(input.len()),
    };
    super::b64_corrupt(off)
}

fn b64_decode(engine: &GeneralPurpose, text: &str) -> String {
    // Go ignores newlines in base64 input.
    let clean: String = text.chars().filter(|&c| c != '\r' && c != '\n').collect();
    match engine.decode(clean.as_bytes()) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => b64_error_text(&e, &clean),
    }
}

pub(crate) fn raw_b64_encode(b: &[u8]) -> String {
    RAW_B64.encode(b)
}

pub(crate) fn raw_b64_decode(text: &str) -> String {
    b64_decode(&RAW_B64, text)
}

// ------------------------------------------------------------------------------------------
// Defaults and flow
// ------------------------------------------------------------------------------------------

pub(crate) fn default(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    match a.get(1) {
        Some(v) if !is_empty(v) => Ok(v.clone()),
        _ => Ok(nil_if_missing(&a[0])),
    }
}

pub(crate) fn empty(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(is_empty(&a[0])))
}

pub(crate) fn coalesce(_s: &State, a: &[Value]) -> Result<Value, Error> {
    Ok(a.iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::from(())))
}

pub(crate) fn ternary(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    Ok(if arg_bool(&a[2])? {
        nil_if_missing(&a[0])
    } else {
        nil_if_missing(&a[1])
    })
}

pub(crate) fn all(_s: &State, a: &[Value]) -> Result<Value, Error> {
    Ok(Value::from(a.iter().all(|v| !is_empty(v))))
}

pub(crate) fn any(_s: &State, a: &[Value]) -> Result<Value, Error> {
    Ok(Value::from(a.iter().any(|v| !is_empty(v))))
}

pub(crate) fn fail(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Err(err(arg_str(&a[0])?.into_owned()))
}

/// Go's `reflect.DeepEqual` on template values.
pub(crate) fn deep_eq(a: &Value, b: &Value) -> bool {
    match (gv(a), gv(b)) {
        (GV::Missing | GV::Nil, GV::Missing | GV::Nil) => true,
        (GV::Bool(x), GV::Bool(y)) => x == y,
        (GV::Int(x), GV::Int(y)) => x == y,
        (GV::Float(x), GV::Float(y)) => x == y,
        (GV::Str(x), GV::Str(y)) => x == y,
        (GV::Bytes(x), GV::Bytes(y)) => x == y,
        (GV::List, GV::List) => {
            let (x, y) = (
                list_items(a).unwrap_or_default(),
                list_items(b).unwrap_or_default(),
            );
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_eq(p, q))
        }
        (GV::Map, GV::Map) => {
            let (x, y) = (
                map_entries(a).unwrap_or_default(),
                map_entries(b).unwrap_or_default(),
            );
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.iter()
                        .find(|(k2, _)| k2 == k)
                        .is_some_and(|(_, v2)| deep_eq(v, v2))
                })
        }
        (GV::Time(x), GV::Time(y)) => x.t == y.t,
        _ => false,
    }
}

pub(crate) fn deep_equal(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(deep_eq(&a[0], &a[1])))
}

fn kind_name(v: &Value) -> &'static str {
    match gv(v) {
        GV::Missing | GV::Nil => "invalid",
        GV::Bool(_) => "bool",
        GV::Int(_) => "int",
        GV::Float(_) => "float64",
        GV::Str(_) => "string",
        GV::Bytes(_) | GV::List => "slice",
        GV::Map => "map",
        GV::Time(_) | GV::Other => "struct",
    }
}

pub(crate) fn type_of(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(go_type_name(&a[0])))
}

pub(crate) fn kind_of(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(kind_name(&a[0])))
}

pub(crate) fn type_is(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(arg_str(&a[0])? == go_type_name(&a[1])))
}

pub(crate) fn kind_is(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(arg_str(&a[0])? == kind_name(&a[1])))
}

// ------------------------------------------------------------------------------------------
// Lists
// ------------------------------------------------------------------------------------------

/// The items of a list argument; `what` names the sprig operation for the error.
fn list_arg(v: &Value, what: &str) -> Result<Vec<Value>, Error> {
    match gv(v) {
        GV::List => Ok(list_items(v).unwrap_or_default()),
        _ => Err(err(format!(
            "Cannot {what} on type {}",
            match gv(v) {
                GV::Missing | GV::Nil => "<nil>",
                _ => kind_name(v),
            }
        ))),
    }
}

fn check_slots(s: &State, n: usize) -> Result<(), Error> {
    check_size(s, n.saturating_mul(SLOT_BYTES))
}

pub(crate) fn list(s: &State, a: &[Value]) -> Result<Value, Error> {
    check_slots(s, a.len())?;
    Ok(mk_list(a.iter().map(nil_if_missing).collect()))
}

pub(crate) fn append(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let mut l = list_arg(&a[0], "push")?;
    check_slots(s, l.len() + 1)?;
    l.push(nil_if_missing(&a[1]));
    Ok(mk_list(l))
}

pub(crate) fn prepend(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let mut l = list_arg(&a[0], "prepend")?;
    check_slots(s, l.len() + 1)?;
    l.insert(0, nil_if_missing(&a[1]));
    Ok(mk_list(l))
}

pub(crate) fn first(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let l = list_arg(&a[0], "find first")?;
    Ok(l.first().cloned().unwrap_or(Value::from(())))
}

pub(crate) fn last(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let l = list_arg(&a[0], "find last")?;
    Ok(l.last().cloned().unwrap_or(Value::from(())))
}

pub(crate) fn rest(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let l = list_arg(&a[0], "find rest")?;
    if l.is_empty() {
        return Ok(Value::from(()));
    }
    Ok(mk_list(l[1..].to_vec()))
}

pub(crate) fn initial(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let l = list_arg(&a[0], "find initial")?;
    if l.is_empty() {
        return Ok(Value::from(()));
    }
    Ok(mk_list(l[..l.len() - 1].to_vec()))
}

pub(crate) fn concat(s: &State, a: &[Value]) -> Result<Value, Error> {
    let mut out = Vec::new();
    for l in a {
        let items = match gv(l) {
            GV::List => list_items(l).unwrap_or_default(),
            _ => {
                return Err(err(format!("Cannot concat type {} as list", kind_name(l))));
            }
        };
        check_slots(s, out.len() + items.len())?;
        out.extend(items);
    }
    Ok(mk_list(out))
}

pub(crate) fn has(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    if matches!(gv(&a[1]), GV::Missing | GV::Nil) {
        return Ok(Value::from(false));
    }
    let l = list_arg(&a[1], "find has")?;
    Ok(Value::from(l.iter().any(|x| deep_eq(x, &a[0]))))
}

pub(crate) fn without(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    let l = list_arg(&a[0], "find without")?;
    let omit = &a[1..];
    Ok(mk_list(
        l.into_iter()
            .filter(|x| !omit.iter().any(|o| deep_eq(x, o)))
            .collect(),
    ))
}

pub(crate) fn uniq(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let l = list_arg(&a[0], "find uniq")?;
    s.consume_fuel((l.len() as u64).saturating_mul(l.len() as u64) / 64)?;
    let mut out: Vec<Value> = Vec::new();
    for x in l {
        if !out.iter().any(|o| deep_eq(o, &x)) {
            out.push(x);
        }
    }
    Ok(mk_list(out))
}

pub(crate) fn compact(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let l = list_arg(&a[0], "compact")?;
    Ok(mk_list(l.into_iter().filter(|x| !is_empty(x)).collect()))
}

pub(crate) fn reverse(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let mut l = list_arg(&a[0], "find reverse")?;
    l.reverse();
    Ok(mk_list(l))
}

pub(crate) fn slice(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    let l = match gv(&a[0]) {
        GV::List => list_items(&a[0]).unwrap_or_default(),
        _ => {
            return Err(err(format!(
                "list should be type of slice or array but {}",
                kind_name(&a[0])
            )));
        }
    };
    if l.is_empty() {
        return Ok(Value::from(()));
    }
    let start = a.get(1).map_or(0, to_int64);
    let end = a.get(2).map_or(l.len() as i64, to_int64);
    if start < 0 || end < start || end > l.len() as i64 {
        return Err(err(format!(
            "slice bounds out of range [{start}:{end}] with length {}",
            l.len()
        )));
    }
    Ok(mk_list(l[start as usize..end as usize].to_vec()))
}

pub(crate) fn chunk(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let size = arg_int(&a[0])?;
    let l = list_arg(&a[1], "chunk")?;
    if size <= 0 {
        return Err(err("chunk size must be positive"));
    }
    check_slots(s, l.len() * 2)?;
    Ok(mk_list(
        l.chunks(size as usize)
            .map(|c| mk_list(c.to_vec()))
            .collect(),
    ))
}

fn until_step_vec(s: &State, start: i64, stop: i64, step: i64) -> Result<Vec<i64>, Error> {
    let count = if step == 0 || (stop < start && step > 0) || (stop >= start && step < 0) {
        0
    } else {
        let span = (stop as i128 - start as i128).unsigned_abs();
        let st = (step as i128).unsigned_abs();
        span.div_ceil(st)
    };
    check_slots(s, usize::try_from(count).unwrap_or(usize::MAX))?;
    let mut v = Vec::with_capacity(count as usize);
    let mut i = start as i128;
    for _ in 0..count {
        v.push(i as i64);
        i += step as i128;
    }
    Ok(v)
}

pub(crate) fn until(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let n = arg_int(&a[0])?;
    let step = if n < 0 { -1 } else { 1 };
    let v = until_step_vec(s, 0, n, step)?;
    Ok(mk_list(v.into_iter().map(Value::from).collect()))
}

pub(crate) fn until_step(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    let v = until_step_vec(s, arg_int(&a[0])?, arg_int(&a[1])?, arg_int(&a[2])?)?;
    Ok(mk_list(v.into_iter().map(Value::from).collect()))
}

pub(crate) fn seq(s: &State, a: &[Value]) -> Result<Value, Error> {
    let p: Vec<i64> = a.iter().map(arg_int).collect::<Result<_, _>>()?;
    let v = match p.as_slice() {
        [end] => {
            let inc = if *end < 1 { -1 } else { 1 };
            until_step_vec(s, 1, end.saturating_add(inc), inc)?
        }
        [start, end] => {
            let step = if end < start { -1 } else { 1 };
            until_step_vec(s, *start, end.saturating_add(step), step)?
        }
        // GNU seq order: FIRST INCREMENT LAST.
        [start, step, end] => {
            let inc = if end < start { -1 } else { 1 };
            if end < start && *step > 0 {
                Vec::new()
            } else {
                until_step_vec(s, *start, end.saturating_add(inc), *step)?
            }
        }
        _ => Vec::new(),
    };
    let text: Vec<String> = v.iter().map(|i| i.to_string()).collect();
    let text = text.join(" ");
    check_size(s, text.len())?;
    Ok(Value::from(text))
}

/// sprig's `strslice`: a list's non-nil elements as strings, or the value itself.
fn strslice(v: &Value) -> Vec<String> {
    match gv(v) {
        GV::List => list_items(v)
            .unwrap_or_default()
            .iter()
            .filter(|x| !matches!(gv(x), GV::Missing | GV::Nil))
            .map(strval)
            .collect(),
        GV::Missing | GV::Nil => Vec::new(),
        _ => vec![strval(v)],
    }
}

pub(crate) fn sort_alpha(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let mut l = match gv(&a[0]) {
        GV::List => strslice(&a[0]),
        _ => vec![strval(&a[0])],
    };
    l.sort();
    Ok(mk_list(l.into_iter().map(Value::from).collect()))
}

// ------------------------------------------------------------------------------------------
// Strings
// ------------------------------------------------------------------------------------------

fn str_value(s: &State, text: String) -> Result<Value, Error> {
    check_size(s, text.len())?;
    Ok(Value::from(text))
}

pub(crate) fn join(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let sep = arg_str(&a[0])?;
    let parts = strslice(&a[1]);
    let total: usize =
        parts.iter().map(String::len).sum::<usize>() + sep.len() * parts.len().saturating_sub(1);
    check_size(s, total)?;
    Ok(Value::from(parts.join(&sep)))
}

/// Go's `strings.SplitN` (`n < 0`: all parts).
fn go_split(text: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let chars: Vec<String> = text.chars().map(String::from).collect();
        if n < 0 || chars.len() <= n as usize {
            return chars;
        }
        let mut out: Vec<String> = chars[..n as usize - 1].to_vec();
        let consumed: usize = out.iter().map(String::len).sum();
        out.push(text[consumed..].to_string());
        return out;
    }
    if n < 0 {
        text.split(sep).map(String::from).collect()
    } else {
        text.splitn(n as usize, sep).map(String::from).collect()
    }
}

fn indexed_map(parts: Vec<String>) -> Value {
    mk_map(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Value::from(p)))
            .collect(),
    )
}

pub(crate) fn split(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let parts = go_split(&arg_str(&a[1])?, &arg_str(&a[0])?, -1);
    check_slots(s, parts.len())?;
    Ok(indexed_map(parts))
}

pub(crate) fn split_list(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let parts = go_split(&arg_str(&a[1])?, &arg_str(&a[0])?, -1);
    check_slots(s, parts.len())?;
    Ok(mk_list(parts.into_iter().map(Value::from).collect()))
}

pub(crate) fn splitn(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    let parts = go_split(&arg_str(&a[2])?, &arg_str(&a[0])?, arg_int(&a[1])?);
    check_slots(s, parts.len())?;
    Ok(indexed_map(parts))
}

pub(crate) fn to_string(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    match gv(&a[0]) {
        GV::Str(_) => Ok(a[0].clone()),
        _ => {
            let mut out = Out::new(max_bytes(s));
            write_v(&a[0], &mut out, 0)?;
            Ok(Value::from(out.into_string()))
        }
    }
}

pub(crate) fn to_strings(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let l: Vec<String> = match gv(&a[0]) {
        GV::List => list_items(&a[0])
            .unwrap_or_default()
            .iter()
            .map(strval)
            .collect(),
        GV::Missing | GV::Nil => Vec::new(),
        _ => vec![strval(&a[0])],
    };
    Ok(mk_list(l.into_iter().map(Value::from).collect()))
}

pub(crate) fn quote(s: &State, a: &[Value]) -> Result<Value, Error> {
    let parts: Vec<String> = a
        .iter()
        .filter(|v| !matches!(gv(v), GV::Missing | GV::Nil))
        .map(|v| go_quote(&strval(v)))
        .collect();
    str_value(s, parts.join(" "))
}

pub(crate) fn squote(s: &State, a: &[Value]) -> Result<Value, Error> {
    let parts: Vec<String> = a
        .iter()
        .filter(|v| !matches!(gv(v), GV::Missing | GV::Nil))
        .map(|v| format!("'{}'", strval(v)))
        .collect();
    str_value(s, parts.join(" "))
}

pub(crate) fn cat(s: &State, a: &[Value]) -> Result<Value, Error> {
    let mut out = Out::new(max_bytes(s));
    let mut first = true;
    for v in a.iter().filter(|v| !matches!(gv(v), GV::Missing | GV::Nil)) {
        if !first {
            out.push(' ')?;
        }
        first = false;
        write_v(v, &mut out, 0)?;
    }
    Ok(Value::from(out.into_string()))
}

fn map_chars(s: &State, text: &str, f: impl Fn(char) -> char) -> Result<Value, Error> {
    str_value(s, text.chars().map(f).collect())
}

fn single_upper(c: char) -> char {
    let mut u = c.to_uppercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

fn single_lower(c: char) -> char {
    let mut u = c.to_lowercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

pub(crate) fn upper(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    map_chars(s, &arg_str(&a[0])?, single_upper)
}

pub(crate) fn lower(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    map_chars(s, &arg_str(&a[0])?, single_lower)
}

/// Go's deprecated `strings.Title` separator rule.
fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphabetic() || c.is_numeric() {
        return false;
    }
    c.is_whitespace()
}

pub(crate) fn title(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let text = arg_str(&a[0])?;
    let mut prev = ' ';
    let out: String = text
        .chars()
        .map(|c| {
            let r = if is_separator(prev) {
                single_upper(c)
            } else {
                c
            };
            prev = c;
            r
        })
        .collect();
    str_value(s, out)
}

pub(crate) fn untitle(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let text = arg_str(&a[0])?;
    let mut at_break = true;
    let out: String = text
        .chars()
        .map(|c| {
            if c.is_whitespace() {
                at_break = true;
                c
            } else if at_break {
                at_break = false;
                single_lower(c)
            } else {
                c
            }
        })
        .collect();
    str_value(s, out)
}

pub(crate) fn trim(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(arg_str(&a[0])?.trim()))
}

pub(crate) fn trim_all(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let cut: Vec<char> = arg_str(&a[0])?.chars().collect();
    Ok(Value::from(
        arg_str(&a[1])?.trim_matches(|c| cut.contains(&c)),
    ))
}

pub(crate) fn trim_prefix(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let p = arg_str(&a[0])?;
    let t = arg_str(&a[1])?;
    Ok(Value::from(t.strip_prefix(p.as_ref()).unwrap_or(&t)))
}

pub(crate) fn trim_suffix(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let p = arg_str(&a[0])?;
    let t = arg_str(&a[1])?;
    Ok(Value::from(t.strip_suffix(p.as_ref()).unwrap_or(&t)))
}

pub(crate) fn replace(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    let old = arg_str(&a[0])?;
    let new = arg_str(&a[1])?;
    let src = arg_str(&a[2])?;
    let count = if old.is_empty() {
        src.chars().count() + 1
    } else {
        src.matches(old.as_ref()).count()
    };
    let size = src.len() + count.saturating_mul(new.len());
    check_size(s, size)?;
    Ok(Value::from(src.replace(old.as_ref(), &new)))
}

pub(crate) fn contains(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(
        arg_str(&a[1])?.contains(arg_str(&a[0])?.as_ref()),
    ))
}

pub(crate) fn has_prefix(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(
        arg_str(&a[1])?.starts_with(arg_str(&a[0])?.as_ref()),
    ))
}

pub(crate) fn has_suffix(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(
        arg_str(&a[1])?.ends_with(arg_str(&a[0])?.as_ref()),
    ))
}

pub(crate) fn repeat(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let n = arg_int(&a[0])?;
    let text = arg_str(&a[1])?;
    if n < 0 {
        return Err(err("strings: negative Repeat count"));
    }
    check_size(s, (n as usize).saturating_mul(text.len()))?;
    Ok(Value::from(text.repeat(n as usize)))
}

/// A byte-indexed substring that never splits a character badly (invalid UTF-8 becomes
/// U+FFFD, as Go's invalid bytes would print).
fn byte_slice(text: &str, start: usize, end: usize) -> String {
    match text.get(start..end) {
        Some(x) => x.to_string(),
        None => String::from_utf8_lossy(&text.as_bytes()[start..end]).into_owned(),
    }
}

pub(crate) fn substr(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    let start = arg_int(&a[0])?;
    let end = arg_int(&a[1])?;
    let text = arg_str(&a[2])?;
    let len = text.len() as i64;
    let (lo, hi) = if start < 0 {
        (0, end)
    } else if end < 0 || end > len {
        (start, len)
    } else {
        (start, end)
    };
    if lo < 0 || hi < lo || hi > len {
        return Err(err(format!(
            "slice bounds out of range [{lo}:{hi}] with length {len}"
        )));
    }
    Ok(Value::from(byte_slice(&text, lo as usize, hi as usize)))
}

pub(crate) fn trunc(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let c = arg_int(&a[0])?;
    let text = arg_str(&a[1])?;
    let len = text.len() as i64;
    let out = if c < 0 && len + c > 0 {
        byte_slice(&text, (len + c) as usize, len as usize)
    } else if c >= 0 && len > c {
        byte_slice(&text, 0, c as usize)
    } else {
        text.into_owned()
    };
    Ok(Value::from(out))
}

pub(crate) fn abbrev(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let w = arg_int(&a[0])?;
    let text = arg_str(&a[1])?;
    if w < 4 || text.len() as i64 <= w {
        return Ok(Value::from(text.as_ref()));
    }
    Ok(Value::from(format!(
        "{}...",
        byte_slice(&text, 0, (w - 3) as usize)
    )))
}

pub(crate) fn nospace(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let text = arg_str(&a[0])?;
    Ok(Value::from(
        text.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>(),
    ))
}

fn indent_text(s: &State, n: i64, text: &str) -> Result<String, Error> {
    let n = n.max(0) as usize;
    let lines = text.matches('\n').count() + 1;
    check_size(s, text.len().saturating_add(lines.saturating_mul(n)))?;
    let pad = " ".repeat(n);
    Ok(format!("{pad}{}", text.replace('\n', &format!("\n{pad}"))))
}

pub(crate) fn indent(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(indent_text(
        s,
        arg_int(&a[0])?,
        &arg_str(&a[1])?,
    )?))
}

pub(crate) fn nindent(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(format!(
        "\n{}",
        indent_text(s, arg_int(&a[0])?, &arg_str(&a[1])?)?
    )))
}

pub(crate) fn plural(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    let one = arg_str(&a[0])?;
    let many = arg_str(&a[1])?;
    Ok(Value::from(if arg_int(&a[2])? == 1 {
        one.as_ref()
    } else {
        many.as_ref()
    }))
}

pub(crate) fn initials(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let text = arg_str(&a[0])?;
    Ok(Value::from(
        text.split_whitespace()
            .filter_map(|w| w.chars().next())
            .collect::<String>(),
    ))
}

pub(crate) fn swapcase(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let text = arg_str(&a[0])?;
    let out: String = text
        .chars()
        .map(|c| {
            if c.is_uppercase() {
                single_lower(c)
            } else if c.is_lowercase() {
                single_upper(c)
            } else {
                c
            }
        })
        .collect();
    str_value(s, out)
}

// ------------------------------------------------------------------------------------------
// Numbers
// ------------------------------------------------------------------------------------------

pub(crate) fn atoi(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let text = arg_str(&a[0])?;
    Ok(Value::from(text.parse::<i64>().unwrap_or(0)))
}

pub(crate) fn to_int(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(to_int64(&a[0])))
}

pub(crate) fn to_float(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(to_float64(&a[0])))
}

pub(crate) fn add(_s: &State, a: &[Value]) -> Result<Value, Error> {
    Ok(Value::from(
        a.iter().fold(0i64, |acc, v| acc.wrapping_add(to_int64(v))),
    ))
}

pub(crate) fn add1(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(to_int64(&a[0]).wrapping_add(1)))
}

pub(crate) fn sub(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))))
}

pub(crate) fn mul(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    Ok(Value::from(
        a.iter().fold(1i64, |acc, v| acc.wrapping_mul(to_int64(v))),
    ))
}

pub(crate) fn div(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let d = to_int64(&a[1]);
    if d == 0 {
        return Err(err("runtime error: integer divide by zero"));
    }
    Ok(Value::from(to_int64(&a[0]).wrapping_div(d)))
}

pub(crate) fn modulo(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let d = to_int64(&a[1]);
    if d == 0 {
        return Err(err("runtime error: integer divide by zero"));
    }
    Ok(Value::from(to_int64(&a[0]).wrapping_rem(d)))
}

pub(crate) fn max(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    Ok(Value::from(a.iter().map(to_int64).max().unwrap_or(0)))
}

pub(crate) fn min(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    Ok(Value::from(a.iter().map(to_int64).min().unwrap_or(0)))
}

/// sprig's float helpers go through shopspring/decimal: round to 15 significant digits to
/// drop binary noise (`addf 0.1 0.2` is `0.3`).
fn decimalish(f: f64) -> f64 {
    if !f.is_finite() || f == 0.0 {
        return f;
    }
    format!("{f:.14e}").parse::<f64>().unwrap_or(f)
}

fn fold_f(a: &[Value], init: Option<f64>, op: impl Fn(f64, f64) -> f64) -> f64 {
    let mut it = a.iter().map(to_float64);
    let mut acc = match init {
        Some(i) => i,
        None => it.next().unwrap_or(0.0),
    };
    for x in it {
        acc = decimalish(op(acc, x));
    }
    acc
}

pub(crate) fn addf(_s: &State, a: &[Value]) -> Result<Value, Error> {
    Ok(Value::from(fold_f(a, Some(0.0), |x, y| x + y)))
}

pub(crate) fn add1f(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(decimalish(to_float64(&a[0]) + 1.0)))
}

pub(crate) fn subf(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    Ok(Value::from(fold_f(a, None, |x, y| x - y)))
}

pub(crate) fn mulf(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    Ok(Value::from(fold_f(a, None, |x, y| x * y)))
}

pub(crate) fn divf(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    if a[1..].iter().any(|v| to_float64(v) == 0.0) {
        return Err(err("decimal division by 0"));
    }
    Ok(Value::from(fold_f(a, None, |x, y| x / y)))
}

pub(crate) fn maxf(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    Ok(Value::from(
        a.iter().map(to_float64).fold(f64::NEG_INFINITY, f64::max),
    ))
}

pub(crate) fn minf(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    Ok(Value::from(
        a.iter().map(to_float64).fold(f64::INFINITY, f64::min),
    ))
}

pub(crate) fn round(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_range(a, 2, 3)?;
    let val = to_float64(&a[0]);
    let places = arg_int(&a[1])? as f64;
    let round_on = a.get(2).map_or(0.5, to_float64);
    let pow = 10f64.powf(places);
    let digit = pow * val;
    let div = digit.fract();
    let r = if div >= round_on {
        digit.ceil()
    } else {
        digit.floor()
    };
    Ok(Value::from(r / pow))
}

pub(crate) fn floor(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(to_float64(&a[0]).floor()))
}

pub(crate) fn ceil(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(to_float64(&a[0]).ceil()))
}

fn random_u64() -> Result<u64, Error> {
    getrandom::u64().map_err(|e| err(format!("random source failed: {e}")))
}

pub(crate) fn rand_int(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let lo = to_int64(&a[0]);
    let hi = to_int64(&a[1]);
    if hi <= lo {
        return Err(err("invalid argument to Intn"));
    }
    let span = (hi as i128 - lo as i128) as u128;
    let r = (random_u64()? as u128) % span;
    Ok(int_value(lo as i128 + r as i128))
}

fn rand_from(s: &State, a: &[Value], alphabet: &[u8]) -> Result<Value, Error> {
    want(a, 1)?;
    let n = arg_int(&a[0])?.max(0) as usize;
    check_size(s, n)?;
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| err(format!("random source failed: {e}")))?;
    Ok(Value::from(
        buf.iter()
            .map(|b| alphabet[*b as usize % alphabet.len()] as char)
            .collect::<String>(),
    ))
}

const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ASCII: &[u8] =
    b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

pub(crate) fn rand_alpha_num(s: &State, a: &[Value]) -> Result<Value, Error> {
    rand_from(s, a, ALNUM)
}

pub(crate) fn rand_alpha(s: &State, a: &[Value]) -> Result<Value, Error> {
    rand_from(s, a, ALPHA)
}

pub(crate) fn rand_numeric(s: &State, a: &[Value]) -> Result<Value, Error> {
    rand_from(s, a, DIGITS)
}

pub(crate) fn rand_ascii(s: &State, a: &[Value]) -> Result<Value, Error> {
    rand_from(s, a, ASCII)
}

// ------------------------------------------------------------------------------------------
// Dictionaries
// ------------------------------------------------------------------------------------------

pub(crate) fn dict(s: &State, a: &[Value]) -> Result<Value, Error> {
    check_slots(s, a.len())?;
    let mut entries: Vec<(String, Value)> = Vec::new();
    for pair in a.chunks(2) {
        let k = strval(&pair[0]);
        let v = pair.get(1).map(nil_if_missing).unwrap_or(Value::from(""));
        match entries.iter_mut().find(|(ek, _)| *ek == k) {
            Some(e) => e.1 = v,
            None => entries.push((k, v)),
        }
    }
    Ok(mk_map(entries))
}

pub(crate) fn get(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let m = arg_map(&a[0])?;
    let k = arg_str(&a[1])?;
    Ok(m.into_iter()
        .find(|(mk, _)| mk.as_str() == k.as_ref())
        .map(|(_, v)| v)
        .unwrap_or(Value::from("")))
}

pub(crate) fn set(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    let mut m = arg_map(&a[0])?;
    let k = arg_str(&a[1])?.into_owned();
    let v = nil_if_missing(&a[2]);
    check_slots(s, m.len() + 1)?;
    match m.iter_mut().find(|(mk, _)| *mk == k) {
        Some(e) => e.1 = v,
        None => m.push((k, v)),
    }
    Ok(mk_map(m))
}

pub(crate) fn unset(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let mut m = arg_map(&a[0])?;
    let k = arg_str(&a[1])?;
    m.retain(|(mk, _)| mk.as_str() != k.as_ref());
    Ok(mk_map(m))
}

pub(crate) fn has_key(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let m = arg_map(&a[0])?;
    let k = arg_str(&a[1])?;
    Ok(Value::from(
        m.iter().any(|(mk, _)| mk.as_str() == k.as_ref()),
    ))
}

pub(crate) fn keys(s: &State, a: &[Value]) -> Result<Value, Error> {
    let mut out = Vec::new();
    for d in a {
        let mut ks: Vec<String> = arg_map(d)?.into_iter().map(|(k, _)| k).collect();
        ks.sort();
        check_slots(s, out.len() + ks.len())?;
        out.extend(ks.into_iter().map(Value::from));
    }
    Ok(mk_list(out))
}

pub(crate) fn values(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let mut m = arg_map(&a[0])?;
    m.sort_by(|x, y| x.0.cmp(&y.0));
    Ok(mk_list(m.into_iter().map(|(_, v)| v).collect()))
}

pub(crate) fn pick(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    let m = arg_map(&a[0])?;
    let wanted: HashSet<String> = a[1..].iter().map(strval).collect();
    Ok(mk_map(
        m.into_iter().filter(|(k, _)| wanted.contains(k)).collect(),
    ))
}

pub(crate) fn omit(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    let m = arg_map(&a[0])?;
    let drop: HashSet<String> = a[1..].iter().map(strval).collect();
    Ok(mk_map(
        m.into_iter().filter(|(k, _)| !drop.contains(k)).collect(),
    ))
}

pub(crate) fn pluck(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 1)?;
    let name = arg_str(&a[0])?;
    let mut out = Vec::new();
    for d in &a[1..] {
        if let Some((_, v)) = arg_map(d)?
            .into_iter()
            .find(|(k, _)| k.as_str() == name.as_ref())
        {
            out.push(v);
        }
    }
    Ok(mk_list(out))
}

/// mergo's deep merge of `src` into `dst` (`overwrite`: src wins).
fn merge_into(
    dst: &mut Vec<(String, Value)>,
    src: Vec<(String, Value)>,
    overwrite: bool,
    depth: usize,
) {
    for (k, sv) in src {
        match dst.iter_mut().find(|(dk, _)| *dk == k) {
            Some(entry) => {
                let dv = &entry.1;
                if matches!(gv(dv), GV::Map) && matches!(gv(&sv), GV::Map) && depth < 64 {
                    let mut inner = map_entries(dv).unwrap_or_default();
                    merge_into(
                        &mut inner,
                        map_entries(&sv).unwrap_or_default(),
                        overwrite,
                        depth + 1,
                    );
                    entry.1 = mk_map(inner);
                } else if (overwrite && !is_empty(&sv)) || is_empty(dv) {
                    entry.1 = sv;
                }
            }
            None => dst.push((k, sv)),
        }
    }
}

fn merge_impl(s: &State, a: &[Value], overwrite: bool) -> Result<Value, Error> {
    want_min(a, 1)?;
    let mut dst = arg_map(&a[0])?;
    for src in &a[1..] {
        merge_into(&mut dst, arg_map(src)?, overwrite, 0);
        check_slots(s, dst.len())?;
    }
    Ok(mk_map(dst))
}

pub(crate) fn merge(s: &State, a: &[Value]) -> Result<Value, Error> {
    merge_impl(s, a, false)
}

pub(crate) fn merge_overwrite(s: &State, a: &[Value]) -> Result<Value, Error> {
    merge_impl(s, a, true)
}

pub(crate) fn dig(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want_min(a, 3)?;
    let (dict, rest) = a.split_last().unwrap_or((&a[0], &[]));
    let (default, keys) = rest.split_last().unwrap_or((&a[0], &[]));
    let mut cur = dict.clone();
    for k in keys {
        let k = arg_str(k)?;
        match super::map_get(&cur, &k) {
            Some(v) if !v.is_undefined() => cur = v,
            _ => return Ok(nil_if_missing(default)),
        }
    }
    Ok(cur)
}

pub(crate) fn deep_copy(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(nil_if_missing(&a[0]))
}

// ------------------------------------------------------------------------------------------
// JSON, encodings, hashes
// ------------------------------------------------------------------------------------------

fn json_text(s: &State, v: &Value, opts: JsonOpts) -> Result<String, Error> {
    let mut out = Out::new(max_bytes(s));
    write_json(v, &mut out, opts, 0)?;
    Ok(out.into_string())
}

const COMPACT: JsonOpts = JsonOpts {
    escape_html: true,
    pretty: false,
};
const PRETTY: JsonOpts = JsonOpts {
    escape_html: true,
    pretty: true,
};
const RAW: JsonOpts = JsonOpts {
    escape_html: false,
    pretty: false,
};

/// sprig swallows encoding errors (NaN) and returns "" — but never a size-limit error.
fn lenient_json(s: &State, a: &[Value], opts: JsonOpts) -> Result<Value, Error> {
    want(a, 1)?;
    match json_text(s, &a[0], opts) {
        Ok(t) => Ok(Value::from(t)),
        Err(e)
            if e.detail()
                .is_some_and(|d| d.contains(super::SIZE_LIMIT_MARK)) =>
        {
            Err(e)
        }
        Err(_) => Ok(Value::from("")),
    }
}

fn strict_json(s: &State, a: &[Value], opts: JsonOpts) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(json_text(s, &a[0], opts)?))
}

pub(crate) fn to_json(s: &State, a: &[Value]) -> Result<Value, Error> {
    lenient_json(s, a, COMPACT)
}

pub(crate) fn must_to_json(s: &State, a: &[Value]) -> Result<Value, Error> {
    strict_json(s, a, COMPACT)
}

pub(crate) fn to_pretty_json(s: &State, a: &[Value]) -> Result<Value, Error> {
    lenient_json(s, a, PRETTY)
}

pub(crate) fn must_to_pretty_json(s: &State, a: &[Value]) -> Result<Value, Error> {
    strict_json(s, a, PRETTY)
}

pub(crate) fn to_raw_json(s: &State, a: &[Value]) -> Result<Value, Error> {
    lenient_json(s, a, RAW)
}

pub(crate) fn must_to_raw_json(s: &State, a: &[Value]) -> Result<Value, Error> {
    strict_json(s, a, RAW)
}

pub(crate) fn b64enc(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let text = arg_str(&a[0])?;
    check_size(s, text.len() / 3 * 4 + 4)?;
    Ok(Value::from(STD_B64.encode(text.as_bytes())))
}

pub(crate) fn b64dec(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(b64_decode(&STD_B64, &arg_str(&a[0])?)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn sha256sum(_s: &State, a: &[Value]) -> Result<Value, Error> {
    use sha2::Digest as _;
    want(a, 1)?;
    Ok(Value::from(hex(&sha2::Sha256::digest(
        arg_str(&a[0])?.as_bytes(),
    ))))
}

/// mutask: `hmacSha256 key message` → lower-case hex HMAC-SHA256 (sign outbound requests).
pub(crate) fn hmac_sha256(_s: &State, a: &[Value]) -> Result<Value, Error> {
    use hmac::{KeyInit, Mac};
    want(a, 2)?;
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(arg_str(&a[0])?.as_bytes())
        .map_err(|e| err(format!("hmacSha256: {e}")))?;
    mac.update(arg_str(&a[1])?.as_bytes());
    Ok(Value::from(hex(&mac.finalize().into_bytes())))
}

pub(crate) fn sha1sum(_s: &State, a: &[Value]) -> Result<Value, Error> {
    use sha1::Digest as _;
    want(a, 1)?;
    Ok(Value::from(hex(&sha1::Sha1::digest(
        arg_str(&a[0])?.as_bytes(),
    ))))
}

pub(crate) fn adler32sum(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let (mut x, mut y) = (1u32, 0u32);
    for b in arg_str(&a[0])?.bytes() {
        x = (x + b as u32) % 65521;
        y = (y + x) % 65521;
    }
    Ok(Value::from(((y << 16) | x).to_string()))
}

pub(crate) fn uuidv4(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 0)?;
    Ok(Value::from(uuid::Uuid::new_v4().to_string()))
}

// ------------------------------------------------------------------------------------------
// Regular expressions (RE2 syntax; the regex crate runs in linear time)
// ------------------------------------------------------------------------------------------

fn compile(re: &str) -> Result<regex::Regex, Error> {
    regex::RegexBuilder::new(re)
        .size_limit(1 << 22)
        .dfa_size_limit(1 << 22)
        .build()
        .map_err(|e| err(format!("error parsing regexp: {e}")))
}

/// Go's `FindAllStringIndex` (empty matches right after a match are skipped).
fn find_all(re: &regex::Regex, text: &str, n: i64) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for m in re.find_iter(text) {
        if n >= 0 && out.len() as i64 >= n {
            break;
        }
        if m.start() == m.end() && out.last().is_some_and(|l| l.1 == m.start()) {
            continue;
        }
        out.push((m.start(), m.end()));
    }
    out
}

pub(crate) fn regex_match(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let text = arg_str(&a[1])?;
    s.consume_fuel(text.len() as u64 / 64)?;
    Ok(Value::from(
        compile(&arg_str(&a[0])?).is_ok_and(|re| re.is_match(&text)),
    ))
}

pub(crate) fn must_regex_match(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let re = compile(&arg_str(&a[0])?)?;
    let text = arg_str(&a[1])?;
    s.consume_fuel(text.len() as u64 / 64)?;
    Ok(Value::from(re.is_match(&text)))
}

pub(crate) fn regex_find(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let re = compile(&arg_str(&a[0])?)?;
    let text = arg_str(&a[1])?;
    s.consume_fuel(text.len() as u64 / 64)?;
    Ok(Value::from(re.find(&text).map_or("", |m| m.as_str())))
}

pub(crate) fn regex_find_all(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    let re = compile(&arg_str(&a[0])?)?;
    let text = arg_str(&a[1])?;
    let n = arg_int(&a[2])?;
    s.consume_fuel(text.len() as u64 / 64)?;
    let found = find_all(&re, &text, n);
    check_slots(s, found.len())?;
    Ok(mk_list(
        found
            .into_iter()
            .map(|(x, y)| Value::from(&text[x..y]))
            .collect(),
    ))
}

pub(crate) fn regex_replace_all(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    let re = compile(&arg_str(&a[0])?)?;
    let text = arg_str(&a[1])?;
    let repl = arg_str(&a[2])?;
    s.consume_fuel(text.len() as u64 / 64)?;
    let count = re.find_iter(&text).count();
    check_size(
        s,
        text.len()
            .saturating_add(count.saturating_mul(repl.len().saturating_mul(2) + 16)),
    )?;
    Ok(Value::from(
        re.replace_all(&text, repl.as_ref()).into_owned(),
    ))
}

pub(crate) fn regex_replace_all_literal(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    let re = compile(&arg_str(&a[0])?)?;
    let text = arg_str(&a[1])?;
    let repl = arg_str(&a[2])?;
    s.consume_fuel(text.len() as u64 / 64)?;
    let count = re.find_iter(&text).count();
    check_size(
        s,
        text.len().saturating_add(count.saturating_mul(repl.len())),
    )?;
    Ok(Value::from(
        re.replace_all(&text, regex::NoExpand(repl.as_ref()))
            .into_owned(),
    ))
}

pub(crate) fn regex_split(s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    let re = compile(&arg_str(&a[0])?)?;
    let text = arg_str(&a[1])?;
    let n = arg_int(&a[2])?;
    s.consume_fuel(text.len() as u64 / 64)?;
    // Go's Regexp.Split.
    if n == 0 {
        return Ok(Value::from(()));
    }
    if !re.as_str().is_empty() && text.is_empty() {
        return Ok(mk_list(vec![Value::from("")]));
    }
    let matches = find_all(&re, &text, n);
    let mut parts: Vec<Value> = Vec::new();
    let (mut beg, mut end) = (0usize, 0usize);
    for (x, y) in matches {
        if n > 0 && parts.len() as i64 == n - 1 {
            break;
        }
        end = x;
        if y != 0 {
            parts.push(Value::from(&text[beg..end]));
        }
        beg = y;
    }
    if end != text.len() {
        parts.push(Value::from(&text[beg..]));
    }
    check_slots(s, parts.len())?;
    Ok(mk_list(parts))
}

pub(crate) fn regex_quote_meta(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let text = arg_str(&a[0])?;
    let mut o = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            o.push('\\');
        }
        o.push(c);
    }
    Ok(Value::from(o))
}

// ------------------------------------------------------------------------------------------
// Paths (Go's `path` package)
// ------------------------------------------------------------------------------------------

/// Go's `path.Clean`.
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

pub(crate) fn path_base(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let p = arg_str(&a[0])?;
    if p.is_empty() {
        return Ok(Value::from("."));
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return Ok(Value::from("/"));
    }
    Ok(Value::from(t.rsplit('/').next().unwrap_or(t)))
}

pub(crate) fn path_dir(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let p = arg_str(&a[0])?;
    let dir = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    Ok(Value::from(clean_path(dir)))
}

pub(crate) fn path_ext(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    let p = arg_str(&a[0])?;
    let last = p.rsplit('/').next().unwrap_or("");
    Ok(Value::from(last.rfind('.').map_or("", |i| &last[i..])))
}

pub(crate) fn path_clean(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(clean_path(&arg_str(&a[0])?)))
}

pub(crate) fn path_is_abs(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(arg_str(&a[0])?.starts_with('/')))
}
