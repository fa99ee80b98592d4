//! Validation of the values given for a template's inputs (task inputs and resolver inputs).
//!
//! Pure: takes the declared inputs and the given JSON object, returns the accepted values or
//! EVERY problem at once, each naming its field (`input.name`, `input.list[2]`). Rules (µTask's):
//! type (`string`, `password`, `bool`, `number`), `collection` (an array, each element checked),
//! `regex` (Go-style unanchored match on the stringified value), `legal_values`, `optional`,
//! `default` (applied when the value is missing, null or ""); stringified values are limited to
//! 100,000 characters; values for undeclared inputs are dropped, as µTask does.

use serde_json::{Map, Value};

use super::model::{Input, InputType};

/// Longest accepted stringified value.
pub const MAX_VALUE_CHARS: usize = 100_000;

/// One rejected input value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub field: String,
    pub message: String,
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// The text a regex is matched against (Go's fmt of the value).
fn stringify(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn check_scalar(input: &Input, field: &str, v: &Value, errors: &mut Vec<InputError>) {
    let mut err = |message: String| {
        errors.push(InputError {
            field: field.to_string(),
            message,
        })
    };
    let type_ok = match &input.input_type {
        InputType::String | InputType::Password => v.is_string(),
        InputType::Bool => v.is_boolean(),
        InputType::Number => v.is_number(),
        InputType::Unknown(t) => {
            err(format!("the template declares unknown type `{t}`"));
            return;
        }
    };
    if !type_ok {
        let got = match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        let want = match input.input_type {
            InputType::Bool => "a boolean",
            InputType::Number => "a number",
            _ => "a string",
        };
        err(format!("expected {want}, got {got}"));
        return;
    }
    let text = stringify(v);
    if text.chars().count() > MAX_VALUE_CHARS {
        err(format!("value is longer than {MAX_VALUE_CHARS} characters"));
        return;
    }
    if let Some(re) = &input.regex {
        match regex::Regex::new(re) {
            Ok(r) if !r.is_match(&text) => err(format!("value does not match the regex `{re}`")),
            Ok(_) => {}
            Err(_) => err(format!("the template's regex `{re}` is invalid")),
        }
    }
    if !input.legal_values.is_empty() && !input.legal_values.iter().any(|l| legal_eq(l, v)) {
        let list: Vec<String> = input.legal_values.iter().map(stringify).collect();
        err(format!(
            "value is not one of the legal values [{}]",
            list.join(", ")
        ));
    }
}

/// Equality for legal values: numbers compare numerically (1 == 1.0).
fn legal_eq(legal: &Value, v: &Value) -> bool {
    match (legal, v) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => legal == v,
    }
}

/// Validates `given` against `declared`; `prefix` names the object in errors (`input`,
/// `resolver_input`).
pub fn validate(
    declared: &[Input],
    given: &Map<String, Value>,
    prefix: &str,
) -> Result<Map<String, Value>, Vec<InputError>> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for input in declared {
        let field = format!("{prefix}.{}", input.name);
        let mut value = given.get(&input.name);
        if is_empty(value) {
            if let Some(d) = &input.default {
                value = Some(d);
            } else if input.optional {
                // µTask keeps an explicit "" for optional inputs
                if let Some(v @ Value::String(_)) = given.get(&input.name) {
                    out.insert(input.name.clone(), v.clone());
                }
                continue;
            } else {
                errors.push(InputError {
                    field,
                    message: "missing required input".into(),
                });
                continue;
            }
        }
        let Some(value) = value else { continue };
        if input.collection {
            match value {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        check_scalar(input, &format!("{field}[{i}]"), item, &mut errors);
                    }
                }
                _ => errors.push(InputError {
                    field: field.clone(),
                    message: "expected a list (the input is a collection)".into(),
                }),
            }
        } else if value.is_array() || value.is_object() {
            errors.push(InputError {
                field: field.clone(),
                message: "expected a single value, got a list or object".into(),
            });
        } else {
            check_scalar(input, &field, value, &mut errors);
        }
        out.insert(input.name.clone(), value.clone());
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Names of the password-type inputs (masked for callers who are not admins).
pub fn password_names(declared: &[Input]) -> Vec<&str> {
    declared
        .iter()
        .filter(|i| i.input_type == InputType::Password)
        .map(|i| i.name.as_str())
        .collect()
}

/// The mask shown instead of a secret value.
pub const SECRET_MASK: &str = "**__SECRET__**";

/// Replaces password-type values with [`SECRET_MASK`].
pub fn mask_passwords(declared: &[Input], values: &Value) -> Value {
    let mut v = values.clone();
    if let Value::Object(m) = &mut v {
        for name in password_names(declared) {
            if let Some(slot) = m.get_mut(name) {
                *slot = match slot {
                    Value::Array(items) => Value::Array(
                        items
                            .iter()
                            .map(|_| Value::String(SECRET_MASK.into()))
                            .collect(),
                    ),
                    _ => Value::String(SECRET_MASK.into()),
                };
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs(yaml: &str) -> Vec<Input> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn accepts_valid_values_and_applies_defaults() {
        let decl = inputs(
            "- {name: a}\n- {name: n, type: number}\n- {name: b, type: bool, optional: true}\n\
             - {name: d, default: dflt}\n- {name: l, collection: true, legal_values: [x, y]}\n\
             - {name: r, regex: '^[a-z]+$'}\n- {name: o, optional: true}",
        );
        let out = validate(
            &decl,
            &obj(json!({"a": "hi", "n": -2.3, "l": ["x", "y", "x"], "r": "abc", "extra": 1, "o": ""})),
            "input",
        )
        .unwrap();
        assert_eq!(out["d"], "dflt");
        assert_eq!(out["n"], json!(-2.3));
        assert_eq!(out["o"], "");
        assert!(!out.contains_key("extra"), "undeclared inputs are dropped");
        assert!(!out.contains_key("b"));
    }

    #[test]
    fn reports_every_problem_with_its_field() {
        let decl = inputs(
            "- {name: a}\n- {name: n, type: number}\n- {name: l, collection: true, legal_values: [x, y]}\n\
             - {name: r, regex: '^[a-z]+$'}\n- {name: b, type: bool}",
        );
        let errs = validate(
            &decl,
            &obj(json!({"n": "12", "l": ["x", "z"], "r": "ABC", "b": [true]})),
            "input",
        )
        .unwrap_err();
        let got: Vec<(&str, &str)> = errs
            .iter()
            .map(|e| (e.field.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], ("input.a", "missing required input"));
        assert_eq!(got[1], ("input.n", "expected a number, got a string"));
        assert_eq!(got[2].0, "input.l[1]");
        assert!(got[2].1.contains("legal values"));
        assert_eq!(got[3].0, "input.r");
        assert!(got[3].1.contains("regex"));
        assert_eq!(got[4].0, "input.b");
    }

    #[test]
    fn collection_and_length_rules() {
        let decl = inputs("- {name: l, collection: true}\n- {name: s}");
        let errs = validate(
            &decl,
            &obj(json!({"l": "notalist", "s": "x".repeat(100_001)})),
            "input",
        )
        .unwrap_err();
        assert!(errs[0].message.contains("expected a list"));
        assert!(errs[1].message.contains("longer than"));
    }

    #[test]
    fn masks_passwords() {
        let decl = inputs("- {name: p, type: password}\n- {name: s}");
        let masked = mask_passwords(&decl, &json!({"p": "hunter2", "s": "v"}));
        assert_eq!(masked, json!({"p": SECRET_MASK, "s": "v"}));
    }
}
