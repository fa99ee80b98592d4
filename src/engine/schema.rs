//! Output validation against a step's `json_schema` (draft from `$schema`, normalized at load:
//! draft-04, -06 or -07). A failing output makes the step FATAL_ERROR with every violation
//! listed. Remote `$ref`s are never fetched.

use serde_json::Value;

/// Validates `output` (a missing output validates as `null`).
pub fn validate(schema: &Value, output: Option<&Value>) -> Result<(), String> {
    let validator =
        jsonschema::validator_for(schema).map_err(|e| format!("invalid json_schema: {e}"))?;
    let instance = output.cloned().unwrap_or(Value::Null);
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .take(20)
        .map(|e| {
            let path = e.instance_path().to_string();
            if path.is_empty() {
                e.to_string()
            } else {
                format!("{path}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "output does not match json_schema: {}",
            errors.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validates_outputs() {
        let schema = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                            "required": ["id"], "properties": {"id": {"type": "string"}}});
        assert!(validate(&schema, Some(&json!({"id": "x"}))).is_ok());
        let e = validate(&schema, Some(&json!({"id": 3}))).unwrap_err();
        assert!(e.contains("/id"), "{e}");
        assert!(validate(&schema, None).is_err());
        assert!(
            validate(&json!({"type": 12}), Some(&json!(1)))
                .unwrap_err()
                .contains("invalid json_schema")
        );
    }
}
