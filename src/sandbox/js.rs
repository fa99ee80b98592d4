//! JavaScript evaluation with `boa_engine`, as µTask evaluates a variable's `expression`: a fresh
//! context per evaluation with nothing injected into the global scope, and the value of the last
//! statement converted to a string like otto's `.String()` (JS `String(value)`: `4`, `2.5`,
//! `1e+21`, `1,2,3`, `[object Object]`, `undefined`, `null`, `true`).
//!
//! Invariants: loop iterations, recursion and the VM stack are bounded ([`JsLimits`]) and the
//! program runs under an async budget so that a wall-clock deadline is checked between slices of
//! work. These are belt and braces only: native built-ins (`repeat`, `fill`, regexes) escape them,
//! so untrusted code must run through [`super::SandboxPool`], whose kill is the hard guarantee.
//! [`eval_js_in_process`] exists for the worker and for tests of the conversion rules.

use std::future::Future;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use boa_engine::{Context, JsError, JsValue, Script, Source};

use super::protocol::{ErrorKind, JobError};

/// Engine limits applied to every evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsLimits {
    /// Iterations of one loop in one call frame (boa counts per frame).
    pub loop_iterations: u64,
    /// Nested calls.
    pub recursion: usize,
    /// Values on the VM stack.
    pub stack_values: usize,
    /// VM cost units between two deadline checks.
    pub budget: u32,
}

impl Default for JsLimits {
    fn default() -> Self {
        JsLimits {
            loop_iterations: 1_000_000,
            recursion: 400,
            stack_values: 10 * 1024,
            budget: 10_000,
        }
    }
}

/// Evaluates `code` in this process and returns the string value of its last statement, or the
/// JS error message. Only for trusted code and tests: see the module documentation.
pub fn eval_js_in_process(code: &str, timeout: Duration) -> Result<String, String> {
    evaluate(code, timeout, JsLimits::default()).map_err(|e| e.message)
}

/// Evaluates `code` with `limits` and a wall-clock `timeout`; the error says what went wrong.
pub fn evaluate(code: &str, timeout: Duration, limits: JsLimits) -> Result<String, JobError> {
    let deadline = Instant::now().checked_add(timeout);
    let mut context = Context::builder().build().map_err(|e| {
        JobError::new(
            ErrorKind::Panic,
            format!("could not create a JS context: {e}"),
        )
    })?;
    let runtime_limits = context.runtime_limits_mut();
    runtime_limits.set_loop_iteration_limit(limits.loop_iterations);
    runtime_limits.set_recursion_limit(limits.recursion);
    runtime_limits.set_stack_size_limit(limits.stack_values);

    let script = Script::parse(Source::from_bytes(code), None, &mut context)
        .map_err(|e| classify(&e, &mut context, ErrorKind::Syntax))?;
    let value = {
        let run = script.evaluate_async_with_budget(&mut context, limits.budget);
        match poll_until(run, deadline) {
            Some(result) => result,
            None => return Err(timeout_error(timeout)),
        }
    };
    let value = value.map_err(|e| classify(&e, &mut context, ErrorKind::Exception))?;
    to_display_string(&value, &mut context)
        .map_err(|e| classify(&e, &mut context, ErrorKind::Exception))
}

/// The message of an in-worker deadline, also used by the pool for its own kill.
pub(crate) fn timeout_error(timeout: Duration) -> JobError {
    JobError::new(
        ErrorKind::Timeout,
        format!("the expression did not finish within {timeout:?}"),
    )
}

/// Drives `fut` on this thread, checking `deadline` each time it yields. `None`: deadline passed.
fn poll_until<F: Future>(fut: F, deadline: Option<Instant>) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
    }
}

/// JS `String(value)`, which is what otto's `Value.String()` gives for ES5 values; symbols (which
/// `String()` accepts but `ToString` rejects) print as `Symbol(description)`.
fn to_display_string(value: &JsValue, context: &mut Context) -> Result<String, JsError> {
    if let Some(symbol) = value.as_symbol() {
        return Ok(symbol.descriptive_string().to_std_string_escaped());
    }
    Ok(value.to_string(context)?.to_std_string_escaped())
}

/// Turns an engine error into a message such as `TypeError: x is not a function` or
/// `RuntimeLimitError: reached the maximum number of iteration loops on this execution`.
fn classify(error: &JsError, context: &mut Context, default: ErrorKind) -> JobError {
    if error.as_opaque().is_none() {
        if let Ok(native) = error.try_native(context) {
            let kind = match native.kind() {
                boa_engine::JsNativeErrorKind::Syntax => ErrorKind::Syntax,
                _ => default,
            };
            return JobError::new(kind, native.to_string());
        }
        // Engine errors (runtime limits, engine panics) cannot be caught from JS. Their display
        // ends with a JS backtrace (one line per frame): keep the message only.
        let full = error.to_string();
        let message = full
            .split("\n    at ")
            .next()
            .unwrap_or_default()
            .to_owned();
        let kind = if message.starts_with("RuntimeLimitError") {
            ErrorKind::Limit
        } else {
            ErrorKind::Panic
        };
        return JobError::new(kind, message);
    }
    // A thrown value: an Error object prints as `Name: message`, anything else as String(value).
    if let Ok(native) = error.try_native(context) {
        let kind = match native.kind() {
            boa_engine::JsNativeErrorKind::Syntax => ErrorKind::Syntax,
            _ => ErrorKind::Exception,
        };
        return JobError::new(kind, native.to_string());
    }
    let message = match error.as_opaque() {
        Some(value) => {
            to_display_string(value, context).unwrap_or_else(|_| value.display().to_string())
        }
        None => error.to_string(),
    };
    JobError::new(ErrorKind::Exception, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(code: &str) -> Result<String, String> {
        eval_js_in_process(code, Duration::from_secs(5))
    }

    #[test]
    fn conversion_follows_otto_string() {
        assert_eq!(eval("1+3"), Ok("4".into()));
        assert_eq!(eval("'a'+'b'"), Ok("ab".into()));
        assert_eq!(eval("5/2"), Ok("2.5".into()));
        assert_eq!(eval("1e21"), Ok("1e+21".into()));
        assert_eq!(eval("[1,2,3]"), Ok("1,2,3".into()));
        assert_eq!(eval("({})"), Ok("[object Object]".into()));
        assert_eq!(eval("undefined"), Ok("undefined".into()));
        assert_eq!(eval("null"), Ok("null".into()));
        assert_eq!(eval("1 < 2"), Ok("true".into()));
        assert_eq!(eval("var x = 2; x * 3"), Ok("6".into()));
        assert_eq!(eval("Symbol('s')"), Ok("Symbol(s)".into()));
    }

    #[test]
    fn errors_carry_the_js_message() {
        let syntax = evaluate("1 +", Duration::from_secs(5), JsLimits::default());
        assert!(
            matches!(&syntax, Err(e) if e.kind == ErrorKind::Syntax && e.message.starts_with("SyntaxError")),
            "{syntax:?}"
        );
        let thrown = evaluate(
            "throw new TypeError('nope')",
            Duration::from_secs(5),
            JsLimits::default(),
        );
        assert!(
            matches!(&thrown, Err(e) if e.kind == ErrorKind::Exception && e.message.starts_with("TypeError: nope")),
            "{thrown:?}"
        );
        assert_eq!(eval("throw 'boom'"), Err("boom".into()));
        let limit = evaluate("while(true){}", Duration::from_secs(5), JsLimits::default());
        assert!(
            matches!(&limit, Err(e) if e.kind == ErrorKind::Limit
                && e.message.starts_with("RuntimeLimitError: reached the maximum number of iteration loops")),
            "{limit:?}"
        );
    }
}
