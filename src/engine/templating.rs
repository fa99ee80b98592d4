//! Rendering of template strings during a cycle: every string leaf of a configuration is
//! rendered independently (µTask), in the template's dialect (µTask Go-template syntax is
//! translated once and cached), with `eval` / `evalCache` bound to the template's variables.
//!
//! Variables: a `value` that is a string is itself rendered; other values are returned as they
//! are; an `expression` is rendered, then evaluated as JavaScript by the [`JsEval`] hook (the
//! sandbox pool in production). `evalCache` remembers a result for the rest of the evaluation
//! context (one step execution). Recursion between variables is bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::template::dialect::Dialect;
use crate::template::model::Variable;
use crate::template::render::{Renderer, VariableEval};

/// Evaluates JavaScript for variables with an `expression` (blocking call).
pub trait JsEval: Send + Sync {
    fn eval_js(&self, code: &str, timeout: std::time::Duration) -> Result<String, String>;
}

/// µTask prints a missing key as this marker (conditions strip it).
pub const NO_VALUE: &str = "<no value>";
const MAX_EVAL_DEPTH: usize = 16;

/// Renders strings for one template (dialect + variables).
pub struct Templater {
    renderer: Arc<Renderer>,
    dialect: Dialect,
    variables: Vec<Variable>,
    js: Option<Arc<dyn JsEval>>,
    translated: Mutex<HashMap<String, String>>,
    /// `evalCache` results, for the templater's lifetime (one cycle).
    eval_cache: Mutex<HashMap<String, Value>>,
}

impl Templater {
    pub fn new(
        renderer: Arc<Renderer>,
        dialect: Dialect,
        variables: Vec<Variable>,
        js: Option<Arc<dyn JsEval>>,
    ) -> Templater {
        Templater {
            renderer,
            dialect,
            variables,
            js,
            translated: Mutex::new(HashMap::new()),
            eval_cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn jinja_source(&self, dialect: Dialect, src: &str) -> Result<String, String> {
        if dialect == Dialect::Jinja {
            return Ok(src.to_string());
        }
        if let Ok(cache) = self.translated.lock()
            && let Some(t) = cache.get(src)
        {
            return Ok(t.clone());
        }
        let t = crate::template::dialect::translate(src).map_err(|e| e.to_string())?;
        if let Ok(mut cache) = self.translated.lock()
            && cache.len() < 10_000
        {
            cache.insert(src.to_string(), t.clone());
        }
        Ok(t)
    }

    /// Renders one string in the template's dialect (plain text is returned as is).
    pub fn render_str(
        &self,
        src: &str,
        ctx: &Value,
        evaluator: &Evaluator<'_>,
    ) -> Result<String, String> {
        self.render_str_in(self.dialect, src, ctx, evaluator)
    }

    /// Renders one string in `dialect` (a function file has its own).
    pub fn render_str_in(
        &self,
        dialect: Dialect,
        src: &str,
        ctx: &Value,
        evaluator: &Evaluator<'_>,
    ) -> Result<String, String> {
        if !src.contains("{{") && !src.contains("{%") {
            return Ok(src.to_string());
        }
        let jinja = self.jinja_source(dialect, src)?;
        self.renderer
            .render(&jinja, ctx, Some(evaluator))
            .map_err(|e| {
                let m = e.to_string();
                if m.starts_with("Templating error") {
                    m
                } else {
                    format!("Templating error: template: {m}")
                }
            })
    }

    /// Renders every string leaf of `v` in the template's dialect (map keys too when `keys`).
    pub fn render_value(
        &self,
        v: &Value,
        ctx: &Value,
        evaluator: &Evaluator<'_>,
        keys: bool,
    ) -> Result<Value, String> {
        self.render_value_in(self.dialect, v, ctx, evaluator, keys)
    }

    /// Renders every string leaf of `v` in `dialect`.
    pub fn render_value_in(
        &self,
        dialect: Dialect,
        v: &Value,
        ctx: &Value,
        evaluator: &Evaluator<'_>,
        keys: bool,
    ) -> Result<Value, String> {
        Ok(match v {
            Value::String(s) => Value::String(self.render_str_in(dialect, s, ctx, evaluator)?),
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.render_value_in(dialect, x, ctx, evaluator, keys))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    let k = if keys {
                        self.render_str_in(dialect, k, ctx, evaluator)?
                    } else {
                        k.clone()
                    };
                    out.insert(k, self.render_value_in(dialect, x, ctx, evaluator, keys)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    /// An evaluator bound to one render context.
    pub fn evaluator<'a>(&'a self, ctx: &'a Value) -> Evaluator<'a> {
        Evaluator {
            templater: self,
            ctx,
            depth: Mutex::new(0),
        }
    }
}

/// `eval` / `evalCache` for one evaluation context.
pub struct Evaluator<'a> {
    templater: &'a Templater,
    ctx: &'a Value,
    depth: Mutex<usize>,
}

impl Evaluator<'_> {
    fn evaluate(&self, name: &str) -> Result<Value, String> {
        let var = self
            .templater
            .variables
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| format!("unknown variable `{name}`"))?;
        {
            let mut d = self
                .depth
                .lock()
                .map_err(|_| "variable evaluation poisoned".to_string())?;
            if *d >= MAX_EVAL_DEPTH {
                return Err(format!("variable `{name}`: evaluation nested too deeply"));
            }
            *d += 1;
        }
        let result = (|| {
            if let Some(expr) = var.expression() {
                let code = self.templater.render_str(expr, self.ctx, self)?;
                let js = self.templater.js.as_ref().ok_or_else(|| {
                    format!("variable `{name}`: JavaScript evaluation is not available")
                })?;
                let out = js
                    .eval_js(&code, var.expression_timeout())
                    .map_err(|e| format!("variable `{name}`: {e}"))?;
                return Ok(Value::String(out));
            }
            match &var.value {
                Some(Value::String(s)) => {
                    Ok(Value::String(self.templater.render_str(s, self.ctx, self)?))
                }
                Some(v) => Ok(v.clone()),
                None => Ok(Value::Null),
            }
        })();
        if let Ok(mut d) = self.depth.lock() {
            *d = d.saturating_sub(1);
        }
        result
    }
}

impl VariableEval for Evaluator<'_> {
    fn eval(&self, name: &str, cache: bool) -> Result<Value, String> {
        if cache
            && let Ok(c) = self.templater.eval_cache.lock()
            && let Some(v) = c.get(name)
        {
            return Ok(v.clone());
        }
        let v = self.evaluate(name)?;
        if cache && let Ok(mut c) = self.templater.eval_cache.lock() {
            c.insert(name.to_string(), v.clone());
        }
        Ok(v)
    }
}

/// Strips µTask's `<no value>` marker (conditions compare without it).
pub fn strip_no_value(s: &str) -> String {
    s.replace(NO_VALUE, "")
}
