//! Named resource limits (µTask's semaphores): at most N concurrent holders of a label in this
//! instance. Labels come from a step's `resources`, from the action (`script:<file>` and `fork`
//! for script, `url:<host>` and `socket` for http) and, for a whole cycle, `template:<name>`.
//! Only labels with a configured limit (`MUTASK_RESOURCE_LIMITS`) are enforced; a limit of 0
//! means "never" (the step is retried later; a template-level 0 delays the task 10 minutes).
//! Labels are acquired in sorted order, so two holders can never deadlock each other.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why resources could not be acquired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("resource `{0}` is disabled (limit 0)")]
    Disabled(String),
    #[error("resource `{0}` still busy after {1:?}")]
    Timeout(String, Duration),
}

/// The limits and their semaphores.
#[derive(Debug, Default)]
pub struct Resources {
    limits: HashMap<String, usize>,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
    timeout: Duration,
}

/// Held permits; dropping releases them.
#[derive(Debug, Default)]
pub struct Held(#[allow(dead_code)] Vec<OwnedSemaphorePermit>);

impl Resources {
    pub fn new(limits: HashMap<String, usize>, timeout: Duration) -> Resources {
        Resources {
            limits,
            semaphores: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    fn semaphore(&self, label: &str, limit: usize) -> Arc<Semaphore> {
        let mut map = match self.semaphores.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(label.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone()
    }

    /// Acquires every limited label among `labels` (sorted, deduplicated).
    pub async fn acquire(
        &self,
        labels: impl IntoIterator<Item = String>,
    ) -> Result<Held, ResourceError> {
        let sorted: BTreeSet<String> = labels.into_iter().collect();
        let mut held = Vec::new();
        for label in sorted {
            let Some(&limit) = self.limits.get(&label) else {
                continue;
            };
            if limit == 0 {
                return Err(ResourceError::Disabled(label));
            }
            let sem = self.semaphore(&label, limit);
            match tokio::time::timeout(self.timeout, sem.acquire_owned()).await {
                Ok(Ok(p)) => held.push(p),
                _ => return Err(ResourceError::Timeout(label, self.timeout)),
            }
        }
        Ok(Held(held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_disabled_and_timeouts() {
        let r = Resources::new(
            [("db".to_string(), 1), ("off".to_string(), 0)].into(),
            Duration::from_millis(100),
        );
        let first = r
            .acquire(["db".to_string(), "free".to_string()])
            .await
            .unwrap();
        assert_eq!(
            r.acquire(["db".to_string()]).await.unwrap_err(),
            ResourceError::Timeout("db".into(), Duration::from_millis(100))
        );
        drop(first);
        assert!(r.acquire(["db".to_string()]).await.is_ok());
        assert_eq!(
            r.acquire(["off".to_string()]).await.unwrap_err(),
            ResourceError::Disabled("off".into())
        );
        assert!(r.acquire(["unlimited".to_string()]).await.is_ok());
    }
}
