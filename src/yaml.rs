//! YAML from outside — request bodies, webhook deliveries, template files, step values — is
//! checked before libyaml parses it: its scanner is quadratic in the depth of flow collections
//! (`{a: {a: …` or `[[…`), so a 100 KB body nested 20,000 levels deep took 3 s of CPU in a release
//! build, and 1 MiB would take minutes. serde_yaml's own limit (128 levels) applies only once the
//! scan is over, and not to the parts of a document it skips (an unknown field).
//! [`from_str`] refuses such text at once.

use serde::de::DeserializeOwned;

/// Deepest flow nesting (`[`/`{`) accepted (serde_yaml's own recursion limit).
pub const MAX_FLOW_DEPTH: usize = 128;

/// Why YAML text was not parsed.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("YAML nesting too deep (more than {MAX_FLOW_DEPTH} levels of [ ] or {{ }})")]
    TooDeep,
    #[error("{0}")]
    Syntax(#[from] serde_yaml::Error),
}

impl YamlError {
    /// Where the parser stopped (syntax errors only).
    pub fn location(&self) -> Option<serde_yaml::Location> {
        match self {
            YamlError::TooDeep => None,
            YamlError::Syntax(e) => e.location(),
        }
    }
}

/// Parses `text` as YAML into `T`, refusing flow nesting deeper than [`MAX_FLOW_DEPTH`] before
/// the parser sees it.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    if max_flow_depth(text) > MAX_FLOW_DEPTH {
        return Err(YamlError::TooDeep);
    }
    Ok(serde_yaml::from_str(text)?)
}

/// Approximate maximum flow-collection depth of a YAML text: counts `[`/`{` against `]`/`}`,
/// skipping quoted scalars (a quote only opens at a token start and closes at its end quote or
/// at the end of the line) and comments. It can over-estimate (brackets in plain scalars) but
/// not under-estimate real flow nesting.
pub fn max_flow_depth(src: &str) -> usize {
    let mut depth = 0usize;
    let mut max = 0usize;
    let mut prev: Option<char> = None;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        let at_token_start = prev.is_none_or(|p| " \t\r\n[{,:".contains(p));
        match c {
            '\'' | '"' if at_token_start => {
                while let Some(q) = chars.next() {
                    if q == '\n' {
                        break;
                    }
                    if c == '"' && q == '\\' {
                        chars.next();
                        continue;
                    }
                    if q == c {
                        if c == '\'' && chars.peek() == Some(&'\'') {
                            chars.next();
                            continue;
                        }
                        break;
                    }
                }
                prev = Some(c);
                continue;
            }
            '#' if prev.is_none_or(char::is_whitespace) => {
                for q in chars.by_ref() {
                    if q == '\n' {
                        break;
                    }
                }
                prev = Some('\n');
                continue;
            }
            '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = Some(c);
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_depth_scan() {
        assert_eq!(max_flow_depth("a: [1, {b: [2]}]"), 3);
        assert_eq!(
            max_flow_depth("a: '[[[' # [[[\nb: \"[[\\\"[\"\nc: it's [x]"),
            1
        );
        assert_eq!(max_flow_depth("a: [\"]\", [\"]\", [\"]\"]]]"), 3);
        assert!(max_flow_depth(&"{a: ".repeat(1000)) > MAX_FLOW_DEPTH);
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        for deep in [
            format!("{}{}", "{a: ".repeat(20_000), "}".repeat(20_000)),
            format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)),
        ] {
            assert!(matches!(
                from_str::<serde_json::Value>(&deep),
                Err(YamlError::TooDeep)
            ));
        }
        // at the limit it parses (serde_yaml's own limit is the same)
        let ok = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(from_str::<serde_json::Value>(&ok).is_ok());
        let v: serde_json::Value = from_str("a: [1, {b: '[[['}]").unwrap();
        assert_eq!(v, serde_json::json!({"a": [1, {"b": "[[["}]}));
        assert!(matches!(
            from_str::<serde_json::Value>("a: [1"),
            Err(YamlError::Syntax(_))
        ));
    }
}
