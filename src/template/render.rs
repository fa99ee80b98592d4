//! The template renderer: one configured minijinja environment, shared and cheap to clone.
//!
//! Role: render one template string (native Jinja, or µTask's Go dialect already translated by
//! [`super::dialect::translate`]) against a JSON context, with the µTask function library
//! ([`super::funcs`]) and an optional [`VariableEval`] hook behind `eval`/`evalCache`.
//!
//! Invariants:
//! - no globals: each render gets its own context object (the root data, the hook's results,
//!   the byte cap), so renders run concurrently from many threads on one [`Renderer`];
//! - every render is bounded: minijinja fuel ([`RenderOptions::fuel`], renewed for each of
//!   the at most [`MAX_EVAL_ROUNDS`] passes needed to evaluate variables), a recursion limit,
//!   an output cap ([`RenderOptions::max_output_bytes`], enforced while writing) and the same
//!   cap on every value a function builds; exceeding one is an error, never a hang or an
//!   unbounded allocation;
//! - rendering happens in the caller's thread (wrap it in `spawn_blocking` from async code);
//! - errors read like µTask's (`Templating error: template: tmpl:1:3: executing "tmpl" at
//!   <index .foo.unknown 3>: error calling index: index of untyped nil`), positions being
//!   those of the Go source for translated templates.
//!
//! How `eval` reaches the caller's hook without `'static` data: a render that needs a
//! variable not evaluated yet stops with a marker error; the renderer evaluates it with the
//! hook, stores the result in the render's context and renders again (each variable is
//! evaluated at most once per render; rendering is side-effect free so a re-run is invisible).

use std::io;
use std::sync::{Arc, Mutex};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

use super::dialect::{self, Dialect, TranslateError};
use super::funcs::{self, CtxRoot, RenderCtx};

/// Most render passes spent evaluating distinct variables before giving up.
pub const MAX_EVAL_ROUNDS: usize = 64;

/// Runtime recursion limit (macros, nested calls) of the environment.
pub const RECURSION_LIMIT: usize = 64;

/// Limits applied to every render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// minijinja fuel per render pass (one unit ≈ one instruction; data costs extra).
    pub fuel: u64,
    /// Largest output, and largest value a function may build, in bytes.
    pub max_output_bytes: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            fuel: 2_000_000,
            max_output_bytes: 4 << 20,
        }
    }
}

/// Evaluates template variables for `eval "name"` (`cache` is `true` for `evalCache`).
///
/// The engine implements it: a variable's `value` is templated, an `expression` is run as JS
/// in the sandbox. An `Err` becomes the template error `error calling eval: <message>`.
pub trait VariableEval: Send + Sync {
    fn eval(&self, name: &str, cache: bool) -> Result<serde_json::Value, String>;
}

/// Why a render failed. `Display` reads like µTask's `Templating error: template: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The µTask template could not be translated (syntax error, unsupported construct).
    #[error("Templating error: {0}")]
    Translate(#[from] TranslateError),
    /// Compilation or execution failed.
    #[error("Templating error: template: {message}")]
    Template { message: String },
    /// The render ran out of fuel (too much work).
    #[error("Templating error: template: the template did too much work (out of fuel)")]
    OutOfFuel,
    /// The output, or a value built during the render, exceeded the byte cap.
    #[error("Templating error: template: result exceeds the size limit of {limit} bytes")]
    TooLarge { limit: usize },
}

/// A render context converted once from JSON; cheap to clone and to share between threads.
#[derive(Debug, Clone)]
pub struct PreparedContext(Value);

impl PreparedContext {
    /// Converts the JSON context (numbers keep their JSON type: integers stay exact).
    pub fn new(ctx: &serde_json::Value) -> PreparedContext {
        PreparedContext(funcs::json_to_value(ctx, false))
    }
}

/// A configured minijinja environment with the µTask function library.
#[derive(Clone)]
pub struct Renderer {
    env: Arc<Environment<'static>>,
    opts: RenderOptions,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("opts", &self.opts)
            .finish()
    }
}

struct LimitedWriter {
    buf: Vec<u8>,
    cap: usize,
    exceeded: bool,
}

impl io::Write for LimitedWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(b.len()) > self.cap {
            self.exceeded = true;
            return Err(io::Error::other("output too large"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Renderer {
    /// Builds the environment: µTask functions, no auto-escaping, chainable undefined values
    /// (for native templates), trailing newlines kept (Go keeps them), fuel and recursion
    /// limits.
    pub fn new(opts: RenderOptions) -> Renderer {
        let mut env = Environment::new();
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_fuel(Some(opts.fuel));
        env.set_recursion_limit(RECURSION_LIMIT);
        funcs::register(&mut env);
        Renderer {
            env: Arc::new(env),
            opts,
        }
    }

    /// The limits of this renderer.
    pub fn options(&self) -> RenderOptions {
        self.opts
    }

    /// Checks that a Jinja template compiles (used at load time), without rendering it.
    pub fn check(&self, jinja_src: &str) -> Result<(), RenderError> {
        let env: &Environment<'_> = &self.env;
        env.template_from_str(jinja_src)
            .map(|_| ())
            .map_err(|e| self.map_error(&e, false, jinja_src))
    }

    /// Renders one template string (already in Jinja syntax, i.e. translated if it was
    /// µTask dialect) against `ctx`; `eval` answers `eval`/`evalCache`.
    pub fn render(
        &self,
        jinja_src: &str,
        ctx: &serde_json::Value,
        eval: Option<&dyn VariableEval>,
    ) -> Result<String, RenderError> {
        self.render_prepared(jinja_src, &PreparedContext::new(ctx), eval)
    }

    /// Like [`render`](Self::render) with a context converted once by
    /// [`PreparedContext::new`] (rendering many strings against one large context).
    pub fn render_prepared(
        &self,
        jinja_src: &str,
        ctx: &PreparedContext,
        eval: Option<&dyn VariableEval>,
    ) -> Result<String, RenderError> {
        let env: &Environment<'_> = &self.env;
        let tmpl = env
            .template_from_str(jinja_src)
            .map_err(|e| self.map_error(&e, false, jinja_src))?;
        let root = ctx.0.clone();
        let rctx_value = Value::from_object(RenderCtx {
            max_bytes: self.opts.max_output_bytes,
            has_eval: eval.is_some(),
            evals: Mutex::new(Default::default()),
            pending: Mutex::new(None),
        });
        let Some(rctx) = rctx_value.downcast_object::<RenderCtx>() else {
            return Err(RenderError::Template {
                message: "internal error: render context".to_string(),
            });
        };
        let context = Value::from_object(CtxRoot {
            root,
            ctx: rctx_value,
        });
        for _ in 0..MAX_EVAL_ROUNDS {
            let mut w = LimitedWriter {
                buf: Vec::new(),
                cap: self.opts.max_output_bytes,
                exceeded: false,
            };
            let result = tmpl.render_captured_to(context.clone(), &mut w).map(drop);
            match result {
                Ok(()) => {
                    return Ok(match String::from_utf8(w.buf) {
                        Ok(s) => s,
                        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                    });
                }
                Err(e) => {
                    let pending = rctx.pending.lock().ok().and_then(|mut p| p.take());
                    if let (Some((name, cache)), Some(hook)) = (pending, eval) {
                        let r = hook
                            .eval(&name, cache)
                            .map(|j| funcs::json_to_value(&j, false));
                        if let Ok(mut m) = rctx.evals.lock() {
                            m.insert((name, cache), r);
                        }
                        continue;
                    }
                    return Err(self.map_error(&e, w.exceeded, jinja_src));
                }
            }
        }
        Err(RenderError::Template {
            message: format!("more than {MAX_EVAL_ROUNDS} variables evaluated in one template"),
        })
    }

    /// Convenience: translates the source when it is µTask dialect, then renders it.
    pub fn render_dialect(
        &self,
        dialect: Dialect,
        src: &str,
        ctx: &serde_json::Value,
        eval: Option<&dyn VariableEval>,
    ) -> Result<String, RenderError> {
        match dialect {
            Dialect::Utask => {
                let jinja = dialect::translate(src)?;
                self.render(&jinja, ctx, eval)
            }
            Dialect::Jinja => self.render(src, ctx, eval),
        }
    }

    fn map_error(&self, e: &minijinja::Error, exceeded: bool, src: &str) -> RenderError {
        let limit = self.opts.max_output_bytes;
        if exceeded {
            return RenderError::TooLarge { limit };
        }
        if e.kind() == ErrorKind::OutOfFuel {
            return RenderError::OutOfFuel;
        }
        let detail = e.detail().map(str::to_string);
        if detail
            .as_deref()
            .is_some_and(|d| d.contains(funcs::SIZE_LIMIT_MARK))
        {
            return RenderError::TooLarge { limit };
        }
        let what = match (e.kind(), detail) {
            (ErrorKind::InvalidOperation, Some(d)) => d,
            (k, Some(d)) => format!("{k}: {d}"),
            (k, None) => k.to_string(),
        };
        let go_pos = e
            .range()
            .and_then(|r| dialect::source_position(src, r.start));
        let message = match go_pos {
            Some((line, col, action)) => {
                format!("tmpl:{line}:{col}: executing \"tmpl\" at <{action}>: {what}")
            }
            None => match e.line() {
                Some(line) => format!("tmpl:{line}: {what}"),
                None => format!("tmpl: {what}"),
            },
        };
        RenderError::Template { message }
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer::new(RenderOptions::default())
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
