//! Schedule expressions and suspend windows, pure: parse once, then compute occurrences.
//!
//! Three kinds of `when`:
//! - **cron**: five fields (`*/15 9-17 * * MON-FRI`), Vixie semantics, UTC (croner);
//! - **calendar** (karajo's syntax, UTC): `minutely`, `hourly@0,15,30,45` (minutes),
//!   `daily@00:00,06:30`, `weekly@Sunday,Tuesday@15:00`, `monthly@1,15@18:00` — each becomes
//!   one or more cron expressions and the earliest match wins;
//! - **interval**: `every 90s`, `every 1h30m` (Go duration), counted from the schedule's anchor
//!   (its creation), so occurrences stay on a fixed grid whatever the firing delays.
//!
//! Suspend windows (kuroko2) suppress occurrences that fall inside them: a daily window
//! `22:00-06:00` (UTC, may cross midnight) or an absolute one
//! `2026-12-24T00:00:00Z/2026-12-27T00:00:00Z`.
//!
//! Invariant: every function here takes the time as an argument (no clock is read), so the
//! scheduler is tested without sleeping.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use croner::Cron;

/// A parsed `when`.
#[derive(Debug, Clone)]
pub enum When {
    /// Earliest match of any of these cron expressions.
    Cron(Vec<Cron>),
    /// Every period from the anchor.
    Interval(Duration),
}

/// A `when` that does not parse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const DAYS: [(&str, u8); 7] = [
    ("sunday", 0),
    ("monday", 1),
    ("tuesday", 2),
    ("wednesday", 3),
    ("thursday", 4),
    ("friday", 5),
    ("saturday", 6),
];

fn cron(expr: &str) -> Result<Cron, SpecError> {
    Cron::from_str(expr).map_err(|e| SpecError(format!("`{expr}`: {e}")))
}

fn list<T>(text: &str, what: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, SpecError> {
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(SpecError(format!("empty {what} in `{text}`")));
    }
    items
        .into_iter()
        .map(|i| parse(i).ok_or_else(|| SpecError(format!("`{i}` is not a valid {what}"))))
        .collect()
}

fn minute(s: &str) -> Option<u32> {
    s.parse().ok().filter(|m| *m < 60)
}

fn clock(s: &str) -> Option<(u32, u32)> {
    let t = NaiveTime::parse_from_str(s, "%H:%M").ok()?;
    Some((t.hour(), t.minute()))
}

fn times(text: Option<&str>, default: &str) -> Result<Vec<(u32, u32)>, SpecError> {
    list(text.unwrap_or(default), "time (HH:MM)", clock)
}

/// Parses karajo's calendar syntax into cron expressions.
fn calendar(spec: &str) -> Result<Vec<Cron>, SpecError> {
    let parts: Vec<&str> = spec.split('@').collect();
    let kind = parts[0].trim().to_ascii_lowercase();
    let exprs: Vec<String> = match (kind.as_str(), parts.len()) {
        ("minutely", 1) => vec!["* * * * *".into()],
        ("hourly", 1 | 2) => {
            let mins = list(
                parts.get(1).copied().unwrap_or("0"),
                "minute (0-59)",
                minute,
            )?;
            vec![format!("{} * * * *", join(&mins))]
        }
        ("daily", 1 | 2) => times(parts.get(1).copied(), "00:00")?
            .into_iter()
            .map(|(h, m)| format!("{m} {h} * * *"))
            .collect(),
        ("weekly", 1..=3) => {
            let days = list(parts.get(1).copied().unwrap_or("sunday"), "day name", |d| {
                let d = d.to_ascii_lowercase();
                DAYS.iter()
                    .find(|(name, _)| *name == d || name[..3] == *d)
                    .map(|(_, n)| *n)
            })?;
            times(parts.get(2).copied(), "00:00")?
                .into_iter()
                .map(|(h, m)| format!("{m} {h} * * {}", join(&days)))
                .collect()
        }
        ("monthly", 1..=3) => {
            let days = list(
                parts.get(1).copied().unwrap_or("1"),
                "day of month (1-31)",
                |d| d.parse::<u32>().ok().filter(|d| (1..=31).contains(d)),
            )?;
            times(parts.get(2).copied(), "00:00")?
                .into_iter()
                .map(|(h, m)| format!("{m} {h} {} * *", join(&days)))
                .collect()
        }
        _ => {
            return Err(SpecError(format!(
                "`{spec}` is not a calendar (minutely, hourly@M,…, daily@HH:MM,…, \
                 weekly@Day,…@HH:MM,…, monthly@D,…@HH:MM,…)"
            )));
        }
    };
    exprs.iter().map(|e| cron(e)).collect()
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl When {
    /// Parses a `when`: `every <duration>`, a calendar word, or a five-field cron expression.
    pub fn parse(spec: &str) -> Result<When, SpecError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(SpecError("empty schedule".into()));
        }
        if let Some(d) = spec.strip_prefix("every ") {
            let d = crate::domain::duration::parse(d.trim())
                .map_err(|e| SpecError(format!("interval: {e}")))?;
            if d < Duration::from_secs(1) {
                return Err(SpecError("an interval is at least 1s".into()));
            }
            return Ok(When::Interval(d));
        }
        let first = spec.split('@').next().unwrap_or("").to_ascii_lowercase();
        if ["minutely", "hourly", "daily", "weekly", "monthly"].contains(&first.as_str()) {
            return calendar(spec).map(When::Cron);
        }
        if spec.split_whitespace().count() != 5 {
            return Err(SpecError(format!(
                "`{spec}` is neither `every <duration>`, a calendar (daily@06:00…) nor a \
                 five-field cron expression"
            )));
        }
        Ok(When::Cron(vec![cron(spec)?]))
    }

    /// The first occurrence strictly after `after`; `anchor` is where intervals start.
    pub fn next_after(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            When::Cron(crons) => crons
                .iter()
                .filter_map(|c| c.find_next_occurrence(&after, false).ok())
                .min(),
            When::Interval(period) => {
                let period = chrono::Duration::from_std(*period).ok()?;
                if after < anchor {
                    return Some(anchor);
                }
                let elapsed = (after - anchor).num_milliseconds();
                let step = period.num_milliseconds().max(1);
                let n = elapsed / step + 1;
                anchor.checked_add_signed(chrono::Duration::milliseconds(n.checked_mul(step)?))
            }
        }
    }
}

/// A time range when occurrences are suppressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// Every day between two UTC times (crossing midnight when `from > to`).
    Daily { from: NaiveTime, to: NaiveTime },
    /// Between two instants.
    Between {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
}

impl Window {
    /// Parses `HH:MM-HH:MM` or `<RFC 3339>/<RFC 3339>`.
    pub fn parse(s: &str) -> Result<Window, SpecError> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('/') {
            let p = |x: &str| {
                DateTime::parse_from_rfc3339(x.trim())
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|e| SpecError(format!("`{x}`: {e}")))
            };
            let (from, to) = (p(a)?, p(b)?);
            if from >= to {
                return Err(SpecError(format!(
                    "`{s}`: the window ends before it starts"
                )));
            }
            return Ok(Window::Between { from, to });
        }
        let (a, b) = s.split_once('-').ok_or_else(|| {
            SpecError(format!(
                "`{s}` is neither HH:MM-HH:MM nor <RFC 3339>/<RFC 3339>"
            ))
        })?;
        let p = |x: &str| {
            NaiveTime::parse_from_str(x.trim(), "%H:%M")
                .map_err(|_| SpecError(format!("`{x}` is not a time (HH:MM)")))
        };
        let (from, to) = (p(a)?, p(b)?);
        if from == to {
            return Err(SpecError(format!("`{s}` is an empty window")));
        }
        Ok(Window::Daily { from, to })
    }

    /// True when `t` is inside the window (start included, end excluded).
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        match self {
            Window::Between { from, to } => *from <= t && t < *to,
            Window::Daily { from, to } => {
                let x = t.time();
                if from < to {
                    *from <= x && x < *to
                } else {
                    x >= *from || x < *to
                }
            }
        }
    }
}

/// The next `n` occurrences after `after` that no window suppresses (searching at most 10 000
/// candidates, so a window covering everything ends the list instead of looping).
pub fn next_runs(
    when: &When,
    windows: &[Window],
    after: DateTime<Utc>,
    anchor: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::with_capacity(n);
    let mut t = after;
    for _ in 0..10_000 {
        if out.len() >= n {
            break;
        }
        let Some(next) = when.next_after(t, anchor) else {
            break;
        };
        if !windows.iter().any(|w| w.contains(next)) {
            out.push(next);
        }
        t = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn nexts(spec: &str, after: &str, n: usize) -> Vec<String> {
        let w = When::parse(spec).unwrap();
        next_runs(&w, &[], at(after), at("2026-01-01T00:00:00Z"), n)
            .iter()
            .map(|t| t.format("%a %Y-%m-%d %H:%M:%S").to_string())
            .collect()
    }

    #[test]
    fn karajo_calendars() {
        assert_eq!(
            nexts("minutely", "2026-03-02T10:00:30Z", 2),
            ["Mon 2026-03-02 10:01:00", "Mon 2026-03-02 10:02:00"]
        );
        assert_eq!(
            nexts("hourly@0,15,30,45", "2026-03-02T10:20:00Z", 3),
            [
                "Mon 2026-03-02 10:30:00",
                "Mon 2026-03-02 10:45:00",
                "Mon 2026-03-02 11:00:00"
            ]
        );
        assert_eq!(
            nexts("daily@00:00,06:30", "2026-03-02T01:00:00Z", 3),
            [
                "Mon 2026-03-02 06:30:00",
                "Tue 2026-03-03 00:00:00",
                "Tue 2026-03-03 06:30:00"
            ]
        );
        assert_eq!(
            nexts("weekly@Sunday,Tuesday@15:00", "2026-03-02T00:00:00Z", 3),
            [
                "Tue 2026-03-03 15:00:00",
                "Sun 2026-03-08 15:00:00",
                "Tue 2026-03-10 15:00:00"
            ]
        );
        assert_eq!(
            nexts("monthly@1,15@18:00", "2026-03-02T00:00:00Z", 3),
            [
                "Sun 2026-03-15 18:00:00",
                "Wed 2026-04-01 18:00:00",
                "Wed 2026-04-15 18:00:00"
            ]
        );
        assert_eq!(
            nexts("daily", "2026-03-02T00:00:00Z", 1),
            ["Tue 2026-03-03 00:00:00"]
        );
    }

    #[test]
    fn cron_and_intervals() {
        assert_eq!(
            nexts("*/20 9 * * MON-FRI", "2026-03-06T09:30:00Z", 3),
            [
                "Fri 2026-03-06 09:40:00",
                "Mon 2026-03-09 09:00:00",
                "Mon 2026-03-09 09:20:00"
            ]
        );
        // intervals stay on the grid of the anchor whatever the query time
        assert_eq!(
            nexts("every 90s", "2026-01-01T00:02:00Z", 3),
            [
                "Thu 2026-01-01 00:03:00",
                "Thu 2026-01-01 00:04:30",
                "Thu 2026-01-01 00:06:00"
            ]
        );
        assert_eq!(
            nexts("every 1h", "2025-12-31T00:00:00Z", 1),
            ["Thu 2026-01-01 00:00:00"],
            "before the anchor, the anchor"
        );
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, needle) in [
            ("", "empty"),
            ("every 0s", "at least 1s"),
            ("every soon", "interval"),
            ("hourly@61", "minute"),
            ("daily@25:00", "time"),
            ("weekly@Funday@10:00", "day name"),
            ("monthly@0", "day of month"),
            ("monthly@1@", "time"),
            ("yearly", "neither"),
            ("* * *", "neither"),
            ("61 * * * *", "61 * * * *"),
        ] {
            let e = When::parse(spec).unwrap_err().0;
            assert!(e.contains(needle), "{spec:?}: {e}");
        }
    }

    #[test]
    fn suspend_windows_suppress_occurrences() {
        let night = Window::parse("22:00-06:00").unwrap();
        assert!(night.contains(at("2026-03-02T23:59:00Z")));
        assert!(night.contains(at("2026-03-02T05:59:00Z")));
        assert!(!night.contains(at("2026-03-02T06:00:00Z")));
        let freeze = Window::parse("2026-12-24T00:00:00Z/2026-12-27T00:00:00Z").unwrap();
        assert!(freeze.contains(at("2026-12-25T12:00:00Z")));
        assert!(!freeze.contains(at("2026-12-27T00:00:00Z")));
        let w = When::parse("hourly").unwrap();
        let runs = next_runs(
            &w,
            &[night],
            at("2026-03-02T20:30:00Z"),
            at("2026-01-01T00:00:00Z"),
            3,
        );
        let hours: Vec<u32> = runs.iter().map(|t| t.hour()).collect();
        assert_eq!(hours, [21, 6, 7]);
        for bad in [
            "22:00",
            "25:00-01:00",
            "10:00-10:00",
            "2026-01-02T00:00:00Z/2026-01-01T00:00:00Z",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
        // a window covering everything ends the list
        let always = Window::parse("00:00-23:59").unwrap();
        let w = When::parse("daily@23:59,12:00").unwrap();
        assert_eq!(
            next_runs(
                &w,
                &[always],
                at("2026-03-02T00:00:00Z"),
                at("2026-01-01T00:00:00Z"),
                2
            )
            .len(),
            2,
            "23:59 is outside [00:00, 23:59)"
        );
    }
}
