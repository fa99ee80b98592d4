//! Go's printing rules for template values: `fmt`'s `%v`/`Sprint`/`Sprintf`, `strconv`'s float
//! formatting and `encoding/json`'s `Marshal`.
//!
//! Role: make a translated µTask template print exactly what Go prints (`map[k:v]`, `[1 2 3]`,
//! `1e+06`, `<nil>`, `{"a":"\u003c"}`). Invariants: every writer goes through [`Out`], which
//! refuses to grow past the render's byte cap (so printing a list of a thousand references to
//! one large string fails cleanly instead of allocating gigabytes); recursion over nested
//! values is bounded by [`MAX_DEPTH`]; nothing panics on any value.

use minijinja::{Error, Value};

use super::{GV, err, go_type_name, gv, list_items, map_entries_sorted, size_error};

/// Deepest nesting printed or encoded (JSON data is at most 128 deep; this only guards the
/// stack against values built by templates).
pub(crate) const MAX_DEPTH: usize = 512;

/// A string buffer with a byte cap.
#[derive(Debug)]
pub(crate) struct Out {
    s: String,
    cap: usize,
}

impl Out {
    pub(crate) fn new(cap: usize) -> Out {
        Out {
            s: String::new(),
            cap,
        }
    }

    pub(crate) fn push_str(&mut self, x: &str) -> Result<(), Error> {
        if self.s.len().saturating_add(x.len()) > self.cap {
            return Err(size_error(self.cap));
        }
        self.s.push_str(x);
        Ok(())
    }

    pub(crate) fn push(&mut self, c: char) -> Result<(), Error> {
        let mut b = [0u8; 4];
        self.push_str(c.encode_utf8(&mut b))
    }

    pub(crate) fn len(&self) -> usize {
        self.s.len()
    }

    pub(crate) fn into_string(self) -> String {
        self.s
    }
}

// ------------------------------------------------------------------------------------------
// Floats
// ------------------------------------------------------------------------------------------

/// Decimal digits of a float: value = 0.d1d2…dn × 10^dp.
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

/// Parses Rust's `{:e}` output (`"1.2345e13"`) of a non-negative float.
fn decompose(s: &str) -> Digits {
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(|b| b.is_ascii_digit()).collect();
    if d.is_empty() {
        d.push(b'0');
    }
    Digits { d, dp: exp + 1 }
}

fn trim_zeros(mut dg: Digits) -> Digits {
    while dg.d.len() > 1 && dg.d.last() == Some(&b'0') {
        dg.d.pop();
    }
    dg
}

/// Shortest digits that round-trip (like Go's `-1` precision).
fn shortest(f: f64) -> Digits {
    trim_zeros(decompose(&format!("{:e}", f.abs())))
}

/// Digits rounded to `sig` significant digits (trailing zeros kept).
fn rounded(f: f64, sig: usize) -> Digits {
    let sig = sig.clamp(1, 800);
    decompose(&format!("{:.*e}", sig - 1, f.abs()))
}

fn is_zero(dg: &Digits) -> bool {
    dg.d.iter().all(|&b| b == b'0')
}

/// `%e` layout with `prec` digits after the point.
fn layout_e(dg: &Digits, prec: usize, upper: bool) -> String {
    let mut s = String::new();
    s.push(dg.d[0] as char);
    if prec > 0 {
        s.push('.');
        for i in 1..=prec {
            s.push(*dg.d.get(i).unwrap_or(&b'0') as char);
        }
    }
    let exp = if is_zero(dg) { 0 } else { dg.dp - 1 };
    s.push(if upper { 'E' } else { 'e' });
    s.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        s.push('0');
    }
    s.push_str(&a.to_string());
    s
}

/// `%f` layout with `prec` digits after the point.
fn layout_f(dg: &Digits, prec: usize) -> String {
    let mut s = String::new();
    let digit = |i: i64| -> char {
        if i < 0 {
            '0'
        } else {
            *dg.d.get(i as usize).unwrap_or(&b'0') as char
        }
    };
    if dg.dp > 0 {
        for i in 0..dg.dp as i64 {
            s.push(digit(i));
        }
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        for i in 0..prec as i64 {
            s.push(digit(dg.dp as i64 + i));
        }
    }
    s
}

fn special(f: f64, plus_inf: bool) -> Option<String> {
    if f.is_nan() {
        Some("NaN".to_string())
    } else if f.is_infinite() {
        Some(if f > 0.0 {
            if plus_inf { "+Inf" } else { "Inf" }.to_string()
        } else {
            "-Inf".to_string()
        })
    } else {
        None
    }
}

fn sign(f: f64, s: String) -> String {
    if f.is_sign_negative() {
        format!("-{s}")
    } else {
        s
    }
}

/// Go's `%v` for a `float64` (`strconv.FormatFloat(f, 'g', -1, 64)`): `666`, `-2.3`,
/// `1e+06`, `1e+21`, `1e-05`.
pub(crate) fn float_v(f: f64) -> String {
    if let Some(s) = special(f, true) {
        return s;
    }
    let dg = shortest(f);
    let nd = dg.d.len() as i32;
    let exp = if is_zero(&dg) { 0 } else { dg.dp - 1 };
    let body = if !(-4..6).contains(&exp) {
        layout_e(&dg, (nd - 1).max(0) as usize, false)
    } else {
        layout_f(&dg, (nd - dg.dp).max(0) as usize)
    };
    sign(f, body)
}

/// Go's `encoding/json` encoding of a `float64`; `None` for NaN and infinities.
pub(crate) fn float_json(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let dg = shortest(f);
    let nd = dg.d.len() as i32;
    let a = f.abs();
    let body = if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let mut s = layout_e(&dg, (nd - 1).max(0) as usize, false);
        // Go cleans "e-07" up to "e-7".
        let b = s.as_bytes();
        let n = b.len();
        if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
            s.remove(n - 2);
        }
        s
    } else {
        layout_f(&dg, (nd - dg.dp).max(0) as usize)
    };
    Some(sign(f, body))
}

/// `%e`/`%E` with a precision (default 6).
fn float_e(f: f64, prec: usize, upper: bool) -> String {
    if let Some(s) = special(f, false) {
        return s;
    }
    sign(f, layout_e(&rounded(f, prec + 1), prec, upper))
}

/// `%f` with a precision (default 6).
fn float_f(f: f64, prec: usize) -> String {
    if let Some(s) = special(f, false) {
        return s;
    }
    let prec = prec.min(800);
    sign(f, format!("{:.*}", prec, f.abs()))
}

/// `%g`/`%G` with an optional precision.
fn float_g(f: f64, prec: Option<usize>, upper: bool) -> String {
    let Some(p) = prec else {
        let s = float_v(f);
        return if upper { s.to_uppercase() } else { s };
    };
    if let Some(s) = special(f, false) {
        return s;
    }
    let p = p.max(1);
    let dg = trim_zeros(rounded(f, p));
    let nd = dg.d.len() as i32;
    let mut eprec = p as i32;
    if eprec > nd && nd >= dg.dp {
        eprec = nd;
    }
    let exp = if is_zero(&dg) { 0 } else { dg.dp - 1 };
    let body = if exp < -4 || exp >= eprec {
        let pr = (p as i32).min(nd);
        layout_e(&dg, (pr - 1).max(0) as usize, upper)
    } else {
        let pr = if p as i32 > dg.dp { nd } else { p as i32 };
        layout_f(&dg, (pr - dg.dp).max(0) as usize)
    };
    sign(f, body)
}

// ------------------------------------------------------------------------------------------
// %v printing
// ------------------------------------------------------------------------------------------

/// Go's `%v` of a value nested anywhere (missing and nil print `<nil>`).
pub(crate) fn write_v(v: &Value, out: &mut Out, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(err("value nested too deeply to print"));
    }
    match gv(v) {
        GV::Missing | GV::Nil => out.push_str("<nil>"),
        GV::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        GV::Int(i) => out.push_str(&i.to_string()),
        GV::Float(f) => out.push_str(&float_v(f)),
        GV::Str(s) => out.push_str(s),
        GV::Bytes(b) => {
            out.push('[')?;
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push(' ')?;
                }
                out.push_str(&x.to_string())?;
            }
            out.push(']')
        }
        GV::List => {
            out.push('[')?;
            for (i, x) in list_items(v).unwrap_or_default().iter().enumerate() {
                if i > 0 {
                    out.push(' ')?;
                }
                write_v(x, out, depth + 1)?;
            }
            out.push(']')
        }
        GV::Map => {
            out.push_str("map[")?;
            for (i, (k, x)) in map_entries_sorted(v).unwrap_or_default().iter().enumerate() {
                if i > 0 {
                    out.push(' ')?;
                }
                out.push_str(k)?;
                out.push(':')?;
                write_v(x, out, depth + 1)?;
            }
            out.push(']')
        }
        GV::Time(t) => out.push_str(&t.go_string()),
        GV::Other => out.push_str(&v.to_string()),
    }
}

/// `%v` of a value without a size cap, for short values (numbers, keys, messages).
pub(crate) fn sprint_plain(v: &Value) -> String {
    let mut out = Out::new(usize::MAX);
    match write_v(v, &mut out, 0) {
        Ok(()) => out.into_string(),
        Err(_) => String::from("<?>"),
    }
}

/// `fmt.Sprint`: spaces between operands when neither is a string.
pub(crate) fn sprint(args: &[Value], out: &mut Out) -> Result<(), Error> {
    let mut prev_string = true;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(gv(a), GV::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ')?;
        }
        write_v(a, out, 0)?;
        prev_string = is_string;
    }
    Ok(())
}

/// `fmt.Sprintln`: spaces between all operands, newline at the end.
pub(crate) fn sprintln(args: &[Value], out: &mut Out) -> Result<(), Error> {
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ')?;
        }
        write_v(a, out, 0)?;
    }
    out.push('\n')
}

// ------------------------------------------------------------------------------------------
// strconv.Quote
// ------------------------------------------------------------------------------------------

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\x07' => o.push_str("\\a"),
            '\x08' => o.push_str("\\b"),
            '\x0c' => o.push_str("\\f"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\x0b' => o.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                o.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    o.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    o.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

// ------------------------------------------------------------------------------------------
// Printf
// ------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(out: &mut Out, body: &str, spec: &Spec, numeric: bool) -> Result<(), Error> {
    let n = body.chars().count();
    let w = spec.width.unwrap_or(0);
    if n >= w {
        return out.push_str(body);
    }
    let fill = w - n;
    if fill > out.cap.saturating_sub(out.len()) {
        return Err(size_error(out.cap));
    }
    if spec.minus {
        out.push_str(body)?;
        out.push_str(&" ".repeat(fill))
    } else if spec.zero && numeric {
        // Zero padding goes after the sign.
        let (sgn, rest) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (c.to_string(), &body[1..]),
            _ => (String::new(), body),
        };
        out.push_str(&sgn)?;
        out.push_str(&"0".repeat(fill))?;
        out.push_str(rest)
    } else {
        out.push_str(&" ".repeat(fill))?;
        out.push_str(body)
    }
}

fn bad_verb(out: &mut Out, verb: char, v: &Value) -> Result<(), Error> {
    if matches!(gv(v), GV::Missing | GV::Nil) {
        return out.push_str(&format!("%!{verb}(<nil>)"));
    }
    let mut inner = Out::new(out.cap);
    write_v(v, &mut inner, 0)?;
    out.push_str(&format!(
        "%!{verb}({}={})",
        go_type_name(v),
        inner.into_string()
    ))
}

fn with_sign(s: String, spec: &Spec, negative: bool) -> String {
    if negative {
        s
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn fmt_int(i: i128, verb: char, spec: &Spec) -> Option<String> {
    let neg = i < 0;
    let a = i.unsigned_abs();
    let digits = match verb {
        'd' | 'v' => a.to_string(),
        'b' => format!("{a:b}"),
        'o' => format!("{a:o}"),
        'O' => format!("0o{a:o}"),
        'x' => format!("{a:x}"),
        'X' => format!("{a:X}"),
        'c' => {
            return Some(
                char::from_u32(u32::try_from(i).ok()?)
                    .unwrap_or('\u{FFFD}')
                    .to_string(),
            );
        }
        'q' => {
            let c = char::from_u32(u32::try_from(i).ok()?).unwrap_or('\u{FFFD}');
            return Some(format!("'{c}'"));
        }
        'U' => return Some(format!("U+{:04X}", a)),
        _ => return None,
    };
    let mut digits = digits;
    if let Some(p) = spec.prec {
        while digits.len() < p.min(4096) {
            digits.insert(0, '0');
        }
    }
    if spec.sharp {
        match verb {
            'x' => digits.insert_str(0, "0x"),
            'X' => digits.insert_str(0, "0X"),
            'o' => digits.insert(0, '0'),
            'b' => digits.insert_str(0, "0b"),
            _ => {}
        }
    }
    let s = if neg { format!("-{digits}") } else { digits };
    Some(with_sign(s, spec, neg))
}

fn fmt_float(f: f64, verb: char, spec: &Spec) -> Option<String> {
    let s = match verb {
        'v' | 'g' => float_g(f, spec.prec, false),
        'G' => float_g(f, spec.prec, true),
        'e' => float_e(f, spec.prec.unwrap_or(6), false),
        'E' => float_e(f, spec.prec.unwrap_or(6), true),
        'f' | 'F' => float_f(f, spec.prec.unwrap_or(6)),
        _ => return None,
    };
    let neg = s.starts_with('-');
    Some(with_sign(s, spec, neg))
}

fn fmt_str(s: &str, verb: char, spec: &Spec) -> Option<String> {
    let s: String = match spec.prec {
        Some(p) if matches!(verb, 's' | 'v' | 'q') => s.chars().take(p).collect(),
        _ => s.to_string(),
    };
    Some(match verb {
        's' | 'v' => s,
        'q' => {
            if spec.sharp && !s.contains('`') && !s.chars().any(|c| c.is_control() && c != '\t') {
                format!("`{s}`")
            } else {
                go_quote(&s)
            }
        }
        'x' => s.bytes().map(|b| format!("{b:02x}")).collect(),
        'X' => s.bytes().map(|b| format!("{b:02X}")).collect(),
        _ => return None,
    })
}

fn format_one(out: &mut Out, verb: char, spec: &Spec, v: &Value) -> Result<(), Error> {
    if verb == 'T' {
        return pad(out, go_type_name(v), spec, false);
    }
    let body = match gv(v) {
        GV::Bool(b) if matches!(verb, 't' | 'v') => Some(b.to_string()),
        GV::Int(i) => match verb {
            // µTask's numbers are `json.Number`s, which print as text with %s and %q.
            's' => Some(i.to_string()),
            'q' => Some(go_quote(&i.to_string())),
            _ => fmt_int(i, verb, spec),
        },
        GV::Float(f) => match verb {
            's' => Some(float_v(f)),
            _ => fmt_float(f, verb, spec),
        },
        GV::Str(s) => fmt_str(s, verb, spec),
        GV::Missing | GV::Nil if verb == 'v' => Some("<nil>".to_string()),
        GV::List | GV::Map | GV::Bytes(_) | GV::Time(_) | GV::Other
            if matches!(verb, 'v' | 's') =>
        {
            let mut inner = Out::new(out.cap);
            write_v(v, &mut inner, 0)?;
            Some(inner.into_string())
        }
        _ => None,
    };
    match body {
        Some(b) => {
            let numeric = matches!(gv(v), GV::Int(_) | GV::Float(_));
            pad(out, &b, spec, numeric)
        }
        None => bad_verb(out, verb, v),
    }
}

/// Go's `fmt.Sprintf` for the common verbs (`%v %s %d %q %f %e %g %t %x %X %o %b %c %U %T
/// %%`), flags `+ - # 0 space`, width and precision (numbers or `*`).
pub(crate) fn sprintf(format: &str, args: &[Value], out: &mut Out) -> Result<(), Error> {
    let mut chars = format.chars().peekable();
    let mut argi = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c)?;
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        // Width.
        if chars.peek() == Some(&'*') {
            chars.next();
            if let Some(a) = args.get(argi) {
                argi += 1;
                match gv(a) {
                    GV::Int(i) => {
                        if i < 0 {
                            spec.minus = true;
                        }
                        spec.width = Some(i.unsigned_abs().min(1 << 24) as usize);
                    }
                    _ => out.push_str("%!(BADWIDTH)")?,
                }
            } else {
                out.push_str("%!(BADWIDTH)")?;
            }
        } else {
            let mut w = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() {
                    w.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if !w.is_empty() {
                spec.width = Some(w.parse::<usize>().unwrap_or(usize::MAX).min(1 << 24));
            }
        }
        // Precision.
        if chars.peek() == Some(&'.') {
            chars.next();
            if chars.peek() == Some(&'*') {
                chars.next();
                match args.get(argi).map(gv) {
                    Some(GV::Int(i)) if i >= 0 => {
                        spec.prec = Some(i.min(1 << 24) as usize);
                        argi += 1;
                    }
                    _ => {
                        argi += 1;
                        out.push_str("%!(BADPREC)")?;
                    }
                }
            } else {
                let mut p = String::new();
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_digit() {
                        p.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                spec.prec = Some(p.parse::<usize>().unwrap_or(0).min(1 << 24));
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)")?;
            break;
        };
        if verb == '%' {
            out.push('%')?;
            continue;
        }
        if verb == '[' {
            out.push_str("%!(BADINDEX)")?;
            continue;
        }
        match args.get(argi) {
            Some(v) => {
                argi += 1;
                format_one(out, verb, &spec, v)?;
            }
            None => out.push_str(&format!("%!{verb}(MISSING)"))?,
        }
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ")?;
        for (i, v) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ")?;
            }
            out.push_str(go_type_name(v))?;
            out.push('=')?;
            write_v(v, out, 0)?;
        }
        out.push(')')?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// encoding/json
// ------------------------------------------------------------------------------------------

/// Options of Go's JSON encoder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonOpts {
    /// Escape `<`, `>`, `&` (json.Marshal does, sprig's toRawJson does not).
    pub(crate) escape_html: bool,
    /// `MarshalIndent(v, "", "  ")`.
    pub(crate) pretty: bool,
}

fn json_string(s: &str, opts: JsonOpts, out: &mut Out) -> Result<(), Error> {
    out.push('"')?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<String> = match c {
            '"' => Some("\\\"".into()),
            '\\' => Some("\\\\".into()),
            '\n' => Some("\\n".into()),
            '\r' => Some("\\r".into()),
            '\t' => Some("\\t".into()),
            '\x08' => Some("\\b".into()),
            '\x0c' => Some("\\f".into()),
            c if (c as u32) < 0x20 => Some(format!("\\u{:04x}", c as u32)),
            '<' | '>' | '&' if opts.escape_html => Some(format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => Some(format!("\\u{:04x}", c as u32)),
            _ => None,
        };
        if let Some(e) = esc {
            out.push_str(&s[start..i])?;
            out.push_str(&e)?;
            start = i + c.len_utf8();
        }
    }
    out.push_str(&s[start..])?;
    out.push('"')
}

fn newline(out: &mut Out, opts: JsonOpts, depth: usize) -> Result<(), Error> {
    if opts.pretty {
        out.push('\n')?;
        for _ in 0..depth {
            out.push_str("  ")?;
        }
    }
    Ok(())
}

/// Go's `json.Marshal` of a value (map keys sorted). Fails on NaN/Inf like Go.
pub(crate) fn write_json(
    v: &Value,
    out: &mut Out,
    opts: JsonOpts,
    depth: usize,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(err("json: value nested too deeply"));
    }
    match gv(v) {
        GV::Missing | GV::Nil => out.push_str("null"),
        GV::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        GV::Int(i) => out.push_str(&i.to_string()),
        GV::Float(f) => match float_json(f) {
            Some(s) => out.push_str(&s),
            None => Err(err(format!("json: unsupported value: {}", float_v(f)))),
        },
        GV::Str(s) => json_string(s, opts, out),
        GV::Bytes(b) => {
            use base64::Engine as _;
            json_string(
                &base64::engine::general_purpose::STANDARD.encode(b),
                opts,
                out,
            )
        }
        GV::Time(t) => json_string(&t.rfc3339_nano(), opts, out),
        GV::List => {
            let items = list_items(v).unwrap_or_default();
            out.push('[')?;
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',')?;
                }
                newline(out, opts, depth + 1)?;
                write_json(x, out, opts, depth + 1)?;
            }
            if !items.is_empty() {
                newline(out, opts, depth)?;
            }
            out.push(']')
        }
        GV::Map => {
            let entries = map_entries_sorted(v).unwrap_or_default();
            out.push('{')?;
            for (i, (k, x)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',')?;
                }
                newline(out, opts, depth + 1)?;
                json_string(k, opts, out)?;
                out.push(':')?;
                if opts.pretty {
                    out.push(' ')?;
                }
                write_json(x, out, opts, depth + 1)?;
            }
            if !entries.is_empty() {
                newline(out, opts, depth)?;
            }
            out.push('}')
        }
        GV::Other => json_string(&v.to_string(), opts, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go_v() {
        let cases = [
            (666.0, "666"),
            (-2.3, "-2.3"),
            (12.0, "12"),
            (1e21, "1e+21"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1.5, "1.5"),
            (12345678912345.0, "1.2345678912345e+13"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (f, want) in cases {
            assert_eq!(float_v(f), want, "{f}");
        }
    }

    #[test]
    fn floats_encode_like_go_json() {
        let cases = [
            (666.0, "666"),
            (12345678912345.0, "12345678912345"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (0.000001, "0.000001"),
            (0.0000001, "1e-7"),
            (1.5e-10, "1.5e-10"),
            (-2.3, "-2.3"),
            (0.0, "0"),
        ];
        for (f, want) in cases {
            assert_eq!(float_json(f).as_deref(), Some(want), "{f}");
        }
        assert_eq!(float_json(f64::NAN), None);
    }

    #[test]
    fn printf_verbs() {
        let run = |f: &str, args: Vec<Value>| {
            let mut o = Out::new(1 << 20);
            sprintf(f, &args, &mut o).unwrap();
            o.into_string()
        };
        assert_eq!(run("%s-%d", vec!["a".into(), 5.into()]), "a-5");
        assert_eq!(
            run("%5.2f|%-4d|%04d", vec![2.34567.into(), 7.into(), 42.into()]),
            " 2.35|7   |0042"
        );
        assert_eq!(
            run(
                "%q %v %t %%",
                vec!["x\"y".into(), Value::from(()), true.into()]
            ),
            "\"x\\\"y\" <nil> true %"
        );
        assert_eq!(
            run(
                "%x %X %o %b %c",
                vec![255.into(), 255.into(), 8.into(), 5.into(), 65.into()]
            ),
            "ff FF 10 101 A"
        );
        assert_eq!(
            run(
                "%e %g %.3g %g",
                vec![
                    1234.5678.into(),
                    1e6.into(),
                    2.34567.into(),
                    100000.0.into()
                ]
            ),
            "1.234568e+03 1e+06 2.35 100000"
        );
        assert_eq!(run("%d", vec![]), "%!d(MISSING)");
        assert_eq!(run("%d", vec!["x".into()]), "%!d(string=x)");
        assert_eq!(run("a", vec![1.into()]), "a%!(EXTRA int=1)");
        assert_eq!(run("%", vec![]), "%!(NOVERB)");
        assert_eq!(
            run("%*d|%.*f", vec![4.into(), 1.into(), 2.into(), 2.5.into()]),
            "   1|2.50"
        );
        assert_eq!(
            run("%+d % d %T", vec![3.into(), 3.into(), 1.5.into()]),
            "+3  3 float64"
        );
        assert_eq!(
            run("%.2s|%6s", vec!["hello".into(), "ab".into()]),
            "he|    ab"
        );
    }

    #[test]
    fn quote_and_json_strings() {
        assert_eq!(go_quote("a\tb\u{1}\"é"), "\"a\\tb\\x01\\\"é\"");
        let mut o = Out::new(1 << 10);
        json_string(
            "<a&b>\t\u{8}\u{2028}\u{1}",
            JsonOpts {
                escape_html: true,
                pretty: false,
            },
            &mut o,
        )
        .unwrap();
        assert_eq!(
            o.into_string(),
            "\"\\u003ca\\u0026b\\u003e\\t\\b\\u2028\\u0001\""
        );
    }

    #[test]
    fn out_enforces_cap() {
        let mut o = Out::new(4);
        assert!(o.push_str("abcd").is_ok());
        assert!(o.push_str("e").is_err());
    }
}
