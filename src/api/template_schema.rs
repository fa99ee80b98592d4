//! The template JSON schema (`GET /template/schema`, committed as `template.schema.json`): the
//! keys a template file may carry at every level, with their types and descriptions. The
//! editor derives its key completion from it. Hand-written next to the model; a unit test reads
//! the field names the YAML loader itself accepts (through serde) and fails when one is missing
//! here, another when the committed file is not what this module generates
//! (`UPDATE_TEMPLATE_SCHEMA=1 cargo test --lib api::template::schema` refreshes it).

use serde_json::{Value, json};

fn string(d: &str) -> Value {
    json!({"type": "string", "description": d})
}
fn boolean(d: &str) -> Value {
    json!({"type": "boolean", "description": d})
}
fn integer(d: &str) -> Value {
    json!({"type": "integer", "description": d})
}
fn strings(d: &str) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": d})
}
fn one_of(values: &[&str], d: &str) -> Value {
    json!({"type": "string", "enum": values, "description": d})
}
fn reference(def: &str, d: &str) -> Value {
    json!({"$ref": format!("#/$defs/{def}"), "description": d})
}
fn list_of(def: &str, d: &str) -> Value {
    json!({"type": "array", "items": {"$ref": format!("#/$defs/{def}")}, "description": d})
}
fn object(d: &str) -> Value {
    json!({"type": "object", "description": d})
}

/// The schema (JSON Schema 2020-12).
pub fn json_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://mutask.local/template.schema.json",
        "title": "mutask task template",
        "type": "object",
        "required": ["name", "description", "title_format", "steps"],
        "properties": {
            "name": string("Unique name (lower-cased); the file's template name."),
            "description": string("One-line description shown in lists."),
            "long_description": string("Longer text shown on the template page."),
            "doc_link": string("A link to more documentation."),
            "title_format": string("The task title, templated with the inputs."),
            "result_format": object("The task result: a map of templated values, rendered when the task ends."),
            "allowed_resolver_usernames": strings("Users who may resolve its tasks (template owners)."),
            "allowed_resolver_groups": strings("Groups whose members may resolve its tasks."),
            "allow_all_resolver_usernames": boolean("Anyone may resolve its tasks."),
            "auto_runnable": boolean("Tasks start without a resolver (when there are no resolver inputs)."),
            "blocked": boolean("No task may be created from it."),
            "hidden": boolean("Left out of the template list."),
            "retry_max": integer("Runs a resolution may take before it is blocked (default 100)."),
            "allow_task_start_over": boolean("Resolvers may start a task over."),
            "inputs": list_of("input", "What the requester fills in."),
            "resolver_inputs": list_of("input", "What the resolver fills in before approving."),
            "variables": list_of("variable", "Named values read with `eval` / `evalCache`."),
            "tags": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Tags given to every task (templated)."},
            "steps": {"type": "object", "additionalProperties": {"$ref": "#/$defs/step"}, "description": "Steps by name."},
            "base_configurations": object("Named configurations a step action extends (`base_configuration`)."),
            "dialect": one_of(&["utask", "jinja"], "Template syntax (detected when absent)."),
            "expected_duration": string("How long a task should take (Go duration, e.g. `1h`)."),
            "notify": reference("notify", "Which notifications its tasks send."),
        },
        "$defs": {
            "input": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": string("Input name (`input.<name>` in templates)."),
                    "description": string("Shown next to the field."),
                    "type": one_of(&["string", "password", "bool", "number"], "Value type (default string; password values are masked)."),
                    "regex": string("Every value must match it."),
                    "legal_values": {"type": "array", "description": "The only values accepted (a select in forms)."},
                    "collection": boolean("A list of values."),
                    "optional": boolean("May be left out."),
                    "default": {"description": "Value when left out."},
                    "hidden": boolean("Not shown in forms."),
                },
            },
            "variable": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": string("Variable name."),
                    "value": {"description": "A value (a string is templated)."},
                    "expression": string("JavaScript evaluated in the sandbox."),
                    "expression_timeout": string("Time limit of the expression (Go duration)."),
                },
            },
            "step": {
                "type": "object",
                "properties": {
                    "description": string("What the step does."),
                    "action": reference("executor", "The action the step runs."),
                    "pre_hook": reference("executor", "An action run before the step's, its output read as `pre_hook`."),
                    "dependencies": strings("Steps to wait for: `name` (DONE) or `name:STATE,STATE`."),
                    "conditions": list_of("condition", "Skip conditions (before) and check conditions (after)."),
                    "custom_states": strings("States a check condition may give the step."),
                    "foreach": string("A templated list: the step runs once per element (`iterator`)."),
                    "foreach_strategy": one_of(&["parallel", "sequence"], "How foreach children run."),
                    "retry_pattern": one_of(&["seconds", "minutes", "hours"], "Backoff unit of retries."),
                    "max_retries": integer("Retries before the step fails for good."),
                    "idempotent": boolean("May run again after a crash without asking."),
                    "json_schema": object("JSON Schema the step's output must satisfy."),
                    "resources": strings("Named resources limiting how many steps run at once."),
                    "execution_delay": integer("Seconds to wait before running."),
                    "timeout": string("Time limit of one run (Go duration)."),
                },
            },
            "executor": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": string("Action type: a builtin (echo, http, ssh, …), a plugin or a function."),
                    "configuration": object("The action's configuration (templated)."),
                    "base_configuration": string("Name of a `base_configurations` entry merged under it."),
                    "output": reference("output", "How the action's output becomes the step's."),
                    "base_output": object("µTask's `base_output`: a format merged into the output."),
                },
            },
            "output": {
                "type": "object",
                "properties": {
                    "strategy": one_of(&["none", "merge", "template"], "How `format` applies."),
                    "format": {"description": "Values merged into the output, or the templated output."},
                },
            },
            "condition": {
                "type": "object",
                "properties": {
                    "type": one_of(&["skip", "check"], "skip: before the step runs; check: after."),
                    "if": list_of("assert", "Every assert must hold."),
                    "then": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Step name (or `this`) → state to give."},
                    "final": boolean("Stop evaluating the following conditions when met."),
                    "foreach": one_of(&["children", "parent"], "On a foreach step: evaluate per child or on the parent."),
                    "message": string("Recorded as the step error when met."),
                },
            },
            "assert": {
                "type": "object",
                "properties": {
                    "value": string("Templated left-hand side."),
                    "operator": one_of(&["EQ", "NE", "GT", "LT", "GE", "LE", "REGEXP", "NOTREGEXP", "IN", "NOTIN"], "Comparison."),
                    "expected": string("Templated right-hand side."),
                    "list_separator": string("Separator of `expected` for IN / NOTIN."),
                    "message": string("Why the assert failed."),
                },
            },
            "notify": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "events": string("Which events notify."),
                    "backends": strings("Backends to notify."),
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::model::{
        Assert, Condition, Executor, Input, NotifySettings, OutputSpec, Step, TaskTemplate,
        Variable,
    };
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    /// A deserializer that only records the field names a struct asks for.
    struct Fields(std::cell::RefCell<Vec<&'static str>>);

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Stop
        }
    }

    impl<'de> Deserializer<'de> for &Fields {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.borrow_mut().extend(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    fn fields<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
        let d = Fields(Default::default());
        let _ = T::deserialize(&d);
        let out = d.0.into_inner();
        assert!(!out.is_empty(), "no field read");
        out
    }

    #[test]
    fn every_field_the_loader_accepts_is_in_the_schema() {
        let schema = json_schema();
        let levels: [(&str, Vec<&str>, &Value); 9] = [
            ("template", fields::<TaskTemplate>(), &schema),
            ("input", fields::<Input>(), &schema["$defs"]["input"]),
            (
                "variable",
                fields::<Variable>(),
                &schema["$defs"]["variable"],
            ),
            ("step", fields::<Step>(), &schema["$defs"]["step"]),
            (
                "executor",
                fields::<Executor>(),
                &schema["$defs"]["executor"],
            ),
            ("output", fields::<OutputSpec>(), &schema["$defs"]["output"]),
            (
                "condition",
                fields::<Condition>(),
                &schema["$defs"]["condition"],
            ),
            ("assert", fields::<Assert>(), &schema["$defs"]["assert"]),
            (
                "notify",
                fields::<NotifySettings>(),
                &schema["$defs"]["notify"],
            ),
        ];
        for (level, accepted, def) in levels {
            let props = def["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{level}: no properties"));
            for f in &accepted {
                assert!(
                    props.contains_key(*f),
                    "{level}: `{f}` is missing from the schema"
                );
            }
            for k in props.keys() {
                assert!(
                    accepted.contains(&k.as_str()),
                    "{level}: `{k}` is in the schema but the loader does not read it"
                );
            }
            for (k, v) in props {
                assert!(
                    v["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{level}.{k}: no description"
                );
            }
        }
    }

    #[test]
    fn the_schema_is_valid_and_accepts_the_shipped_templates() {
        let schema = json_schema();
        let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value = serde_yaml::from_str(&text).expect("a YAML template");
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", p.display());
            n += 1;
        }
        assert!(n >= 3);
        // and refuses a wrong type
        let bad = json!({"name": "x", "description": "d", "title_format": "t", "steps": {}, "auto_runnable": "yes"});
        assert!(!validator.is_valid(&bad));
    }

    #[test]
    fn the_committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("template.schema.json");
        let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
        if std::env::var_os("UPDATE_TEMPLATE_SCHEMA").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "template.schema.json is stale: run `UPDATE_TEMPLATE_SCHEMA=1 cargo test --lib api::template::schema`"
        );
    }
}
