//! The typed task template model (µTask inventory §1), as written in YAML and stored as JSON.
//!
//! Every field of µTask's template, input, variable, step, executor, condition, assert and
//! function schema is represented, plus the mutask extensions (`dialect`, `expected_duration`,
//! step `timeout`). Deserialization follows µTask's YAML reading (sigs.k8s.io/yaml):
//! - string fields accept numbers and booleans and stringify them (`expected: 404` → `"404"`),
//!   and `null` / an empty value is the empty string;
//! - `null` for a list, map or boolean is its empty/false value;
//! - fields whose value is an enumeration (condition `type`, `operator`, `foreach_strategy`…)
//!   never fail to parse: an unknown text becomes an `Unknown` variant that
//!   [`crate::template::validate`] reports, so all problems surface at once.
//!
//! Unknown keys are ignored here (the loader reports them as warnings). [`TaskTemplate::normalize`]
//! applies µTask's normalizations (lower-cased name, `base_output` → `output: {strategy: merge}`,
//! JSON-schema `$schema` version, foreach defaults). The model is pure data: no IO.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------

/// `retry_max` when the template does not set it (µTask `DefaultRetryMax`).
pub const DEFAULT_RETRY_MAX: i64 = 100;
/// Step `max_retries` when absent or 0.
pub const DEFAULT_MAX_RETRIES: i64 = 10_000;
/// Largest accepted step `execution_delay` (20 s, in nanoseconds).
pub const MAX_EXECUTION_DELAY_NANOS: i64 = 20_000_000_000;
/// Default `expression_timeout` of a JS variable.
pub const DEFAULT_EXPRESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// The step reference meaning "the step being evaluated".
pub const THIS_STEP: &str = "this";
/// Task tag set on sub-tasks; templates may not set it.
pub const RESERVED_TAG_PARENT_TASK: &str = "_utask_parent_task_id";

pub const STATE_TODO: &str = "TODO";
pub const STATE_RUNNING: &str = "RUNNING";
pub const STATE_DONE: &str = "DONE";
pub const STATE_CLIENT_ERROR: &str = "CLIENT_ERROR";
pub const STATE_SERVER_ERROR: &str = "SERVER_ERROR";
pub const STATE_FATAL_ERROR: &str = "FATAL_ERROR";
pub const STATE_CRASHED: &str = "CRASHED";
pub const STATE_PRUNE: &str = "PRUNE";
pub const STATE_TO_RETRY: &str = "TO_RETRY";
pub const STATE_RETRY_NOW: &str = "RETRY_NOW";
pub const STATE_AFTERRUN_ERROR: &str = "AFTERRUN_ERROR";
pub const STATE_WAITING: &str = "WAITING";
pub const STATE_EXPANDED: &str = "EXPANDED";
/// mutask extension: a step that exceeded its `timeout`.
pub const STATE_TIMEOUT: &str = "TIMEOUT";
/// Dependency qualifier: the dependency is final, whatever its state.
pub const STATE_ANY: &str = "ANY";

/// Builtin step states (µTask's plus mutask's `TIMEOUT`).
pub const BUILTIN_STEP_STATES: &[&str] = &[
    STATE_TODO,
    STATE_RUNNING,
    STATE_DONE,
    STATE_CLIENT_ERROR,
    STATE_SERVER_ERROR,
    STATE_FATAL_ERROR,
    STATE_CRASHED,
    STATE_PRUNE,
    STATE_TO_RETRY,
    STATE_RETRY_NOW,
    STATE_AFTERRUN_ERROR,
    STATE_WAITING,
    STATE_EXPANDED,
    STATE_TIMEOUT,
];

/// Names a custom state may not take: builtin states and the `ANY` qualifier.
pub const RESERVED_STATE_NAMES: &[&str] = &[
    STATE_TODO,
    STATE_RUNNING,
    STATE_DONE,
    STATE_CLIENT_ERROR,
    STATE_SERVER_ERROR,
    STATE_FATAL_ERROR,
    STATE_CRASHED,
    STATE_PRUNE,
    STATE_TO_RETRY,
    STATE_RETRY_NOW,
    STATE_AFTERRUN_ERROR,
    STATE_WAITING,
    STATE_EXPANDED,
    STATE_TIMEOUT,
    STATE_ANY,
];

/// Builtin states a condition's `then` may set (plus the target step's custom states).
pub const CONDITION_THEN_STATES: &[&str] = &[
    STATE_DONE,
    STATE_PRUNE,
    STATE_TO_RETRY,
    STATE_RETRY_NOW,
    STATE_FATAL_ERROR,
    STATE_CLIENT_ERROR,
];

/// Builtin action types known to mutask (each one has an implementation in `src/action/`).
pub const BUILTIN_ACTION_TYPES: &[&str] = &[
    "echo", "script", "http", "ssh", "email", "subtask", "batch", "callback", "notify", "ping",
    "tag",
];

/// µTask action types mutask does not provide, and what to use instead.
pub fn unsupported_action(action_type: &str) -> Option<&'static str> {
    match action_type {
        "apiovh" => Some(
            "µTask's OVHcloud API action is not part of mutask: call the API with `http` (or a plugin)",
        ),
        "cache" => Some(
            "µTask's `cache` action is not part of mutask: keep values in a step's output, or use a plugin",
        ),
        _ => None,
    }
}

/// Keys accepted after `.task.` in template strings. µTask's lint list, plus `resolver_groups`
/// and `last_activity` which exist at run time (µTask's lint wrongly refuses them).
pub const TASK_INFO_KEYS: &[&str] = &[
    "resolver_username",
    "created",
    "requester_username",
    "requester_groups",
    "task_id",
    "region",
    "resolution_id",
    "watcher_usernames",
    "watcher_groups",
    "resolver_groups",
    "last_activity",
];

/// Step fields that only exist at run time; a template setting one is refused.
pub const RUNTIME_ONLY_STEP_FIELDS: &[&str] = &[
    "state",
    "output",
    "metadata",
    "children",
    "children_steps",
    "children_steps_map",
    "error",
    "try_count",
    "last_run",
    "item",
    "tags",
];

/// JSON-schema draft URLs used by `$schema` normalization.
pub const JSON_SCHEMA_DRAFT_04: &str = "http://json-schema.org/draft-04/schema#";
pub const JSON_SCHEMA_DRAFT_06: &str = "http://json-schema.org/draft-06/schema#";
pub const JSON_SCHEMA_DRAFT_07: &str = "http://json-schema.org/draft-07/schema#";

/// True for a builtin action type.
pub fn is_builtin_action(action_type: &str) -> bool {
    BUILTIN_ACTION_TYPES.contains(&action_type)
}

/// True for a name a custom state may not use.
pub fn is_reserved_state(state: &str) -> bool {
    RESERVED_STATE_NAMES.contains(&state)
}

// ---------------------------------------------------------------------------------------------
// Lenient deserializers (µTask's target-typed YAML)
// ---------------------------------------------------------------------------------------------

pub(crate) mod lenient {
    //! Deserializers that read scalars the way sigs.k8s.io/yaml does for Go string fields.

    use std::fmt;

    use indexmap::IndexMap;
    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    struct StrVisitor;

    impl<'de> Visitor<'de> for StrVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string (numbers and booleans are accepted)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            d.deserialize_any(StrVisitor)
        }
    }

    /// A seed reading one lenient string (for list elements and map entries).
    pub struct StrSeed;

    impl<'de> DeserializeSeed<'de> for StrSeed {
        type Value = String;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            d.deserialize_any(StrVisitor)
        }
    }

    /// A string field: strings, numbers, booleans; `null` is `""`.
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_any(StrVisitor)
    }

    struct OptStrVisitor;

    impl<'de> Visitor<'de> for OptStrVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string (numbers and booleans are accepted) or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(OptStrVisitor)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
    }

    /// An optional string field: `null`/absent is `None`.
    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(OptStrVisitor)
    }

    struct VecStrVisitor;

    impl<'de> Visitor<'de> for VecStrVisitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(VecStrVisitor)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element_seed(StrSeed)? {
                out.push(s);
            }
            Ok(out)
        }
    }

    /// A list of strings; `null` is empty.
    pub fn vec_string<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(VecStrVisitor)
    }

    struct MapStrVisitor;

    impl<'de> Visitor<'de> for MapStrVisitor {
        type Value = IndexMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of strings")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(IndexMap::new())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(IndexMap::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(MapStrVisitor)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = IndexMap::new();
            while let Some(k) = map.next_key_seed(StrSeed)? {
                let v = map.next_value_seed(StrSeed)?;
                out.insert(k, v);
            }
            Ok(out)
        }
    }

    /// A string → string map (keys and values lenient); `null` is empty.
    pub fn map_string<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<IndexMap<String, String>, D::Error> {
        d.deserialize_any(MapStrVisitor)
    }

    /// Any type with a default: `null` gives the default (Go's zero value).
    pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }

    /// An optional lenient enum: `null`, absent or `""` is `None`.
    pub fn opt_enum<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: for<'a> From<&'a str>,
    {
        Ok(opt_string(d)?
            .filter(|s| !s.is_empty())
            .map(|s| T::from(s.as_str())))
    }
}

// ---------------------------------------------------------------------------------------------
// Lenient enums
// ---------------------------------------------------------------------------------------------

macro_rules! lenient_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value mutask does not know (kept verbatim; validation reports it).
            Unknown(String),
        }

        impl $name {
            /// The text as written in a template.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(s) => s.as_str(),
                }
            }

            /// True unless this is an `Unknown` value.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Unknown(_))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)+
                    other => $name::Unknown(other.to_string()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
                let s = lenient::string(d)?;
                Ok($name::from(s.as_str()))
            }
        }
    };
}

lenient_enum!(
    /// Type of a template input.
    InputType {
        /// Default when absent.
        String => "string",
        /// A string masked for non-admins.
        Password => "password",
        Bool => "bool",
        Number => "number",
    }
);

// The enum is generated by `lenient_enum!`, which cannot mark a default variant.
#[allow(clippy::derivable_impls)]
impl Default for InputType {
    fn default() -> Self {
        InputType::String
    }
}

lenient_enum!(
    /// When a condition is evaluated.
    ConditionType {
        /// Before the action (PreRun).
        Skip => "skip",
        /// After the action (AfterRun).
        Check => "check",
    }
);

impl Default for ConditionType {
    fn default() -> Self {
        ConditionType::Unknown(String::new())
    }
}

lenient_enum!(
    /// Where a skip condition of a foreach step runs.
    ConditionForeach {
        /// On every child (default).
        Children => "children",
        /// Once, on the foreach parent.
        Parent => "parent",
    }
);

lenient_enum!(
    /// How the children of a foreach step are ordered.
    ForeachStrategy {
        /// All at once (default).
        Parallel => "parallel",
        /// Child i depends on child i-1.
        Sequence => "sequence",
    }
);

lenient_enum!(
    /// Backoff family for the resolution's next retry.
    RetryPattern {
        /// Default.
        Seconds => "seconds",
        Minutes => "minutes",
        Hours => "hours",
    }
);

lenient_enum!(
    /// How an action's `output.format` combines with the plugin output.
    OutputStrategy {
        /// Plugin output unchanged.
        None => "none",
        /// `format` (templated before execution) overlaid by the plugin output.
        Merge => "merge",
        /// `format` templated after execution replaces the output.
        Template => "template",
    }
);

// The enum is generated by `lenient_enum!`, which cannot mark a default variant.
#[allow(clippy::derivable_impls)]
impl Default for OutputStrategy {
    fn default() -> Self {
        OutputStrategy::None
    }
}

/// Template syntax of a template's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// µTask's Go-template dialect (`{{.input.x}}`), translated at load time.
    Utask,
    /// Native minijinja syntax (`{{ input.x }}`).
    Jinja,
}

/// The operators of a condition assert (µTask §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorKind {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Regexp,
    NotRegexp,
    In,
    NotIn,
}

impl OperatorKind {
    /// Every operator.
    pub const ALL: &'static [OperatorKind] = &[
        OperatorKind::Eq,
        OperatorKind::Ne,
        OperatorKind::Gt,
        OperatorKind::Lt,
        OperatorKind::Ge,
        OperatorKind::Le,
        OperatorKind::Regexp,
        OperatorKind::NotRegexp,
        OperatorKind::In,
        OperatorKind::NotIn,
    ];

    /// Canonical (upper-case) text.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorKind::Eq => "EQ",
            OperatorKind::Ne => "NE",
            OperatorKind::Gt => "GT",
            OperatorKind::Lt => "LT",
            OperatorKind::Ge => "GE",
            OperatorKind::Le => "LE",
            OperatorKind::Regexp => "REGEXP",
            OperatorKind::NotRegexp => "NOTREGEXP",
            OperatorKind::In => "IN",
            OperatorKind::NotIn => "NOTIN",
        }
    }

    /// Case-insensitive parse.
    pub fn parse(text: &str) -> Option<OperatorKind> {
        let upper = text.to_ascii_uppercase();
        OperatorKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == upper)
    }

    /// `GT`, `LT`, `GE`, `LE`.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            OperatorKind::Gt | OperatorKind::Lt | OperatorKind::Ge | OperatorKind::Le
        )
    }
}

/// An assert operator, kept as written. µTask accepts any case, but its numeric comparison
/// matches the exact upper-case text: `gt`/`lt`/`ge`/`le` in another case always evaluate as
/// met ([`Operator::always_met_quirk`]). Keeping the text lets the engine reproduce that.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Operator {
    /// The operator text as written in the template.
    pub raw: String,
}

impl Operator {
    /// An operator from its text.
    pub fn new(raw: impl Into<String>) -> Operator {
        Operator { raw: raw.into() }
    }

    /// The operator, `None` for an unknown text.
    pub fn kind(&self) -> Option<OperatorKind> {
        OperatorKind::parse(&self.raw)
    }

    /// µTask quirk: a numeric operator not written in upper case is always met (after both
    /// sides parsed as integers).
    pub fn always_met_quirk(&self) -> bool {
        match self.kind() {
            Some(k) => k.is_numeric() && self.raw != k.as_str(),
            None => false,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for Operator {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Operator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Operator {
            raw: lenient::string(d)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Template
// ---------------------------------------------------------------------------------------------

fn is_false(b: &bool) -> bool {
    !*b
}

/// A task template (µTask `TaskTemplate`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskTemplate {
    /// Unique id; normalized (trimmed, lower-cased) by [`TaskTemplate::normalize`].
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub long_description: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub doc_link: Option<String>,
    /// Task title, templated at task creation.
    #[serde(default, deserialize_with = "lenient::string")]
    pub title_format: String,
    /// Task result: keys and string values templated when the resolution is DONE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_format: Option<serde_json::Map<String, Value>>,
    #[serde(default, deserialize_with = "lenient::vec_string")]
    pub allowed_resolver_usernames: Vec<String>,
    #[serde(default, deserialize_with = "lenient::vec_string")]
    pub allowed_resolver_groups: Vec<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub allow_all_resolver_usernames: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub auto_runnable: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub blocked: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub hidden: bool,
    /// Max resolution runs; see [`TaskTemplate::retry_max`] for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_max: Option<i64>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub allow_task_start_over: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub inputs: Vec<Input>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub resolver_inputs: Vec<Input>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub variables: Vec<Variable>,
    #[serde(default, deserialize_with = "lenient::map_string")]
    pub tags: IndexMap<String, String>,
    /// Steps in file order.
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub steps: IndexMap<String, Step>,
    /// Named raw configurations referenced by `action.base_configuration`.
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub base_configurations: IndexMap<String, Value>,
    /// mutask: template string syntax (`utask` when absent and the strings use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<Dialect>,
    /// mutask: expected duration of a task (Go duration text, e.g. `"15m"`).
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub expected_duration: Option<String>,
    /// mutask: which task notifications this template's tasks send, and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifySettings>,
}

/// A template's notification settings (`notify:`): which events, which backends.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// `always`, `failure_only`, `failure_or_done` or `none`; absent = the instance's
    /// `MUTASK_NOTIFY_STRATEGY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<String>,
    /// Backend names (`webhook`, `slack`, `email`); absent or empty = every configured one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<String>,
}

impl TaskTemplate {
    /// Max resolution runs (`retry_max`, default 100).
    pub fn retry_max(&self) -> i64 {
        self.retry_max.unwrap_or(DEFAULT_RETRY_MAX)
    }

    /// A task can be run as soon as it is created (`auto_runnable` without resolver inputs).
    pub fn is_auto_runnable(&self) -> bool {
        self.auto_runnable && self.resolver_inputs.is_empty()
    }

    /// Apply µTask's normalizations (idempotent): name trimmed + lower-cased, every executor's
    /// `base_output` turned into `output: {strategy: merge}`, json-schema `$schema` computed,
    /// empty `foreach` dropped, foreach defaults made explicit.
    pub fn normalize(&mut self) {
        self.name = normalize_name(&self.name);
        for step in self.steps.values_mut() {
            step.normalize();
        }
    }

    /// Step names in file order.
    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        self.steps.keys().map(String::as_str)
    }
}

/// Template name normalization: trimmed, lower-cased.
pub fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// A requester or resolver input.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Input {
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(rename = "type", default, deserialize_with = "lenient::null_default")]
    pub input_type: InputType,
    /// Go regexp the stringified value must match (exclusive with `legal_values`).
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub regex: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub legal_values: Vec<Value>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub collection: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub optional: bool,
    /// Applied when the value is missing, null or `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// UI only: the form field is hidden.
    #[serde(
        default,
        deserialize_with = "lenient::null_default",
        skip_serializing_if = "is_false"
    )]
    pub hidden: bool,
}

/// A template variable: a fixed (templated) value or a JS expression.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Variable {
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub expression: Option<String>,
    /// Go duration (default 10s); only with `expression`.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub expression_timeout: Option<String>,
}

impl Variable {
    /// The expression, if set and not empty.
    pub fn expression(&self) -> Option<&str> {
        self.expression.as_deref().filter(|e| !e.is_empty())
    }

    /// The evaluation budget of the expression (default 10s; an invalid text also gives the
    /// default — validation reports it).
    pub fn expression_timeout(&self) -> Duration {
        self.expression_timeout
            .as_deref()
            .and_then(|t| parse_go_duration(t).ok())
            .unwrap_or(DEFAULT_EXPRESSION_TIMEOUT)
    }
}

/// One unit of work in a template.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Step {
    #[serde(default, deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub action: Executor,
    /// Executor run before the action on every execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_hook: Option<Executor>,
    /// `step` or `step:STATE[,STATE…]` (default qualifier `DONE`).
    #[serde(default, deserialize_with = "lenient::vec_string")]
    pub dependencies: Vec<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub conditions: Vec<Condition>,
    #[serde(default, deserialize_with = "lenient::vec_string")]
    pub custom_states: Vec<String>,
    /// Template text yielding a JSON array; one child per element.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub foreach: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_enum",
        skip_serializing_if = "Option::is_none"
    )]
    pub foreach_strategy: Option<ForeachStrategy>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_enum",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_pattern: Option<RetryPattern>,
    /// Per-step execution cap: absent/0 ⇒ 10000, negative ⇒ unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub idempotent: bool,
    /// JSON schema of the output (normalized `$schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
    /// Extra semaphore labels.
    #[serde(default, deserialize_with = "lenient::vec_string")]
    pub resources: Vec<String>,
    /// Sleep before executing, in nanoseconds (0..=20s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_delay: Option<i64>,
    /// mutask: wall-clock limit of one execution (Go duration text, e.g. `"30s"`).
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<String>,
}

/// A parsed dependency: `step` or `step:STATE[,STATE…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub step: String,
    /// Qualifier states (`["DONE"]` when none was written).
    pub states: Vec<String>,
}

/// Split a dependency text into step name and qualifier states (µTask `DependencyParts`).
pub fn dependency_parts(dep: &str) -> Dependency {
    match dep.split_once(':') {
        None => Dependency {
            step: dep.to_string(),
            states: vec![STATE_DONE.to_string()],
        },
        Some((step, states)) => Dependency {
            step: step.to_string(),
            states: states.split(',').map(str::to_string).collect(),
        },
    }
}

impl Step {
    /// True for a foreach (parent) step.
    pub fn is_foreach(&self) -> bool {
        self.foreach.as_deref().is_some_and(|f| !f.is_empty())
    }

    /// Parsed dependencies.
    pub fn parsed_dependencies(&self) -> Vec<Dependency> {
        self.dependencies
            .iter()
            .map(|d| dependency_parts(d))
            .collect()
    }

    /// Names of the steps this one depends on (qualifiers dropped, duplicates kept).
    pub fn dependency_names(&self) -> impl Iterator<Item = &str> {
        self.dependencies
            .iter()
            .map(|d| d.split_once(':').map_or(d.as_str(), |(s, _)| s))
    }

    /// The retry pattern (default seconds).
    pub fn retry_pattern(&self) -> RetryPattern {
        self.retry_pattern.clone().unwrap_or(RetryPattern::Seconds)
    }

    /// The foreach strategy (default parallel).
    pub fn foreach_strategy(&self) -> ForeachStrategy {
        self.foreach_strategy
            .clone()
            .unwrap_or(ForeachStrategy::Parallel)
    }

    /// Execution cap: `None` = unlimited (negative `max_retries`), else the cap (0/absent ⇒
    /// 10000).
    pub fn max_retries(&self) -> Option<i64> {
        match self.max_retries {
            None | Some(0) => Some(DEFAULT_MAX_RETRIES),
            Some(n) if n < 0 => None,
            Some(n) => Some(n),
        }
    }

    /// Execution delay (0 when absent or negative).
    pub fn execution_delay(&self) -> Duration {
        Duration::from_nanos(self.execution_delay.unwrap_or(0).max(0).unsigned_abs())
    }

    /// The step timeout, when set and valid.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
            .as_deref()
            .and_then(|t| parse_go_duration(t).ok())
    }

    /// Custom states of the step, then of every function of its action chain (deduplicated).
    pub fn effective_custom_states(&self, functions: &FunctionSet) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |s: &String| {
            if !out.contains(s) {
                out.push(s.clone());
            }
        };
        self.custom_states.iter().for_each(&mut push);
        for f in functions.chain(&self.action.action_type).functions {
            f.custom_states.iter().for_each(&mut push);
        }
        out
    }

    /// Conditions in evaluation order: innermost function's first, then outer functions',
    /// then the step's own.
    pub fn effective_conditions(&self, functions: &FunctionSet) -> Vec<Condition> {
        let mut out = self.conditions.clone();
        for f in functions.chain(&self.action.action_type).functions {
            let mut c = f.conditions.clone();
            c.extend(out);
            out = c;
        }
        out
    }

    /// The pre_hook that runs: the step's, overridden by the innermost function that has one.
    pub fn effective_pre_hook<'a>(&'a self, functions: &'a FunctionSet) -> Option<&'a Executor> {
        let mut hook = self.pre_hook.as_ref();
        for f in functions.chain(&self.action.action_type).functions {
            if let Some(h) = &f.pre_hook {
                hook = Some(h);
            }
        }
        hook
    }

    /// Normalize in place (see [`TaskTemplate::normalize`]).
    pub fn normalize(&mut self) {
        self.action.normalize();
        if let Some(h) = self.pre_hook.as_mut() {
            h.normalize();
        }
        if self.foreach.as_deref() == Some("") {
            self.foreach = None;
        }
        if self.is_foreach() {
            if self.foreach_strategy.is_none() {
                self.foreach_strategy = Some(ForeachStrategy::Parallel);
            }
            for c in &mut self.conditions {
                if c.condition_type == ConditionType::Skip && c.foreach.is_none() {
                    c.foreach = Some(ConditionForeach::Children);
                }
            }
        }
        if let Some(schema) = self.json_schema.as_mut() {
            normalize_json_schema(schema);
        }
    }
}

/// An action: a builtin type, a plugin or a function name, with its configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Executor {
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub action_type: String,
    /// Raw configuration; every string leaf is templated at run time.
    #[serde(default)]
    pub configuration: Value,
    /// Name in the template's `base_configurations`.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_configuration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputSpec>,
    /// Deprecated; moved into `output` (strategy merge) by [`Executor::normalize`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_output: Option<Value>,
}

impl Executor {
    /// µTask: a non-null `base_output` becomes `output: {strategy: merge, format}` (and wins
    /// over an explicit `output`).
    pub fn normalize(&mut self) {
        if let Some(base) = self.base_output.take()
            && !base.is_null()
        {
            self.output = Some(OutputSpec {
                strategy: OutputStrategy::Merge,
                format: base,
            });
        }
    }
}

/// Output post-processing of an action.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OutputSpec {
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub strategy: OutputStrategy,
    #[serde(default)]
    pub format: Value,
}

/// A skip or check condition.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Condition {
    #[serde(rename = "type", default, deserialize_with = "lenient::null_default")]
    pub condition_type: ConditionType,
    /// Asserts, AND-ed.
    #[serde(rename = "if", default, deserialize_with = "lenient::null_default")]
    pub asserts: Vec<Assert>,
    /// Step name (or `this`) → state.
    #[serde(default, deserialize_with = "lenient::map_string")]
    pub then: IndexMap<String, String>,
    /// Stop evaluating later conditions once this one matched.
    #[serde(rename = "final", default, deserialize_with = "lenient::null_default")]
    pub is_final: bool,
    #[serde(
        default,
        deserialize_with = "lenient::opt_enum",
        skip_serializing_if = "Option::is_none"
    )]
    pub foreach: Option<ConditionForeach>,
    /// Templated; stored as the impacted steps' `error`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub message: String,
}

/// One comparison of a condition.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Assert {
    #[serde(default, deserialize_with = "lenient::string")]
    pub value: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub operator: Operator,
    #[serde(default, deserialize_with = "lenient::string")]
    pub expected: String,
    /// For IN/NOTIN; empty means `,`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub list_separator: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub message: String,
}

impl Assert {
    /// The list separator (default `,`).
    pub fn separator(&self) -> &str {
        if self.list_separator.is_empty() {
            ","
        } else {
            &self.list_separator
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------------

/// A reusable action (a file of the functions directory), used as an action `type`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Function {
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub action: Executor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_hook: Option<Executor>,
    /// Prepended to the calling step's conditions.
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub conditions: Vec<Condition>,
    /// Merged into the calling step's custom states.
    #[serde(default, deserialize_with = "lenient::vec_string")]
    pub custom_states: Vec<String>,
}

impl Function {
    /// Normalize in place: trimmed name, `base_output` → `output`.
    pub fn normalize(&mut self) {
        self.name = self.name.trim().to_string();
        self.action.normalize();
        if let Some(h) = self.pre_hook.as_mut() {
            h.normalize();
        }
    }

    /// The arguments of the function: every `{{ .function_args.X }}` (or Jinja
    /// `{{ function_args.X }}`) path found in its action configuration, in order, deduplicated.
    pub fn args(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_function_args(&self.action.configuration, &mut out);
        out
    }
}

fn function_args_regex() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        // µTask: \{\{\s*\.function_args\.([a-zA-Z.]+)\s*\}\} — plus the Jinja spelling.
        regex::Regex::new(r"\{\{\s*\.?function_args\.([a-zA-Z.]+)\s*\}\}")
            .unwrap_or_else(|_| unreachable!("static regex"))
    })
}

fn collect_function_args(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            for c in function_args_regex().captures_iter(s) {
                if let Some(m) = c.get(1) {
                    let arg = m.as_str().trim_end_matches('.').to_string();
                    if !arg.is_empty() && !out.contains(&arg) {
                        out.push(arg);
                    }
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_function_args(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_function_args(x, out)),
        _ => {}
    }
}

/// Does `config` contain the dotted `path` (gjson-like: object keys, or array indexes)?
pub fn config_has_path(config: &Value, path: &str) -> bool {
    let mut cur = config;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => match m.get(part) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(a) => match part.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    true
}

/// The functions known to a loader, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionSet {
    functions: IndexMap<String, FunctionEntry>,
}

#[derive(Debug, Clone, PartialEq)]
struct FunctionEntry {
    function: Function,
    file: Option<String>,
    valid: bool,
}

/// The functions an action type goes through before reaching a builtin or plugin type.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionChain<'a> {
    /// Functions from the outermost (the step's action type) to the innermost.
    pub functions: Vec<&'a Function>,
    /// The final non-function action type.
    pub final_type: String,
    /// A function name met twice (a cycle); the walk stopped there.
    pub cycle: Option<String>,
}

impl FunctionSet {
    /// An empty set.
    pub fn new() -> FunctionSet {
        FunctionSet::default()
    }

    /// Add a function; on a duplicate name, returns the file of the existing one (as `Err`).
    pub fn insert(
        &mut self,
        function: Function,
        file: Option<String>,
    ) -> Result<(), Option<String>> {
        if let Some(existing) = self.functions.get(&function.name) {
            return Err(existing.file.clone());
        }
        self.functions.insert(
            function.name.clone(),
            FunctionEntry {
                function,
                file,
                valid: true,
            },
        );
        Ok(())
    }

    /// The function with that name.
    pub fn get(&self, name: &str) -> Option<&Function> {
        self.functions.get(name).map(|e| &e.function)
    }

    /// True when a function has that name.
    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// The file the function was loaded from.
    pub fn file_of(&self, name: &str) -> Option<&str> {
        self.functions.get(name).and_then(|e| e.file.as_deref())
    }

    /// Mark a function as invalid (its own validation failed); steps using it are refused.
    pub fn mark_invalid(&mut self, name: &str) {
        if let Some(e) = self.functions.get_mut(name) {
            e.valid = false;
        }
    }

    /// True when the function exists and failed its own validation.
    pub fn is_invalid(&self, name: &str) -> bool {
        self.functions.get(name).is_some_and(|e| !e.valid)
    }

    /// Function names in load order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }

    /// Functions in load order.
    pub fn iter(&self) -> impl Iterator<Item = &Function> {
        self.functions.values().map(|e| &e.function)
    }

    pub fn len(&self) -> usize {
        self.functions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    /// Walk `action_type` through functions down to a non-function type (cycle-safe).
    pub fn chain(&self, action_type: &str) -> FunctionChain<'_> {
        let mut functions: Vec<&Function> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut current = action_type;
        loop {
            let Some(f) = self.get(current) else {
                return FunctionChain {
                    functions,
                    final_type: current.to_string(),
                    cycle: None,
                };
            };
            if !seen.insert(f.name.as_str()) {
                return FunctionChain {
                    functions,
                    final_type: current.to_string(),
                    cycle: Some(current.to_string()),
                };
            }
            functions.push(f);
            current = &f.action.action_type;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Normalization helpers
// ---------------------------------------------------------------------------------------------

/// µTask `computeVersion`: keep an explicit `$schema`; else derive it from a numeric `version`
/// (4 → draft-04, 6 → draft-06, anything else → draft-07) and drop `version`. Non-object
/// schemas are left unchanged.
pub fn normalize_json_schema(schema: &mut Value) {
    let Value::Object(m) = schema else {
        return;
    };
    if m.contains_key("$schema") {
        return;
    }
    let version = m.shift_remove("version").and_then(|v| v.as_f64());
    let url = if version == Some(4.0) {
        JSON_SCHEMA_DRAFT_04
    } else if version == Some(6.0) {
        JSON_SCHEMA_DRAFT_06
    } else {
        JSON_SCHEMA_DRAFT_07
    };
    m.insert("$schema".to_string(), Value::String(url.to_string()));
}

/// Parse a Go duration (`"300ms"`, `"1.5h"`, `"2h45m"`, `"0"`): a sequence of decimal numbers
/// with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`. Negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {text:?}");
    let mut s = text.trim();
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    } else if let Some(rest) = s.strip_prefix('-') {
        if !rest.is_empty() && rest.chars().all(|c| c == '0') {
            return Ok(Duration::ZERO);
        }
        return Err(format!("invalid duration {text:?}: negative"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[start..i];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err());
        }
        let n: f64 = number.parse().map_err(|_| err())?;
        let ustart = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let unit = &s[ustart..i];
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("invalid duration {text:?}: missing unit")),
            _ => return Err(format!("invalid duration {text:?}: unknown unit {unit:?}")),
        };
        total += n * nanos;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("invalid duration {text:?}: too large"));
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_strings_accept_numbers_bools_and_null() {
        let a: Assert =
            serde_yaml::from_str("value: 1\noperator: eq\nexpected: 404\nmessage:\n").unwrap();
        assert_eq!(a.value, "1");
        assert_eq!(a.expected, "404");
        assert_eq!(a.message, "");
        let a: Assert = serde_yaml::from_str("value: true\nexpected: 1.50").unwrap();
        assert_eq!(a.value, "true");
        assert_eq!(a.expected, "1.5");
        let s: Step = serde_yaml::from_str(
            "description:\ndependencies:\ncustom_states: [A, 1]\nidempotent:\n",
        )
        .unwrap();
        assert_eq!(s.description, "");
        assert!(s.dependencies.is_empty());
        assert_eq!(s.custom_states, vec!["A", "1"]);
        assert!(!s.idempotent);
    }

    #[test]
    fn operator_keeps_case() {
        let op = Operator::new("gt");
        assert_eq!(op.kind(), Some(OperatorKind::Gt));
        assert!(op.always_met_quirk());
        assert!(!Operator::new("GT").always_met_quirk());
        assert!(!Operator::new("regexp").always_met_quirk());
        assert_eq!(Operator::new("regexp").kind(), Some(OperatorKind::Regexp));
        assert_eq!(Operator::new("notin").kind(), Some(OperatorKind::NotIn));
        assert_eq!(Operator::new("LIKE").kind(), None);
    }

    #[test]
    fn unknown_enum_values_are_kept() {
        let c: Condition = serde_yaml::from_str("type: sometimes\nforeach: invalid").unwrap();
        assert_eq!(c.condition_type, ConditionType::Unknown("sometimes".into()));
        assert_eq!(c.foreach, Some(ConditionForeach::Unknown("invalid".into())));
        let c: Condition = serde_yaml::from_str("type: skip\nforeach: ''").unwrap();
        assert_eq!(c.condition_type, ConditionType::Skip);
        assert_eq!(c.foreach, None);
    }

    #[test]
    fn json_schema_version_normalization() {
        let cases = [
            (
                json!({"$schema": "http://json-schema.org/draft-06/schema#", "version": 4}),
                JSON_SCHEMA_DRAFT_06,
            ),
            (
                json!({"version": 4, "type": "object"}),
                JSON_SCHEMA_DRAFT_04,
            ),
            (json!({"version": 6}), JSON_SCHEMA_DRAFT_06),
            (json!({"version": 7}), JSON_SCHEMA_DRAFT_07),
            (json!({"version": "versionNotFound"}), JSON_SCHEMA_DRAFT_07),
            (json!({"type": "object"}), JSON_SCHEMA_DRAFT_07),
        ];
        for (mut schema, want) in cases {
            normalize_json_schema(&mut schema);
            assert_eq!(schema["$schema"], json!(want), "{schema}");
        }
        let mut s = json!({"version": 4});
        normalize_json_schema(&mut s);
        assert!(s.get("version").is_none());
        let mut s = json!(true);
        normalize_json_schema(&mut s);
        assert_eq!(s, json!(true));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("abc").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("-5s").is_err());
        assert!(parse_go_duration("1x").is_err());
        assert!(parse_go_duration("1..2s").is_err());
    }

    #[test]
    fn base_output_becomes_merge_output() {
        let mut e: Executor =
            serde_yaml::from_str("type: echo\nbase_output: {foo: bar}\nconfiguration: {}").unwrap();
        e.normalize();
        assert_eq!(e.base_output, None);
        let out = e.output.unwrap();
        assert_eq!(out.strategy, OutputStrategy::Merge);
        assert_eq!(out.format, json!({"foo": "bar"}));
    }

    #[test]
    fn function_args_and_chains() {
        let f: Function = serde_yaml::from_str(
            "name: f\naction:\n  type: g\n  configuration:\n    a: '{{ .function_args.name }} {{.function_args.x.y}}'\n    b: ['{{ function_args.jinja }}']",
        )
        .unwrap();
        assert_eq!(f.args(), vec!["name", "x.y", "jinja"]);
        assert!(config_has_path(&json!({"x": {"y": 1}}), "x.y"));
        assert!(config_has_path(&json!({"x": [0, 1]}), "x.1"));
        assert!(!config_has_path(&json!({"x": {}}), "x.y"));

        let g: Function = serde_yaml::from_str("name: g\naction: {type: f}").unwrap();
        let mut set = FunctionSet::new();
        set.insert(f.clone(), None).unwrap();
        set.insert(g, None).unwrap();
        assert!(set.insert(f, Some("x".into())).is_err());
        let chain = set.chain("f");
        assert_eq!(chain.functions.len(), 2);
        assert_eq!(chain.cycle.as_deref(), Some("f"));
        let chain = set.chain("echo");
        assert!(chain.functions.is_empty());
        assert_eq!(chain.final_type, "echo");
    }

    #[test]
    fn dependency_parts_split() {
        assert_eq!(
            dependency_parts("a"),
            Dependency {
                step: "a".into(),
                states: vec!["DONE".into()]
            }
        );
        assert_eq!(
            dependency_parts("a:DONE,FOO"),
            Dependency {
                step: "a".into(),
                states: vec!["DONE".into(), "FOO".into()]
            }
        );
    }

    #[test]
    fn serialization_round_trips() {
        let src = "name: X\ndescription: desc\ntitle_format: title\nsteps:\n  a:\n    action:\n      type: echo\n      base_output: {k: v}\n    conditions:\n      - type: check\n        if: [{value: 1, operator: gt, expected: 2}]\n        then: {this: DONE}\n    foreach: '[1]'\n    json_schema: {version: 4}\n";
        let mut t: TaskTemplate = serde_yaml::from_str(src).unwrap();
        t.normalize();
        assert_eq!(t.name, "x");
        let json = serde_json::to_value(&t).unwrap();
        let back: TaskTemplate = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
        assert_eq!(t.steps["a"].conditions[0].asserts[0].operator.raw, "gt");
        assert_eq!(t.steps["a"].foreach_strategy(), ForeachStrategy::Parallel);
        assert_eq!(t.retry_max(), 100);
    }
}
