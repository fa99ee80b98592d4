//! Retry delays (pure): when an ERROR resolution runs again, from the retriable steps' try
//! counts and retry patterns (µTask's `computeDelay`):
//! - `seconds`: 8 s × 1.25ⁿ, capped at 10 min (10 s, 12.5 s, 15.6 s, …);
//! - `minutes`: 1.6 × n minutes, capped at 30 min;
//! - `hours`: 1 h + (n − 1) × 10 min, capped at 3 h.
//!
//! The resolution waits for the shortest delay among its retriable steps (SERVER_ERROR,
//! TO_RETRY, AFTERRUN_ERROR), 1 h when there is none.

use std::time::Duration;

use crate::domain::StepState;
use crate::template::model::RetryPattern;

use super::model::RunResolution;

const SECONDS_CAP: Duration = Duration::from_secs(600);
const MINUTES_CAP: Duration = Duration::from_secs(1800);
const HOURS_CAP: Duration = Duration::from_secs(3 * 3600);

/// The delay after `try_count` executions with `pattern`.
pub fn delay(pattern: &RetryPattern, try_count: i32) -> Duration {
    let n = try_count.max(0) as f64;
    match pattern {
        RetryPattern::Minutes => {
            Duration::from_secs_f64((1.6 * n * 60.0).min(MINUTES_CAP.as_secs_f64()))
        }
        RetryPattern::Hours => {
            let secs = 3600.0 + (n - 1.0) * 600.0;
            Duration::from_secs_f64(secs.clamp(0.0, HOURS_CAP.as_secs_f64()))
        }
        _ => {
            let secs = 8.0 * 1.25f64.powf(n);
            Duration::from_secs_f64(secs.min(SECONDS_CAP.as_secs_f64()))
        }
    }
}

/// True for the states that make a resolution retry automatically.
pub fn is_retriable(state: &StepState) -> bool {
    matches!(
        state,
        StepState::ServerError | StepState::ToRetry | StepState::AfterrunError
    )
}

/// The delay before the next automatic run of `res`.
pub fn next_retry_delay(res: &RunResolution) -> Duration {
    res.steps
        .values()
        .filter(|s| is_retriable(&s.state))
        .map(|s| delay(&s.def.step.retry_pattern(), s.try_count))
        .min()
        .unwrap_or(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utask_delays() {
        assert_eq!(delay(&RetryPattern::Seconds, 1), Duration::from_secs(10));
        assert_eq!(
            delay(&RetryPattern::Seconds, 2),
            Duration::from_secs_f64(12.5)
        );
        assert_eq!(delay(&RetryPattern::Seconds, 40), SECONDS_CAP);
        assert_eq!(delay(&RetryPattern::Minutes, 1), Duration::from_secs(96));
        assert_eq!(delay(&RetryPattern::Minutes, 100), MINUTES_CAP);
        assert_eq!(delay(&RetryPattern::Hours, 1), Duration::from_secs(3600));
        assert_eq!(delay(&RetryPattern::Hours, 2), Duration::from_secs(4200));
        assert_eq!(delay(&RetryPattern::Hours, 50), HOURS_CAP);
    }

    /// Property: every delay is positive and within its pattern's cap, and non-decreasing in n.
    #[test]
    fn property_backoff_stays_within_bounds() {
        for (pattern, cap) in [
            (RetryPattern::Seconds, SECONDS_CAP),
            (RetryPattern::Minutes, MINUTES_CAP),
            (RetryPattern::Hours, HOURS_CAP),
        ] {
            let mut prev = Duration::ZERO;
            for n in 1..10_000 {
                let d = delay(&pattern, n);
                assert!(d > Duration::ZERO && d <= cap, "{pattern:?} n={n}: {d:?}");
                assert!(d >= prev, "{pattern:?} decreasing at n={n}");
                prev = d;
            }
        }
    }
}
