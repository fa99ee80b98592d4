//! Skip and check conditions (µTask §3).
//!
//! An assert renders `value` and `expected` (µTask's `<no value>` marker stripped) and compares
//! them: `EQ`/`NE` as strings; `GT`/`LT`/`GE`/`LE` as base-10 32-bit integers (a parse error is
//! an evaluation error; lower-case `gt/lt/ge/le` always count as met — µTask's quirk);
//! `REGEXP`/`NOTREGEXP` with `expected` as the regex; `IN`/`NOTIN` split `value` on
//! `list_separator` (default `,`), trim each element and look for `expected`. A condition is met
//! when all its asserts are.

use serde_json::Value;

use crate::template::model::{Assert, Condition, OperatorKind};

use super::templating::{Evaluator, Templater, strip_no_value};

/// How evaluating a condition went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eval {
    Met,
    NotMet(String),
    /// A templating or comparison error (µTask: SERVER_ERROR before, AFTERRUN_ERROR after).
    Error(String),
}

fn parse_i32(s: &str, side: &str) -> Result<i64, String> {
    s.trim()
        .parse::<i32>()
        .map(i64::from)
        .map_err(|_| format!("condition: {side} `{s}` is not a 32-bit integer"))
}

/// Compares one rendered assert.
pub fn compare(a: &Assert, value: &str, expected: &str) -> Result<bool, String> {
    if a.operator.always_met_quirk() {
        return Ok(true);
    }
    let Some(kind) = a.operator.kind() else {
        return Err(format!("condition: unknown operator `{}`", a.operator.raw));
    };
    Ok(match kind {
        OperatorKind::Eq => value == expected,
        OperatorKind::Ne => value != expected,
        OperatorKind::Gt => parse_i32(value, "value")? > parse_i32(expected, "expected")?,
        OperatorKind::Lt => parse_i32(value, "value")? < parse_i32(expected, "expected")?,
        OperatorKind::Ge => parse_i32(value, "value")? >= parse_i32(expected, "expected")?,
        OperatorKind::Le => parse_i32(value, "value")? <= parse_i32(expected, "expected")?,
        OperatorKind::Regexp | OperatorKind::NotRegexp => {
            let re = regex::Regex::new(expected)
                .map_err(|e| format!("condition: invalid regex `{expected}`: {e}"))?;
            re.is_match(value) == (kind == OperatorKind::Regexp)
        }
        OperatorKind::In | OperatorKind::NotIn => {
            let found = value.split(a.separator()).any(|e| e.trim() == expected);
            found == (kind == OperatorKind::In)
        }
    })
}

/// Evaluates a condition's asserts against `ctx`.
pub fn evaluate(t: &Templater, c: &Condition, ctx: &Value) -> Eval {
    let ev: Evaluator<'_> = t.evaluator(ctx);
    for a in &c.asserts {
        let value = match t.render_str(&a.value, ctx, &ev) {
            Ok(v) => strip_no_value(&v),
            Err(e) => return Eval::Error(e),
        };
        let expected = match t.render_str(&a.expected, ctx, &ev) {
            Ok(v) => strip_no_value(&v),
            Err(e) => return Eval::Error(e),
        };
        match compare(a, &value, &expected) {
            Ok(true) => {}
            Ok(false) => {
                let why = if a.message.is_empty() {
                    format!(
                        "condition not met: `{value}` {} `{expected}`",
                        a.operator.raw
                    )
                } else {
                    a.message.clone()
                };
                return Eval::NotMet(why);
            }
            Err(e) => return Eval::Error(e),
        }
    }
    Eval::Met
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::model::Operator;

    fn a(op: &str) -> Assert {
        Assert {
            operator: Operator::new(op),
            ..Default::default()
        }
    }

    #[test]
    fn operators() {
        assert!(compare(&a("EQ"), "x", "x").unwrap());
        assert!(compare(&a("ne"), "x", "y").unwrap());
        assert!(compare(&a("GT"), "10", "9").unwrap());
        assert!(!compare(&a("LE"), "10", "9").unwrap());
        assert!(compare(&a("GE"), "abc", "1").is_err());
        assert!(
            compare(&a("GT"), "99999999999", "1").is_err(),
            "32-bit like Go"
        );
        assert!(
            compare(&a("gt"), "1", "5").unwrap(),
            "lower-case quirk: always met"
        );
        assert!(compare(&a("regexp"), "john@example.com", r"[a-z]+@example\.com$").unwrap());
        assert!(compare(&a("NOTREGEXP"), "foobar", r"@example").unwrap());
        assert!(compare(&a("REGEXP"), "x", "(").is_err());
        let mut i = a("IN");
        assert!(compare(&i, "foo, bar", "bar").unwrap());
        i.list_separator = ";".into();
        assert!(!compare(&i, "foo,bar", "bar").unwrap());
        assert!(compare(&a("NOTIN"), "foo,bar", "baz").unwrap());
        assert!(compare(&a("XX"), "a", "b").is_err());
    }
}
