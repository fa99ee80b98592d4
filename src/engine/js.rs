//! JavaScript for template variables (`expression`), through the sandbox worker pool: the
//! synchronous [`JsEval`] hook the renderer calls, bridged to the async pool.
//!
//! Rendering runs on blocking threads or inside `block_in_place`, so waiting for the pool there
//! does not stall the runtime; on a current-thread runtime (where that is impossible) the
//! evaluation fails with a clear error instead of deadlocking.

use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::sandbox::SandboxPool;

use super::templating::JsEval;

/// [`JsEval`] backed by a [`SandboxPool`].
pub struct SandboxJs {
    pool: SandboxPool,
}

impl SandboxJs {
    pub fn new(pool: SandboxPool) -> SandboxJs {
        SandboxJs { pool }
    }
}

impl JsEval for SandboxJs {
    fn eval_js(&self, code: &str, timeout: Duration) -> Result<String, String> {
        let handle = Handle::try_current()
            .map_err(|_| "JavaScript evaluation needs the engine runtime".to_string())?;
        let fut = self.pool.eval_js(code, timeout);
        match handle.runtime_flavor() {
            RuntimeFlavor::CurrentThread => {
                Err("JavaScript evaluation needs the multi-threaded runtime".to_string())
            }
            _ => tokio::task::block_in_place(|| handle.block_on(fut)).map_err(|e| e.to_string()),
        }
    }
}
