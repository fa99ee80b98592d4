//! Task, resolution and step states (µTask's vocabulary, see inventory §2), with text mapping.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A state text that is not part of the enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} state `{value}`")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! state_enum {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every state, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored / displayed text.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState { kind: $kind, value: s.to_string() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

state_enum!(
    /// State of a task as seen by its requester.
    TaskState, "task", {
        Todo => "TODO",
        Running => "RUNNING",
        Done => "DONE",
        Blocked => "BLOCKED",
        Delayed => "DELAYED",
        Cancelled => "CANCELLED",
        WontFix => "WONTFIX",
        Waiting => "WAITING",
    }
);

state_enum!(
    /// State of a resolution (the execution record of a task).
    ResolutionState, "resolution", {
        Todo => "TODO",
        Running => "RUNNING",
        Done => "DONE",
        Cancelled => "CANCELLED",
        Paused => "PAUSED",
        BlockedToCheck => "BLOCKED_TOCHECK",
        BlockedBadRequest => "BLOCKED_BADREQUEST",
        BlockedDeadlock => "BLOCKED_DEADLOCK",
        BlockedMaxRetries => "BLOCKED_MAXRETRIES",
        BlockedFatal => "BLOCKED_FATAL",
        Waiting => "WAITING",
        Crashed => "CRASHED",
        Retry => "RETRY",
        Error => "ERROR",
        ToAutorun => "TO_AUTORUN",
        ToAutorunDelayed => "TO_AUTORUN_DELAYED",
        AutoRunning => "AUTORUNNING",
    }
);

impl TaskState {
    /// Final task states: nothing will change them without an operator.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Done | TaskState::Cancelled | TaskState::WontFix
        )
    }
}

impl ResolutionState {
    /// States from which a resolution can be cancelled (µTask: everything but CANCELLED, RUNNING, DONE).
    pub fn is_cancellable(self) -> bool {
        !matches!(
            self,
            ResolutionState::Cancelled | ResolutionState::Running | ResolutionState::Done
        )
    }
}

/// Builtin step states; custom template states are `StepState::Custom`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StepState {
    Todo,
    Running,
    Done,
    ClientError,
    ServerError,
    FatalError,
    Crashed,
    Prune,
    ToRetry,
    RetryNow,
    AfterrunError,
    Waiting,
    Expanded,
    /// mutask extension: the step exceeded its timeout.
    Timeout,
    /// A state declared in the template's `custom_states`.
    Custom(String),
}

impl StepState {
    /// Every builtin state (not `Custom`).
    pub const BUILTIN: &'static [StepState] = &[
        StepState::Todo,
        StepState::Running,
        StepState::Done,
        StepState::ClientError,
        StepState::ServerError,
        StepState::FatalError,
        StepState::Crashed,
        StepState::Prune,
        StepState::ToRetry,
        StepState::RetryNow,
        StepState::AfterrunError,
        StepState::Waiting,
        StepState::Expanded,
        StepState::Timeout,
    ];

    /// The stored / displayed text.
    pub fn as_str(&self) -> &str {
        match self {
            StepState::Todo => "TODO",
            StepState::Running => "RUNNING",
            StepState::Done => "DONE",
            StepState::ClientError => "CLIENT_ERROR",
            StepState::ServerError => "SERVER_ERROR",
            StepState::FatalError => "FATAL_ERROR",
            StepState::Crashed => "CRASHED",
            StepState::Prune => "PRUNE",
            StepState::ToRetry => "TO_RETRY",
            StepState::RetryNow => "RETRY_NOW",
            StepState::AfterrunError => "AFTERRUN_ERROR",
            StepState::Waiting => "WAITING",
            StepState::Expanded => "EXPANDED",
            StepState::Timeout => "TIMEOUT",
            StepState::Custom(s) => s,
        }
    }

    /// Parses a builtin state; anything else becomes `Custom` (callers validate custom names).
    pub fn parse(s: &str) -> StepState {
        StepState::BUILTIN
            .iter()
            .find(|b| b.as_str() == s)
            .cloned()
            .unwrap_or_else(|| StepState::Custom(s.to_string()))
    }

    /// µTask's runnable set: everything except RUNNING, DONE, PRUNE and custom states.
    pub fn is_runnable(&self) -> bool {
        !matches!(
            self,
            StepState::Running | StepState::Done | StepState::Prune | StepState::Custom(_)
        ) && *self != StepState::Timeout
    }

    /// Final: not running and not runnable (DONE, PRUNE, TIMEOUT, custom states).
    pub fn is_final(&self) -> bool {
        !self.is_runnable() && *self != StepState::Running
    }
}

impl std::fmt::Display for StepState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for StepState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StepState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(StepState::parse(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), *s);
        }
        for s in ResolutionState::ALL {
            assert_eq!(s.as_str().parse::<ResolutionState>().unwrap(), *s);
        }
        for s in StepState::BUILTIN {
            assert_eq!(StepState::parse(s.as_str()), *s);
        }
        assert_eq!(
            StepState::parse("NOT_FOUND"),
            StepState::Custom("NOT_FOUND".into())
        );
        let e = "NOPE".parse::<TaskState>().unwrap_err();
        assert_eq!(e.to_string(), "unknown task state `NOPE`");
    }

    #[test]
    fn runnable_and_final_sets_follow_utask() {
        let runnable: Vec<&str> = StepState::BUILTIN
            .iter()
            .filter(|s| s.is_runnable())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            runnable,
            [
                "TODO",
                "CLIENT_ERROR",
                "SERVER_ERROR",
                "FATAL_ERROR",
                "CRASHED",
                "TO_RETRY",
                "RETRY_NOW",
                "AFTERRUN_ERROR",
                "WAITING",
                "EXPANDED"
            ]
        );
        assert!(StepState::Custom("X".into()).is_final());
        assert!(StepState::Done.is_final() && StepState::Prune.is_final());
        assert!(!StepState::Running.is_final() && !StepState::Running.is_runnable());
    }
}
