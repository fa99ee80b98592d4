//! µTask's Go `text/template` dialect, translated to minijinja (Jinja) source at load time.
//!
//! Role: [`detect`] tells which syntax a template's strings use and [`translate`] turns a Go
//! template (`{{.input.name}}`, `{{ .step.x.output | toJson }}`, `{{ if eq .a "x" }}…{{ end }}`)
//! into Jinja that, rendered by [`super::render::Renderer`], prints exactly what Go prints.
//!
//! How the translation works: a real lexer and recursive-descent parser for Go template
//! actions (text, `{{- -}}` trim markers, comments, pipelines, commands, field chains,
//! variables, literals, parenthesised pipelines, `if`/`else if`/`else`, `range`, `with`,
//! `break`/`continue`), then code generation:
//! - a field chain `.a.b` becomes `__get(DOT, "a", "b")` — Go's lookup (missing keys stay
//!   missing, keys like `my-step`, `items` or `keys` are plain strings); the top-level dot and
//!   `$` are the context variable `__root`;
//! - a Go call `f x y` becomes `go_f(x, y)`; a pipeline `a | f x` passes `a` as the LAST
//!   argument: `go_f(x, a)`; `and`/`or` short-circuit like Go ≥ 1.18 through `{% if %}`
//!   statements on temporaries; `set`/`unset`/`merge` on a `$variable` re-bind the variable
//!   (sprig mutates maps in place; our values are immutable);
//! - Go variables and temporaries live in one namespace `__v` with a unique slot per
//!   declaration (`$x` → `__v.v3`), which gives Go's lexical scoping and lets `$x = …` inside a
//!   `range` update the outer variable;
//! - every printed action goes through `__print`, Go's printing (`<no value>`, `map[k:v]`…);
//!   `if`/`with` test with `__truth` (Go's truth); `range` iterates `__range(x)` pairs;
//! - text is copied, with the `{` of any `{{`, `{%`, `{#` (or a trailing `{`) emitted as a
//!   Jinja string so Jinja never sees a delimiter that was not there in Go;
//! - before each action a comment `{#@LINE:COL action#}` records where it came from, so
//!   runtime errors name the Go position (see [`source_position`]).
//!
//! Not supported (clear [`TranslateError`]): `define`, `template`, `block`; complex numbers;
//! functions that are not in the library (`env`, `expandenv`, … are refused on purpose).
//!
//! Invariants: translation is pure and total — any input gives `Ok` or a positioned error,
//! never a panic; nesting (parentheses and blocks) is bounded by [`MAX_NESTING`] so neither
//! this parser nor minijinja's can overflow its stack; the output only calls functions
//! registered by [`super::funcs::register`].

use std::fmt::Write as _;

use super::funcs;

pub use super::model::Dialect;

/// Deepest nesting of parentheses and blocks accepted in a Go template.
pub const MAX_NESTING: usize = 40;

/// A Go template that cannot be translated, with its position (1-based line and column,
/// columns counted in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: tmpl:{line}:{column}: {message}")]
pub struct TranslateError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

// ------------------------------------------------------------------------------------------
// Detection
// ------------------------------------------------------------------------------------------

const JINJA_OPERATORS: &[&str] = &["and", "or", "not", "in", "is", "if", "else"];
const GO_ONLY_KEYWORDS: &[&str] = &[
    "end", "range", "with", "else", "define", "template", "block", "break", "continue",
];

/// Detects the dialect of a template's strings.
///
/// The rule: the template is µTask's dialect (`Utask`) as soon as one `{{ … }}` action in any
/// string looks like Go — after an optional `-` trim marker and spaces, the action starts
/// with `.`, `$`, a backtick or a `/*` comment; or its first word is a Go-only keyword
/// (`end`, `range`, `with`, `else`, `define`, `template`, `block`, `break`, `continue`); or
/// it contains, outside string literals, a backtick, a `$variable`, or a `.field` that starts
/// an operand (after a space, `(` or `|`); or a word is followed by a space and an operand
/// (`eval "x"`, `default 0 .x`, `| f x`), which Jinja never allows (its keyword operators
/// `and or not in is if else` excepted). Otherwise the template is `Jinja`, including when it
/// has no action at all.
pub fn detect<'a>(texts: impl IntoIterator<Item = &'a str>) -> Dialect {
    for text in texts {
        let mut rest = text;
        while let Some(i) = rest.find("{{") {
            let after = &rest[i + 2..];
            let end = after.find("}}").unwrap_or(after.len());
            if action_looks_go(&after[..end]) {
                return Dialect::Utask;
            }
            rest = &after[end..];
        }
    }
    Dialect::Jinja
}

fn action_looks_go(action: &str) -> bool {
    let a = action.strip_prefix('-').unwrap_or(action);
    let a = a.strip_suffix('-').unwrap_or(a).trim();
    if a.starts_with('.') || a.starts_with('$') || a.starts_with('`') || a.starts_with("/*") {
        return true;
    }
    // Tokenize roughly, outside string literals.
    let mut words: Vec<(String, bool)> = Vec::new(); // (word, followed by space)
    let mut prev_sep = true; // start, space, '(' or '|'
    let mut chars = a.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' | '$' => return true,
            '"' | '\'' => {
                let q = c;
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == q {
                        break;
                    }
                }
                words.push(("\"".into(), false));
                prev_sep = false;
            }
            '.' if prev_sep => {
                if chars.peek().is_none_or(|n| {
                    n.is_alphabetic() || *n == '_' || n.is_whitespace() || *n == ')'
                }) {
                    return true;
                }
                prev_sep = false;
            }
            c if c.is_whitespace() => {
                if let Some(last) = words.last_mut() {
                    last.1 = true;
                }
                prev_sep = true;
            }
            '(' | '|' => {
                words.push((c.to_string(), false));
                prev_sep = true;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut w = String::from(c);
                while let Some(&d) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' {
                        w.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                words.push((w, false));
                prev_sep = false;
            }
            _ => {
                words.push((c.to_string(), false));
                prev_sep = false;
            }
        }
    }
    if let Some((first, spaced)) = words.first()
        && GO_ONLY_KEYWORDS.contains(&first.as_str())
        && (*spaced || words.len() == 1)
    {
        return true;
    }
    // A word, a space, then an operand: Go's call syntax.
    for pair in words.windows(2) {
        let (w, spaced) = &pair[0];
        let (next, _) = &pair[1];
        let is_word = w
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_');
        if !is_word || !spaced || JINJA_OPERATORS.contains(&w.as_str()) {
            continue;
        }
        let starts_operand = next == "\""
            || next == "("
            || next.chars().next().is_some_and(|c| {
                c.is_ascii_digit()
                    || ((c.is_alphabetic() || c == '_')
                        && !JINJA_OPERATORS.contains(&next.as_str()))
            });
        if starts_operand {
            return true;
        }
    }
    false
}

// ------------------------------------------------------------------------------------------
// Lexer
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum T {
    Text(String),
    /// `{{`; `end` is the byte offset just after the matching `}}`.
    Left,
    Right,
    Space,
    Ident(String),
    Field(String),
    Dot,
    Var(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Debug, Clone)]
struct Tok {
    t: T,
    pos: usize,
    end: usize,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn describe(t: &T) -> String {
    match t {
        T::Text(_) => "text".into(),
        T::Left => "\"{{\"".into(),
        T::Right => "\"}}\"".into(),
        T::Space => "space".into(),
        T::Ident(s) => format!("<{s}>"),
        T::Field(s) => format!("<.{s}>"),
        T::Dot => "<.>".into(),
        T::Var(s) => format!("<${s}>"),
        T::Str(_) => "string".into(),
        T::Int(i) => format!("<{i}>"),
        T::Float(f) => format!("<{f}>"),
        T::Bool(b) => format!("<{b}>"),
        T::Nil => "<nil>".into(),
        T::LParen => "\"(\"".into(),
        T::RParen => "\")\"".into(),
        T::Pipe => "\"|\"".into(),
        T::Declare => "\":=\"".into(),
        T::Assign => "\"=\"".into(),
        T::Comma => "\",\"".into(),
        T::Eof => "EOF".into(),
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    toks: Vec<Tok>,
    paren: i64,
}

type LexResult<T> = Result<T, (usize, String)>;

impl<'a> Lexer<'a> {
    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn char_at(&self, p: usize) -> Option<char> {
        self.src.get(p..).and_then(|s| s.chars().next())
    }

    fn push(&mut self, t: T, pos: usize) {
        self.toks.push(Tok {
            t,
            pos,
            end: self.pos,
        });
    }

    fn skip_spaces_after_trim(&mut self) {
        while let Some(c) = self.peek_char() {
            if is_space(c) {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn lex(mut self) -> LexResult<Vec<Tok>> {
        loop {
            let Some(i) = self.src[self.pos..].find("{{").map(|i| i + self.pos) else {
                let text = &self.src[self.pos..];
                if !text.is_empty() {
                    let p = self.pos;
                    self.pos = self.src.len();
                    self.push(T::Text(text.to_string()), p);
                }
                let p = self.pos;
                self.push(T::Eof, p);
                return Ok(self.toks);
            };
            let after = i + 2;
            let trim_left =
                self.src[after..].starts_with('-') && self.char_at(after + 1).is_some_and(is_space);
            let mut text = &self.src[self.pos..i];
            if trim_left {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                let p = self.pos;
                self.toks.push(Tok {
                    t: T::Text(text.to_string()),
                    pos: p,
                    end: i,
                });
            }
            // Comment: `{{/*` or `{{- /*`.
            let comment_at = if trim_left {
                after + 1 + self.char_at(after + 1).map_or(1, char::len_utf8)
            } else {
                after
            };
            if self.src[comment_at..].starts_with("/*") {
                let Some(close) = self.src[comment_at + 2..].find("*/") else {
                    return Err((i, "unclosed comment".into()));
                };
                let after_c = comment_at + 2 + close + 2;
                if self.src[after_c..].starts_with("}}") {
                    self.pos = after_c + 2;
                } else if self.char_at(after_c).is_some_and(is_space)
                    && self.src[after_c + 1..].starts_with("-}}")
                {
                    self.pos = after_c + 4;
                    self.skip_spaces_after_trim();
                } else {
                    return Err((i, "comment ends before closing delimiter".into()));
                }
                continue;
            }
            self.pos = if trim_left { after + 1 } else { after };
            let left_index = self.toks.len();
            self.toks.push(Tok {
                t: T::Left,
                pos: i,
                end: i,
            });
            self.lex_action(i)?;
            let end = self.pos;
            self.toks[left_index].end = end;
        }
    }

    fn lex_action(&mut self, start: usize) -> LexResult<()> {
        self.paren = 0;
        loop {
            let rest = &self.src[self.pos..];
            let at_trim_right =
                rest.chars().next().is_some_and(is_space) && rest[1..].starts_with("-}}");
            if rest.starts_with("}}") || at_trim_right {
                if self.paren > 0 {
                    return Err((self.pos, "unclosed left paren".into()));
                }
                let p = self.pos;
                self.pos += if at_trim_right { 4 } else { 2 };
                self.push(T::Right, p);
                if at_trim_right {
                    self.skip_spaces_after_trim();
                }
                return Ok(());
            }
            let Some(c) = self.peek_char() else {
                return Err((start, "unclosed action".into()));
            };
            let p = self.pos;
            match c {
                c if is_space(c) => {
                    while let Some(d) = self.peek_char() {
                        let r = &self.src[self.pos..];
                        if !is_space(d) || r[1..].starts_with("-}}") {
                            break;
                        }
                        self.pos += d.len_utf8();
                    }
                    if self.pos > p {
                        self.push(T::Space, p);
                    }
                }
                '=' => {
                    self.pos += 1;
                    self.push(T::Assign, p);
                }
                ':' => {
                    if self.src[p..].starts_with(":=") {
                        self.pos += 2;
                        self.push(T::Declare, p);
                    } else {
                        return Err((p, "expected :=".into()));
                    }
                }
                '|' => {
                    self.pos += 1;
                    self.push(T::Pipe, p);
                }
                '(' => {
                    self.pos += 1;
                    self.paren += 1;
                    self.push(T::LParen, p);
                }
                ')' => {
                    self.pos += 1;
                    self.paren -= 1;
                    if self.paren < 0 {
                        return Err((p, "unexpected right paren".into()));
                    }
                    self.push(T::RParen, p);
                }
                ',' => {
                    self.pos += 1;
                    self.push(T::Comma, p);
                }
                '"' => {
                    let s = self.lex_quoted()?;
                    self.push(T::Str(s), p);
                }
                '`' => {
                    let Some(close) = self.src[p + 1..].find('`') else {
                        return Err((p, "unterminated raw quoted string".into()));
                    };
                    let raw = self.src[p + 1..p + 1 + close].replace('\r', "");
                    self.pos = p + 1 + close + 1;
                    self.push(T::Str(raw), p);
                }
                '\'' => {
                    let v = self.lex_char()?;
                    self.push(T::Int(v), p);
                }
                '$' => {
                    self.pos += 1;
                    let name = self.alnum_run();
                    self.check_terminator()?;
                    self.push(T::Var(name), p);
                }
                '.' => {
                    let next = self.char_at(p + 1);
                    if next.is_some_and(|n| n.is_ascii_digit()) {
                        self.lex_number()?;
                    } else if next.is_some_and(is_alnum) {
                        self.pos += 1;
                        let name = self.alnum_run();
                        self.check_terminator()?;
                        self.push(T::Field(name), p);
                    } else {
                        self.pos += 1;
                        self.push(T::Dot, p);
                    }
                }
                '+' | '-' | '0'..='9' => self.lex_number()?,
                c if c == '_' || c.is_alphabetic() => {
                    let word = self.alnum_run();
                    self.check_terminator()?;
                    let t = match word.as_str() {
                        "true" => T::Bool(true),
                        "false" => T::Bool(false),
                        "nil" => T::Nil,
                        _ => T::Ident(word),
                    };
                    self.push(t, p);
                }
                c => {
                    return Err((p, format!("bad character U+{:04X} {c:?}", c as u32)));
                }
            }
        }
    }

    fn alnum_run(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek_char() {
            if is_alnum(c) {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        self.src[start..self.pos].to_string()
    }

    fn check_terminator(&self) -> LexResult<()> {
        match self.peek_char() {
            None => Ok(()),
            Some(c) if is_space(c) || matches!(c, '.' | ',' | '|' | ':' | ')' | '(') => Ok(()),
            Some(_) if self.src[self.pos..].starts_with("}}") => Ok(()),
            Some(c) => Err((self.pos, format!("bad character U+{:04X} {c:?}", c as u32))),
        }
    }

    fn lex_quoted(&mut self) -> LexResult<String> {
        let start = self.pos;
        let mut p = start + 1;
        loop {
            let Some(c) = self.char_at(p) else {
                return Err((start, "unterminated quoted string".into()));
            };
            match c {
                '\\' => match self.char_at(p + 1) {
                    None | Some('\n') => {
                        return Err((start, "unterminated quoted string".into()));
                    }
                    Some(d) => p += 1 + d.len_utf8(),
                },
                '\n' => return Err((start, "unterminated quoted string".into())),
                '"' => break,
                c => p += c.len_utf8(),
            }
        }
        self.pos = p + 1;
        unquote(&self.src[start + 1..p], '"').map_err(|m| (start, m))
    }

    fn lex_char(&mut self) -> LexResult<i64> {
        let start = self.pos;
        let mut p = start + 1;
        loop {
            let Some(c) = self.char_at(p) else {
                return Err((start, "unterminated character constant".into()));
            };
            match c {
                '\\' => match self.char_at(p + 1) {
                    None | Some('\n') => {
                        return Err((start, "unterminated character constant".into()));
                    }
                    Some(d) => p += 1 + d.len_utf8(),
                },
                '\n' => return Err((start, "unterminated character constant".into())),
                '\'' => break,
                c => p += c.len_utf8(),
            }
        }
        self.pos = p + 1;
        let s = unquote(&self.src[start + 1..p], '\'').map_err(|m| (start, m))?;
        let mut it = s.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => Ok(c as i64),
            _ => Err((
                start,
                format!("malformed character constant: {}", &self.src[start..=p]),
            )),
        }
    }

    /// Go's `scanNumber`, then parsing of the literal.
    fn lex_number(&mut self) -> LexResult<()> {
        let start = self.pos;
        let b = self.src.as_bytes();
        let mut p = self.pos;
        let accept = |p: &mut usize, set: &[u8]| -> bool {
            if *p < b.len() && set.contains(&b[*p]) {
                *p += 1;
                true
            } else {
                false
            }
        };
        accept(&mut p, b"+-");
        let mut digits: &[u8] = b"0123456789_";
        if accept(&mut p, b"0") {
            if accept(&mut p, b"xX") {
                digits = b"0123456789abcdefABCDEF_";
            } else if accept(&mut p, b"oO") {
                digits = b"01234567_";
            } else if accept(&mut p, b"bB") {
                digits = b"01_";
            }
        }
        while accept(&mut p, digits) {}
        if accept(&mut p, b".") {
            while accept(&mut p, digits) {}
        }
        if digits.len() == 11 && accept(&mut p, b"eE") {
            accept(&mut p, b"+-");
            while accept(&mut p, b"0123456789_") {}
        }
        if digits.len() == 23 && accept(&mut p, b"pP") {
            accept(&mut p, b"+-");
            while accept(&mut p, b"0123456789_") {}
        }
        accept(&mut p, b"i");
        let text = &self.src[start..p];
        self.pos = p;
        if self.peek_char().is_some_and(is_alnum) {
            let bad_end = p + self.peek_char().map_or(0, char::len_utf8);
            return Err((
                start,
                format!("bad number syntax: {:?}", &self.src[start..bad_end]),
            ));
        }
        let t = parse_number(text).map_err(|m| (start, m))?;
        self.push(t, start);
        Ok(())
    }
}

/// Go's `strconv.Unquote` body decoding (`q` is the quote character).
fn unquote(body: &str, q: char) -> Result<String, String> {
    let mut bytes: Vec<u8> = Vec::with_capacity(body.len());
    let mut it = body.chars().peekable();
    let bad = || "invalid syntax in quoted string".to_string();
    let hex = |it: &mut std::iter::Peekable<std::str::Chars>, n: usize| -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..n {
            let d = it.next().and_then(|c| c.to_digit(16)).ok_or_else(bad)?;
            v = v * 16 + d;
        }
        Ok(v)
    };
    while let Some(c) = it.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(e) = it.next() else {
            return Err(bad());
        };
        match e {
            'a' => bytes.push(7),
            'b' => bytes.push(8),
            'f' => bytes.push(12),
            'n' => bytes.push(b'\n'),
            'r' => bytes.push(b'\r'),
            't' => bytes.push(b'\t'),
            'v' => bytes.push(11),
            '\\' => bytes.push(b'\\'),
            '"' if q == '"' => bytes.push(b'"'),
            '\'' if q == '\'' => bytes.push(b'\''),
            'x' => bytes.push(hex(&mut it, 2)? as u8),
            'u' | 'U' => {
                let v = hex(&mut it, if e == 'u' { 4 } else { 8 })?;
                let ch = char::from_u32(v).ok_or_else(bad)?;
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = it.next().and_then(|c| c.to_digit(8)).ok_or_else(bad)?;
                    v = v * 8 + d;
                }
                if v > 255 {
                    return Err(bad());
                }
                bytes.push(v as u8);
            }
            _ => return Err(bad()),
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn parse_number(text: &str) -> Result<T, String> {
    if text.ends_with('i') {
        return Err(format!("complex number {text:?} is not supported"));
    }
    if let Some(i) = funcs::parse_go_int(text) {
        return Ok(T::Int(i as i64));
    }
    let body = text.trim_start_matches(['+', '-']);
    let lower = body.to_ascii_lowercase();
    let is_hex = lower.starts_with("0x");
    let looks_float = if is_hex {
        lower.contains('p')
    } else {
        lower.contains(['.', 'e'])
    };
    if !looks_float
        && !lower.is_empty()
        && lower
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '_' || c == 'x' || c == 'o' || c == 'b')
    {
        // A well-formed integer that does not fit: Go says it overflows int.
        let clean: String = lower.chars().filter(|&c| c != '_').collect();
        let digits_ok = if is_hex {
            clean.len() > 2
        } else {
            clean.chars().all(|c| c.is_ascii_digit())
        };
        if digits_ok
            && !(clean.starts_with('0') && clean.len() > 1 && !is_hex && clean.contains(['8', '9']))
        {
            return Err(format!("{text} overflows int"));
        }
    }
    if is_hex {
        return Err(format!("hexadecimal float {text:?} is not supported"));
    }
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    match clean.parse::<f64>() {
        Ok(f) if f.is_finite() => {
            if !lower.contains(['.', 'e']) && f.fract() == 0.0 && f.abs() < 9.2e18 {
                Ok(T::Int(f as i64))
            } else {
                Ok(T::Float(f))
            }
        }
        Ok(_) => Err(format!("number {text} is out of range")),
        Err(_) => Err(format!("bad number syntax: {text:?}")),
    }
}

// ------------------------------------------------------------------------------------------
// Parser and code generation
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Term {
    Dot,
    Var(String),
    Field(String),
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Paren(Box<Pipeline>),
}

#[derive(Debug, Clone)]
struct Operand {
    term: Term,
    chain: Vec<String>,
    pos: usize,
}

#[derive(Debug, Clone)]
struct Command {
    args: Vec<Operand>,
    pos: usize,
}

#[derive(Debug, Clone)]
struct Pipeline {
    decl: Vec<(String, usize)>,
    is_assign: bool,
    cmds: Vec<Command>,
    pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ElseKind {
    Plain,
    If,
    With,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ListEnd {
    End,
    Else(ElseKind, usize),
    Eof,
}

struct Gen<'a> {
    src: &'a str,
    toks: Vec<Tok>,
    i: usize,
    scopes: Vec<Vec<(String, String)>>,
    next_id: usize,
    uses_ns: bool,
    depth: usize,
    line_starts: Vec<usize>,
    /// Position of the last `{{` read (for errors about a stray `{{end}}`).
    last_left: usize,
}

type GResult<T> = Result<T, TranslateError>;

/// Line and column (1-based, column in characters) of byte offset `pos` in `src`.
fn line_col(src: &str, line_starts: &[usize], pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let line = match line_starts.binary_search(&pos) {
        Ok(i) => i,
        Err(i) => i.saturating_sub(1),
    };
    let start = line_starts.get(line).copied().unwrap_or(0);
    let col = src
        .get(start..pos)
        .map_or(pos - start, |s| s.chars().count());
    (line + 1, col + 1)
}

fn jinja_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn jinja_int(i: i64) -> String {
    if i == i64::MIN {
        "(-9223372036854775807 - 1)".to_string()
    } else {
        i.to_string()
    }
}

fn jinja_float(f: f64) -> String {
    let s = format!("{f:?}");
    if s.contains(['.', 'e']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// Copies template text, hiding anything Jinja would read as a delimiter.
fn escape_text(s: &str, out: &mut String) {
    for (i, c) in s.char_indices() {
        if c == '{' {
            let next = s[i + 1..].chars().next();
            if matches!(next, None | Some('{' | '%' | '#')) {
                out.push_str("{{ \"{\" }}");
                continue;
            }
        }
        out.push(c);
    }
}

/// Functions whose first argument sprig mutates in place: a `$variable` passed there is
/// re-bound to the result.
const MUTATING: &[&str] = &[
    "set",
    "unset",
    "merge",
    "mergeOverwrite",
    "mustMerge",
    "mustMergeOverwrite",
];

impl<'a> Gen<'a> {
    fn err(&self, pos: usize, msg: impl Into<String>) -> TranslateError {
        let (line, column) = line_col(self.src, &self.line_starts, pos);
        TranslateError {
            line,
            column,
            message: msg.into(),
        }
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn skip_spaces(&mut self) {
        while self.peek().t == T::Space {
            self.next();
        }
    }

    fn enter(&mut self, pos: usize) -> GResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err(
                pos,
                format!("template nested too deeply (more than {MAX_NESTING} levels)"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn new_slot(&mut self) -> String {
        self.uses_ns = true;
        self.next_id += 1;
        format!("__v.v{}", self.next_id)
    }

    fn declare(&mut self, name: &str) -> String {
        let slot = self.new_slot();
        if let Some(scope) = self.scopes.last_mut() {
            scope.push((name.to_string(), slot.clone()));
        }
        slot
    }

    fn lookup_var(&self, name: &str, pos: usize) -> GResult<String> {
        if name.is_empty() {
            return Ok(funcs::ROOT_KEY.to_string());
        }
        for scope in self.scopes.iter().rev() {
            if let Some((_, slot)) = scope.iter().rev().find(|(n, _)| n == name) {
                return Ok(slot.clone());
            }
        }
        Err(self.err(pos, format!("undefined variable \"${name}\"")))
    }

    fn marker(&self, left: &Tok, out: &mut String) {
        let (line, col) = line_col(self.src, &self.line_starts, left.pos);
        let text = self
            .src
            .get(left.pos + 2..left.end.saturating_sub(2))
            .unwrap_or("");
        let text = text.trim_start_matches('-').trim_end_matches('-').trim();
        let mut short: String = text.chars().take(80).collect();
        if short.len() < text.len() {
            short.push('…');
        }
        let short = short.replace("#}", "# }").replace('\n', " ");
        let _ = write!(out, "{{#@{line}:{col} {short}#}}");
    }

    /// Emits the position marker of the action that starts at byte `pos`.
    fn marker_at(&self, pos: usize, out: &mut String) {
        if let Ok(i) = self.toks.binary_search_by_key(&pos, |t| t.pos)
            && self.toks[i].t == T::Left
        {
            self.marker(&self.toks[i], out);
        }
    }

    fn expect_right(&mut self, what: &str) -> GResult<()> {
        self.skip_spaces();
        let t = self.next();
        if t.t != T::Right {
            return Err(self.err(t.pos, format!("unexpected {} in {what}", describe(&t.t))));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- lists and controls

    fn parse_list(&mut self, dot: &str, out: &mut String, in_range: bool) -> GResult<ListEnd> {
        loop {
            let tok = self.next();
            match tok.t {
                T::Text(s) => escape_text(&s, out),
                T::Eof => return Ok(ListEnd::Eof),
                T::Left => {
                    self.last_left = tok.pos;
                    self.skip_spaces();
                    let kw = match &self.peek().t {
                        T::Ident(k) => k.clone(),
                        _ => String::new(),
                    };
                    match kw.as_str() {
                        "if" => {
                            self.next();
                            self.marker(&tok, out);
                            self.gen_if(dot, out, in_range, tok.pos)?;
                        }
                        "range" => {
                            self.next();
                            self.marker(&tok, out);
                            self.gen_range(dot, out, in_range, tok.pos)?;
                        }
                        "with" => {
                            self.next();
                            self.marker(&tok, out);
                            self.gen_with(dot, out, in_range, tok.pos)?;
                        }
                        "end" => {
                            self.next();
                            self.expect_right("end")?;
                            return Ok(ListEnd::End);
                        }
                        "else" => {
                            self.next();
                            self.skip_spaces();
                            let kind = match &self.peek().t {
                                T::Ident(k) if k == "if" => {
                                    self.next();
                                    ElseKind::If
                                }
                                T::Ident(k) if k == "with" => {
                                    self.next();
                                    ElseKind::With
                                }
                                _ => {
                                    self.expect_right("else")?;
                                    ElseKind::Plain
                                }
                            };
                            return Ok(ListEnd::Else(kind, tok.pos));
                        }
                        "break" | "continue" => {
                            self.next();
                            if !in_range {
                                return Err(self
                                    .err(tok.pos, format!("{{{{{kw}}}}} outside {{{{range}}}}")));
                            }
                            self.expect_right(&kw)?;
                            let _ = write!(out, "{{% {kw} %}}");
                        }
                        "define" | "template" | "block" => {
                            return Err(self.err(
                                tok.pos,
                                format!("{{{{{kw}}}}} is not supported by mutask (nested template definitions)"),
                            ));
                        }
                        _ => {
                            self.marker(&tok, out);
                            self.gen_action(dot, out)?;
                        }
                    }
                }
                other => {
                    return Err(self.err(tok.pos, format!("unexpected {}", describe(&other))));
                }
            }
        }
    }

    fn unexpected_end(&self, end: ListEnd, pos: usize, what: &str) -> TranslateError {
        match end {
            ListEnd::Eof => self.err(
                pos,
                format!("unexpected EOF: missing {{{{end}}}} for {{{{{what}}}}}"),
            ),
            ListEnd::Else(k, p) => self.err(
                p,
                match k {
                    ElseKind::Plain => {
                        format!("expected end; found {{{{else}}}} in {{{{{what}}}}}")
                    }
                    ElseKind::If => format!("{{{{else if}}}} is not allowed in {{{{{what}}}}}"),
                    ElseKind::With => format!("{{{{else with}}}} is not allowed in {{{{{what}}}}}"),
                },
            ),
            ListEnd::End => self.err(pos, "unexpected {{end}}"),
        }
    }

    fn gen_action(&mut self, dot: &str, out: &mut String) -> GResult<()> {
        let pipe = self.parse_pipeline("command", &T::Right, 1)?;
        let mut pre = String::new();
        let expr = self.gen_pipeline(&pipe, dot, &mut pre)?;
        out.push_str(&pre);
        if pipe.decl.is_empty() {
            let _ = write!(out, "{{{{ __print({expr}) }}}}");
        }
        Ok(())
    }

    fn gen_if(&mut self, dot: &str, out: &mut String, in_range: bool, pos: usize) -> GResult<()> {
        self.enter(pos)?;
        let mut extra_depth = 0usize;
        let mut scopes = 1usize;
        self.scopes.push(Vec::new());
        let pipe = self.parse_pipeline("if", &T::Right, 1)?;
        let mut pre = String::new();
        let cond = self.gen_pipeline(&pipe, dot, &mut pre)?;
        let _ = write!(out, "{pre}{{% if __truth({cond}) %}}");
        let mut closers = 1usize;
        loop {
            let end = self.parse_list(dot, out, in_range)?;
            match end {
                ListEnd::End => break,
                ListEnd::Else(ElseKind::Plain, _) => {
                    out.push_str("{% else %}");
                    let e2 = self.parse_list(dot, out, in_range)?;
                    if e2 != ListEnd::End {
                        return Err(self.unexpected_end(e2, pos, "if"));
                    }
                    break;
                }
                ListEnd::Else(ElseKind::If, p) => {
                    self.scopes.push(Vec::new());
                    scopes += 1;
                    let pipe = self.parse_pipeline("if", &T::Right, 1)?;
                    let mut pre = String::new();
                    let cond = self.gen_pipeline(&pipe, dot, &mut pre)?;
                    if pre.is_empty() {
                        // The marker goes before the tag: the condition is evaluated there.
                        self.marker_at(p, out);
                        let _ = write!(out, "{{% elif __truth({cond}) %}}");
                    } else {
                        self.enter(p)?;
                        extra_depth += 1;
                        out.push_str("{% else %}");
                        self.marker_at(p, out);
                        let _ = write!(out, "{pre}{{% if __truth({cond}) %}}");
                        closers += 1;
                    }
                }
                other => return Err(self.unexpected_end(other, pos, "if")),
            }
        }
        for _ in 0..closers {
            out.push_str("{% endif %}");
        }
        for _ in 0..scopes {
            self.scopes.pop();
        }
        for _ in 0..extra_depth {
            self.leave();
        }
        self.leave();
        Ok(())
    }

    fn gen_range(
        &mut self,
        dot: &str,
        out: &mut String,
        in_range: bool,
        pos: usize,
    ) -> GResult<()> {
        self.enter(pos)?;
        self.scopes.push(Vec::new());
        let mut pipe = self.parse_pipeline("range", &T::Right, 2)?;
        if pipe.is_assign {
            return Err(self.err(pipe.pos, "range can only initialize variables with :="));
        }
        let decl = std::mem::take(&mut pipe.decl);
        let mut pre = String::new();
        let coll = self.gen_pipeline(&pipe, dot, &mut pre)?;
        self.next_id += 1;
        let id = self.next_id;
        let (k, e) = (format!("__k{id}"), format!("__e{id}"));
        let _ = write!(out, "{pre}{{% for {k}, {e} in __range({coll}) %}}");
        match decl.as_slice() {
            [(v, _)] => {
                let slot = self.declare(v);
                let _ = write!(out, "{{% set {slot} = {e} %}}");
            }
            [(v1, _), (v2, _)] => {
                let s1 = self.declare(v1);
                let s2 = self.declare(v2);
                let _ = write!(out, "{{% set {s1} = {k} %}}{{% set {s2} = {e} %}}");
            }
            _ => {}
        }
        let end = self.parse_list(&e, out, true)?;
        match end {
            ListEnd::End => {}
            ListEnd::Else(ElseKind::Plain, _) => {
                out.push_str("{% else %}");
                let e2 = self.parse_list(dot, out, in_range)?;
                if e2 != ListEnd::End {
                    return Err(self.unexpected_end(e2, pos, "range"));
                }
            }
            other => return Err(self.unexpected_end(other, pos, "range")),
        }
        out.push_str("{% endfor %}");
        self.scopes.pop();
        self.leave();
        Ok(())
    }

    fn gen_with(&mut self, dot: &str, out: &mut String, in_range: bool, pos: usize) -> GResult<()> {
        self.enter(pos)?;
        self.scopes.push(Vec::new());
        let pipe = self.parse_pipeline("with", &T::Right, 1)?;
        let mut pre = String::new();
        let val = self.gen_pipeline(&pipe, dot, &mut pre)?;
        let slot = if pipe.decl.is_empty() {
            let s = self.new_slot();
            let _ = write!(pre, "{{% set {s} = {val} %}}");
            s
        } else {
            val
        };
        let _ = write!(out, "{pre}{{% if __truth({slot}) %}}");
        let end = self.parse_list(&slot, out, in_range)?;
        match end {
            ListEnd::End => {}
            ListEnd::Else(ElseKind::Plain, _) => {
                out.push_str("{% else %}");
                let e2 = self.parse_list(dot, out, in_range)?;
                if e2 != ListEnd::End {
                    return Err(self.unexpected_end(e2, pos, "with"));
                }
            }
            ListEnd::Else(ElseKind::With, p) => {
                out.push_str("{% else %}");
                self.marker_at(p, out);
                // The nested {{with}} consumes the shared {{end}}.
                self.gen_with(dot, out, in_range, p)?;
            }
            other => return Err(self.unexpected_end(other, pos, "with")),
        }
        out.push_str("{% endif %}");
        self.scopes.pop();
        self.leave();
        Ok(())
    }

    // ---------------------------------------------------------------- pipelines

    fn parse_pipeline(&mut self, context: &str, end: &T, max_decl: usize) -> GResult<Pipeline> {
        self.skip_spaces();
        let pos = self.peek().pos;
        self.enter(pos)?;
        let mut pipe = Pipeline {
            decl: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
            pos,
        };
        // Declarations: `$x :=`, `$x =`, `$i, $e :=`.
        if let T::Var(v) = &self.peek().t {
            let v = v.clone();
            let save = self.i;
            let vpos = self.peek().pos;
            self.next();
            self.skip_spaces();
            match self.peek().t {
                T::Declare | T::Assign => {
                    pipe.is_assign = self.peek().t == T::Assign;
                    self.next();
                    pipe.decl.push((v, vpos));
                }
                T::Comma => {
                    if max_decl < 2 {
                        return Err(self.err(vpos, format!("too many declarations in {context}")));
                    }
                    self.next();
                    pipe.decl.push((v, vpos));
                    self.skip_spaces();
                    let t2 = self.next();
                    let T::Var(v2) = t2.t else {
                        return Err(self.err(t2.pos, "range can only initialize variables"));
                    };
                    pipe.decl.push((v2, t2.pos));
                    self.skip_spaces();
                    let t3 = self.next();
                    match t3.t {
                        T::Declare => {}
                        T::Assign => pipe.is_assign = true,
                        other => {
                            return Err(self.err(
                                t3.pos,
                                format!("unexpected {} in {context}", describe(&other)),
                            ));
                        }
                    }
                }
                _ => self.i = save,
            }
            if pipe.decl.iter().any(|(n, _)| n.is_empty()) {
                return Err(self.err(vpos, "cannot assign to $"));
            }
        }
        loop {
            self.skip_spaces();
            let tok = self.peek().clone();
            if &tok.t == end {
                self.next();
                if pipe.cmds.is_empty() {
                    return Err(self.err(tok.pos, format!("missing value for {context}")));
                }
                break;
            }
            match tok.t {
                T::Bool(_)
                | T::Int(_)
                | T::Float(_)
                | T::Dot
                | T::Field(_)
                | T::Ident(_)
                | T::Nil
                | T::Str(_)
                | T::Var(_)
                | T::LParen => {
                    let cmd = self.parse_command()?;
                    pipe.cmds.push(cmd);
                }
                T::Pipe if !pipe.cmds.is_empty() => {
                    return Err(self.err(tok.pos, "missing command after \"|\""));
                }
                other => {
                    return Err(self.err(
                        tok.pos,
                        format!("unexpected {} in {context}", describe(&other)),
                    ));
                }
            }
        }
        for (i, cmd) in pipe.cmds.iter().enumerate().skip(1) {
            let first = &cmd.args[0];
            if !matches!(first.term, Term::Func(_)) || !first.chain.is_empty() {
                return Err(self.err(
                    cmd.pos,
                    format!(
                        "non executable command in pipeline stage {}: only functions can receive a piped value",
                        i + 1
                    ),
                ));
            }
        }
        self.leave();
        Ok(pipe)
    }

    fn parse_command(&mut self) -> GResult<Command> {
        self.skip_spaces();
        let pos = self.peek().pos;
        let mut args = Vec::new();
        loop {
            self.skip_spaces();
            if let Some(op) = self.parse_operand()? {
                args.push(op);
            }
            let t = self.peek().clone();
            match t.t {
                T::Space => {
                    self.next();
                    continue;
                }
                T::Right | T::RParen => {}
                T::Pipe => {
                    self.next();
                    self.skip_spaces();
                    if matches!(self.peek().t, T::Right | T::RParen) {
                        return Err(self.err(t.pos, "missing command after \"|\""));
                    }
                }
                other => {
                    return Err(
                        self.err(t.pos, format!("unexpected {} in operand", describe(&other)))
                    );
                }
            }
            break;
        }
        if args.is_empty() {
            return Err(self.err(pos, "empty command"));
        }
        Ok(Command { args, pos })
    }

    fn parse_operand(&mut self) -> GResult<Option<Operand>> {
        let pos = self.peek().pos;
        let Some(term) = self.parse_term()? else {
            return Ok(None);
        };
        let mut chain = Vec::new();
        while let T::Field(f) = &self.peek().t {
            chain.push(f.clone());
            self.next();
        }
        if !chain.is_empty()
            && matches!(
                term,
                Term::Bool(_)
                    | Term::Str(_)
                    | Term::Int(_)
                    | Term::Float(_)
                    | Term::Nil
                    | Term::Dot
            )
        {
            return Err(self.err(pos, "unexpected . after term"));
        }
        Ok(Some(Operand { term, chain, pos }))
    }

    fn parse_term(&mut self) -> GResult<Option<Term>> {
        let tok = self.peek().clone();
        let term = match tok.t {
            T::Ident(name) => {
                if GO_ONLY_KEYWORDS.contains(&name.as_str()) || name == "if" {
                    return Ok(None);
                }
                if !funcs::is_go_function(&name) {
                    return Err(self.err(
                        tok.pos,
                        match funcs::unsupported_reason(&name) {
                            Some(r) => format!("function \"{name}\" is not supported: {r}"),
                            None => format!("function \"{name}\" not defined"),
                        },
                    ));
                }
                Term::Func(name)
            }
            T::Dot => Term::Dot,
            T::Nil => Term::Nil,
            T::Var(v) => {
                self.lookup_var(&v, tok.pos)?;
                Term::Var(v)
            }
            T::Field(f) => Term::Field(f),
            T::Bool(b) => Term::Bool(b),
            T::Int(i) => Term::Int(i),
            T::Float(f) => Term::Float(f),
            T::Str(s) => Term::Str(s),
            T::LParen => {
                self.next();
                let p = self.parse_pipeline("parenthesized pipeline", &T::RParen, 1)?;
                return Ok(Some(Term::Paren(Box::new(p))));
            }
            _ => return Ok(None),
        };
        self.next();
        Ok(Some(term))
    }

    fn gen_pipeline(&mut self, pipe: &Pipeline, dot: &str, pre: &mut String) -> GResult<String> {
        let mut val: Option<String> = None;
        for cmd in &pipe.cmds {
            val = Some(self.gen_cmd(cmd, val, dot, pre)?);
        }
        let Some(v) = val else {
            return Err(self.err(pipe.pos, "missing value for command"));
        };
        let Some((name, vpos)) = pipe.decl.first() else {
            return Ok(v);
        };
        let slot = if pipe.is_assign {
            self.lookup_var(name, *vpos)?
        } else {
            self.declare(name)
        };
        if slot != v {
            let _ = write!(pre, "{{% set {slot} = {v} %}}");
        }
        Ok(slot)
    }

    fn gen_cmd(
        &mut self,
        cmd: &Command,
        fin: Option<String>,
        dot: &str,
        pre: &mut String,
    ) -> GResult<String> {
        let first = &cmd.args[0];
        if let Term::Func(name) = &first.term
            && first.chain.is_empty()
        {
            return self.gen_call(name, &cmd.args[1..], fin, dot, pre, first.pos);
        }
        if matches!(first.term, Term::Nil) {
            return Err(self.err(first.pos, "nil is not a command"));
        }
        if cmd.args.len() > 1 || fin.is_some() {
            return Err(self.err(
                first.pos,
                "can't give argument to non-function (only functions take arguments)",
            ));
        }
        self.gen_operand(first, dot, pre)
    }

    fn gen_call(
        &mut self,
        name: &str,
        args: &[Operand],
        fin: Option<String>,
        dot: &str,
        pre: &mut String,
        pos: usize,
    ) -> GResult<String> {
        if name == "and" || name == "or" {
            return self.gen_and_or(name == "and", args, fin, dot, pre, pos);
        }
        if MUTATING.contains(&name)
            && let Some(Operand {
                term: Term::Var(v),
                chain,
                pos: vpos,
            }) = args.first()
            && chain.is_empty()
            && !v.is_empty()
        {
            let slot = self.lookup_var(v, *vpos)?;
            let mut parts = vec![slot.clone()];
            for a in &args[1..] {
                parts.push(self.gen_operand(a, dot, pre)?);
            }
            if let Some(f) = fin {
                parts.push(f);
            }
            let _ = write!(pre, "{{% set {slot} = go_{name}({}) %}}", parts.join(", "));
            return Ok(slot);
        }
        let mut parts = Vec::with_capacity(args.len() + 1);
        for a in args {
            parts.push(self.gen_operand(a, dot, pre)?);
        }
        if let Some(f) = fin {
            parts.push(f);
        }
        Ok(format!("go_{name}({})", parts.join(", ")))
    }

    fn gen_and_or(
        &mut self,
        is_and: bool,
        args: &[Operand],
        fin: Option<String>,
        dot: &str,
        pre: &mut String,
        pos: usize,
    ) -> GResult<String> {
        let total = args.len() + usize::from(fin.is_some());
        if total == 0 {
            return Err(self.err(
                pos,
                format!(
                    "wrong number of args for {}: want at least 1 got 0",
                    if is_and { "and" } else { "or" }
                ),
            ));
        }
        let t = self.new_slot();
        let cond = if is_and {
            format!("__truth({t})")
        } else {
            format!("not __truth({t})")
        };
        let mut first = true;
        for a in args {
            let mut inner = String::new();
            let code = self.gen_operand(a, dot, &mut inner)?;
            if first {
                let _ = write!(pre, "{inner}{{% set {t} = {code} %}}");
                first = false;
            } else {
                let _ = write!(
                    pre,
                    "{{% if {cond} %}}{inner}{{% set {t} = {code} %}}{{% endif %}}"
                );
            }
        }
        if let Some(f) = fin {
            if first {
                let _ = write!(pre, "{{% set {t} = {f} %}}");
            } else {
                let _ = write!(pre, "{{% if {cond} %}}{{% set {t} = {f} %}}{{% endif %}}");
            }
        }
        Ok(t)
    }

    fn gen_operand(&mut self, op: &Operand, dot: &str, pre: &mut String) -> GResult<String> {
        let mut names: Vec<&str> = Vec::new();
        let base = match &op.term {
            Term::Dot => dot.to_string(),
            Term::Var(v) => self.lookup_var(v, op.pos)?,
            Term::Field(f) => {
                names.push(f);
                dot.to_string()
            }
            Term::Func(name) => self.gen_call(name, &[], None, dot, pre, op.pos)?,
            Term::Str(s) => jinja_str(s),
            Term::Int(i) => jinja_int(*i),
            Term::Float(f) => jinja_float(*f),
            Term::Bool(b) => b.to_string(),
            Term::Nil => "none".to_string(),
            Term::Paren(p) => {
                self.enter(op.pos)?;
                let r = self.gen_pipeline(p, dot, pre);
                self.leave();
                r?
            }
        };
        names.extend(op.chain.iter().map(String::as_str));
        if names.is_empty() {
            return Ok(base);
        }
        let keys: Vec<String> = names.iter().map(|n| jinja_str(n)).collect();
        Ok(format!("__get({base}, {})", keys.join(", ")))
    }
}

/// Translates a µTask Go template to minijinja source (see the module documentation).
pub fn translate(src: &str) -> Result<String, TranslateError> {
    let mut line_starts = vec![0usize];
    line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
    let lexer = Lexer {
        src,
        pos: 0,
        toks: Vec::new(),
        paren: 0,
    };
    let toks = lexer.lex().map_err(|(pos, message)| {
        let (line, column) = line_col(src, &line_starts, pos);
        TranslateError {
            line,
            column,
            message,
        }
    })?;
    let mut g = Gen {
        src,
        toks,
        i: 0,
        scopes: vec![Vec::new()],
        next_id: 0,
        uses_ns: false,
        depth: 0,
        line_starts,
        last_left: 0,
    };
    let mut body = String::with_capacity(src.len() * 2);
    match g.parse_list(funcs::ROOT_KEY, &mut body, false)? {
        ListEnd::Eof => {}
        ListEnd::End => return Err(g.err(g.last_left, "unexpected {{end}}")),
        ListEnd::Else(_, p) => return Err(g.err(p, "unexpected {{else}}")),
    }
    if g.uses_ns {
        Ok(format!("{{% set __v = namespace() %}}{body}"))
    } else {
        Ok(body)
    }
}

/// The Go position recorded before byte `offset` of a translated template: `(line, column,
/// action text)` of the action that contains it.
pub fn source_position(jinja: &str, offset: usize) -> Option<(usize, usize, String)> {
    let head = jinja.get(..offset.min(jinja.len()))?;
    let at = head.rfind("{#@")?;
    let rest = &jinja[at + 3..];
    let end = rest.find("#}")?;
    let inner = &rest[..end];
    let (pos, text) = inner.split_once(' ').unwrap_or((inner, ""));
    let (l, c) = pos.split_once(':')?;
    Some((l.parse().ok()?, c.parse().ok()?, text.to_string()))
}

#[cfg(test)]
#[path = "render_dialect_tests.rs"]
mod tests;
