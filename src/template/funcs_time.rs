//! Go `time.Time` values and sprig's date functions (`now`, `date`, `dateInZone`, `htmlDate`,
//! `unixEpoch`, `toDate`, `dateModify`).
//!
//! Role: format and parse times with Go layouts (`2006-01-02T15:04:05Z07:00`) and print them
//! like Go's `time.Time.String()`. Invariants: the server time zone is taken as UTC (Go's
//! `Local`), and named zones (`Europe/Paris`) fall back to UTC like sprig does when the zone
//! database is missing — mutask ships no zone database; layouts are interpreted with Go's
//! chunk rules (`Jan` vs `January`, `_2`, `.000` vs `.999`); nothing panics on any layout or
//! input, and layouts longer than [`MAX_LAYOUT`] bytes are refused.

use std::sync::Arc;

use chrono::format::{Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike, Utc};
use minijinja::value::{Object, ObjectRepr};
use minijinja::{Error, State, Value};

use super::{GV, arg_str, err, go_type_name, gv, want};

/// Longest accepted layout.
pub(crate) const MAX_LAYOUT: usize = 1024;

/// A Go `time.Time`: an instant with a fixed offset and a zone name.
#[derive(Debug, Clone)]
pub struct GoTime {
    pub(crate) t: DateTime<FixedOffset>,
    pub(crate) zone: String,
}

impl Object for GoTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.go_string())
    }
}

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    Iso(TzStyle),
    Num(TzStyle),
    /// Fixed fractional seconds: separator, digits.
    Frac0(char, usize),
    /// Trimmed fractional seconds: separator, max digits.
    Frac9(char, usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TzStyle {
    HhMm,
    HhColonMm,
    Hh,
    HhMmSs,
    HhColonMmColonSs,
}

fn starts_lower(s: &[u8]) -> bool {
    s.first().is_some_and(|c| c.is_ascii_lowercase())
}

/// Go's `nextStdChunk`: (literal prefix, std chunk, rest).
fn next_chunk(layout: &str) -> (&str, Option<(Std, usize)>, &str) {
    let b = layout.as_bytes();
    let n = b.len();
    let has = |i: usize, s: &str| layout.get(i..i + s.len()) == Some(s);
    let mut i = 0;
    while i < n {
        let found: Option<(Std, usize)> = match b[i] {
            b'J' if has(i, "Jan") => {
                if has(i, "January") {
                    Some((Std::LongMonth, 7))
                } else if !starts_lower(&b[i + 3..]) {
                    Some((Std::Month, 3))
                } else {
                    None
                }
            }
            b'M' => {
                if has(i, "Mon") {
                    if has(i, "Monday") {
                        Some((Std::LongWeekDay, 6))
                    } else if !starts_lower(&b[i + 3..]) {
                        Some((Std::WeekDay, 3))
                    } else {
                        None
                    }
                } else if has(i, "MST") {
                    Some((Std::TZ, 3))
                } else {
                    None
                }
            }
            b'0' => {
                if i + 1 < n && (b'1'..=b'6').contains(&b[i + 1]) {
                    let s = match b[i + 1] {
                        b'1' => Std::ZeroMonth,
                        b'2' => Std::ZeroDay,
                        b'3' => Std::ZeroHour12,
                        b'4' => Std::ZeroMinute,
                        b'5' => Std::ZeroSecond,
                        _ => Std::Year,
                    };
                    Some((s, 2))
                } else if has(i, "002") {
                    Some((Std::ZeroYearDay, 3))
                } else {
                    None
                }
            }
            b'1' => {
                if has(i, "15") {
                    Some((Std::Hour, 2))
                } else {
                    Some((Std::NumMonth, 1))
                }
            }
            b'2' => {
                if has(i, "2006") {
                    Some((Std::LongYear, 4))
                } else {
                    Some((Std::Day, 1))
                }
            }
            b'_' => {
                if has(i, "_2") {
                    if has(i + 1, "2006") {
                        return (&layout[..i + 1], Some((Std::LongYear, 4)), &layout[i + 5..]);
                    }
                    Some((Std::UnderDay, 2))
                } else if has(i, "__2") {
                    Some((Std::UnderYearDay, 3))
                } else {
                    None
                }
            }
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if has(i, "PM") => Some((Std::PM, 2)),
            b'p' if has(i, "pm") => Some((Std::Pm, 2)),
            b'-' => {
                if has(i, "-070000") {
                    Some((Std::Num(TzStyle::HhMmSs), 7))
                } else if has(i, "-07:00:00") {
                    Some((Std::Num(TzStyle::HhColonMmColonSs), 9))
                } else if has(i, "-0700") {
                    Some((Std::Num(TzStyle::HhMm), 5))
                } else if has(i, "-07:00") {
                    Some((Std::Num(TzStyle::HhColonMm), 6))
                } else if has(i, "-07") {
                    Some((Std::Num(TzStyle::Hh), 3))
                } else {
                    None
                }
            }
            b'Z' => {
                if has(i, "Z070000") {
                    Some((Std::Iso(TzStyle::HhMmSs), 7))
                } else if has(i, "Z07:00:00") {
                    Some((Std::Iso(TzStyle::HhColonMmColonSs), 9))
                } else if has(i, "Z0700") {
                    Some((Std::Iso(TzStyle::HhMm), 5))
                } else if has(i, "Z07:00") {
                    Some((Std::Iso(TzStyle::HhColonMm), 6))
                } else if has(i, "Z07") {
                    Some((Std::Iso(TzStyle::Hh), 3))
                } else {
                    None
                }
            }
            c @ (b'.' | b',') if i + 1 < n && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < n && b[j] == ch {
                    j += 1;
                }
                if j < n && b[j].is_ascii_digit() {
                    None
                } else {
                    let digits = j - (i + 1);
                    let sep = c as char;
                    Some((
                        if ch == b'0' {
                            Std::Frac0(sep, digits)
                        } else {
                            Std::Frac9(sep, digits)
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        if let Some((std, len)) = found {
            return (&layout[..i], Some((std, len)), &layout[i + len..]);
        }
        // Advance by one UTF-8 character.
        i += layout[i..].chars().next().map_or(1, char::len_utf8);
    }
    (layout, None, "")
}

fn push_tz(out: &mut String, offset_secs: i32, style: TzStyle) {
    let sign = if offset_secs < 0 { '-' } else { '+' };
    let a = offset_secs.unsigned_abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    out.push(sign);
    match style {
        TzStyle::HhMm => out.push_str(&format!("{h:02}{m:02}")),
        TzStyle::HhColonMm => out.push_str(&format!("{h:02}:{m:02}")),
        TzStyle::Hh => out.push_str(&format!("{h:02}")),
        TzStyle::HhMmSs => out.push_str(&format!("{h:02}{m:02}{s:02}")),
        TzStyle::HhColonMmColonSs => out.push_str(&format!("{h:02}:{m:02}:{s:02}")),
    }
}

impl GoTime {
    /// The current instant in UTC.
    pub fn now() -> GoTime {
        GoTime::utc(Utc::now())
    }

    pub(crate) fn utc(t: DateTime<Utc>) -> GoTime {
        GoTime {
            t: t.fixed_offset(),
            zone: "UTC".to_string(),
        }
    }

    /// Go's zero time (`0001-01-01 00:00:00 +0000 UTC`).
    pub(crate) fn zero() -> GoTime {
        let t = NaiveDate::from_ymd_opt(1, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|n| Utc.from_utc_datetime(&n))
            .unwrap_or_default();
        GoTime::utc(t)
    }

    /// Formats with a Go layout.
    pub fn format(&self, layout: &str) -> String {
        let t = &self.t;
        let mut out = String::with_capacity(layout.len() + 8);
        let mut rest = layout;
        loop {
            let (prefix, std, suffix) = next_chunk(rest);
            out.push_str(prefix);
            let Some((std, _)) = std else { break };
            rest = suffix;
            let hour12 = match t.hour() % 12 {
                0 => 12,
                h => h,
            };
            match std {
                Std::LongYear => out.push_str(&format!("{:04}", t.year())),
                Std::Year => out.push_str(&format!("{:02}", t.year().rem_euclid(100))),
                Std::LongMonth => out.push_str(LONG_MONTHS[t.month0() as usize]),
                Std::Month => out.push_str(&LONG_MONTHS[t.month0() as usize][..3]),
                Std::NumMonth => out.push_str(&t.month().to_string()),
                Std::ZeroMonth => out.push_str(&format!("{:02}", t.month())),
                Std::LongWeekDay => {
                    out.push_str(LONG_DAYS[t.weekday().num_days_from_sunday() as usize])
                }
                Std::WeekDay => {
                    out.push_str(&LONG_DAYS[t.weekday().num_days_from_sunday() as usize][..3])
                }
                Std::Day => out.push_str(&t.day().to_string()),
                Std::UnderDay => out.push_str(&format!("{:>2}", t.day())),
                Std::ZeroDay => out.push_str(&format!("{:02}", t.day())),
                Std::UnderYearDay => out.push_str(&format!("{:>3}", t.ordinal())),
                Std::ZeroYearDay => out.push_str(&format!("{:03}", t.ordinal())),
                Std::Hour => out.push_str(&format!("{:02}", t.hour())),
                Std::Hour12 => out.push_str(&hour12.to_string()),
                Std::ZeroHour12 => out.push_str(&format!("{hour12:02}")),
                Std::Minute => out.push_str(&t.minute().to_string()),
                Std::ZeroMinute => out.push_str(&format!("{:02}", t.minute())),
                Std::Second => out.push_str(&t.second().to_string()),
                Std::ZeroSecond => out.push_str(&format!("{:02}", t.second())),
                Std::PM => out.push_str(if t.hour() >= 12 { "PM" } else { "AM" }),
                Std::Pm => out.push_str(if t.hour() >= 12 { "pm" } else { "am" }),
                Std::TZ => {
                    if self.zone.is_empty() {
                        push_tz(&mut out, t.offset().local_minus_utc(), TzStyle::HhMm);
                    } else {
                        out.push_str(&self.zone);
                    }
                }
                Std::Iso(style) => {
                    let off = t.offset().local_minus_utc();
                    if off == 0 {
                        out.push('Z');
                    } else {
                        push_tz(&mut out, off, style);
                    }
                }
                Std::Num(style) => push_tz(&mut out, t.offset().local_minus_utc(), style),
                Std::Frac0(sep, n) => {
                    let ns = format!("{:09}", t.nanosecond() % 1_000_000_000);
                    out.push(sep);
                    out.push_str(&ns[..n.min(9)]);
                    for _ in 9..n {
                        out.push('0');
                    }
                }
                Std::Frac9(sep, n) => {
                    let ns = format!("{:09}", t.nanosecond() % 1_000_000_000);
                    let digits = ns[..n.min(9)].trim_end_matches('0');
                    if !digits.is_empty() {
                        out.push(sep);
                        out.push_str(digits);
                    }
                }
            }
        }
        out
    }

    /// Go's `time.Time.String()` (without the monotonic clock reading).
    pub fn go_string(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }

    /// `time.RFC3339Nano`, the JSON encoding of a Go time.
    pub fn rfc3339_nano(&self) -> String {
        self.format("2006-01-02T15:04:05.999999999Z07:00")
    }

    /// Parses with a Go layout (approximation through chrono); the result is in UTC unless
    /// the layout carries an offset.
    pub fn parse(layout: &str, value: &str) -> Result<GoTime, String> {
        if layout.len() > MAX_LAYOUT {
            return Err("layout too long".to_string());
        }
        let mut fmt = String::new();
        let mut has_tz = false;
        let mut rest = layout;
        loop {
            let (prefix, std, suffix) = next_chunk(rest);
            fmt.push_str(&prefix.replace('%', "%%"));
            let Some((std, _)) = std else { break };
            rest = suffix;
            fmt.push_str(match std {
                Std::LongYear => "%Y",
                Std::Year => "%y",
                Std::LongMonth => "%B",
                Std::Month => "%b",
                Std::NumMonth | Std::ZeroMonth => "%m",
                Std::LongWeekDay => "%A",
                Std::WeekDay => "%a",
                Std::Day | Std::ZeroDay => "%d",
                Std::UnderDay => "%e",
                Std::UnderYearDay | Std::ZeroYearDay => "%j",
                Std::Hour => "%H",
                Std::Hour12 | Std::ZeroHour12 => "%I",
                Std::Minute | Std::ZeroMinute => "%M",
                Std::Second | Std::ZeroSecond => "%S",
                Std::PM | Std::Pm => "%p",
                Std::TZ => "%Z",
                Std::Iso(TzStyle::HhColonMm) | Std::Num(TzStyle::HhColonMm) => {
                    has_tz = true;
                    "%:z"
                }
                Std::Iso(_) | Std::Num(_) => {
                    has_tz = true;
                    "%z"
                }
                Std::Frac0(..) | Std::Frac9(..) => "%.f",
            });
        }
        let bad = |e: chrono::ParseError| format!("parsing time {value:?} as {layout:?}: {e}");
        // Go writes UTC as "Z" in ISO 8601 layouts; chrono wants a numeric offset.
        let v = if has_tz && value.ends_with('Z') {
            format!("{}+00:00", &value[..value.len() - 1])
        } else {
            value.to_string()
        };
        let mut p = Parsed::new();
        let parsed = chrono::format::parse(&mut p, &v, StrftimeItems::new(&fmt));
        if parsed.is_err() && has_tz {
            // Retry with the other offset spelling (`+0200` vs `+02:00`).
            p = Parsed::new();
            chrono::format::parse(&mut p, &v, StrftimeItems::new(&fmt.replace("%z", "%:z")))
                .map_err(bad)?;
        } else {
            parsed.map_err(bad)?;
        }
        // Go: elements missing from the layout are zero, or one when zero is impossible.
        let fill = |r: chrono::format::ParseResult<()>| r.map_err(bad);
        if p.year().is_none() && p.year_mod_100().is_none() && p.isoyear().is_none() {
            fill(p.set_year(0))?;
        }
        if p.ordinal().is_none() {
            if p.month().is_none() {
                fill(p.set_month(1))?;
            }
            if p.day().is_none() {
                fill(p.set_day(1))?;
            }
        }
        if p.hour_mod_12().is_none() {
            fill(p.set_hour(0))?;
        } else if p.hour_div_12().is_none() {
            fill(p.set_ampm(false))?;
        }
        if p.minute().is_none() {
            fill(p.set_minute(0))?;
        }
        if p.second().is_none() {
            fill(p.set_second(0))?;
        }
        match p.offset() {
            Some(_) => {
                let t = p.to_datetime().map_err(bad)?;
                let zone = if t.offset().local_minus_utc() == 0 {
                    "UTC".to_string()
                } else {
                    String::new()
                };
                Ok(GoTime { t, zone })
            }
            None => {
                let n = p.to_naive_datetime_with_offset(0).map_err(bad)?;
                Ok(GoTime::utc(Utc.from_utc_datetime(&n)))
            }
        }
    }
}

/// The time of a date argument: a time, or Unix seconds; anything else is "now" (sprig).
fn date_arg(v: &Value) -> GoTime {
    match gv(v) {
        GV::Time(t) => t.clone(),
        GV::Int(i) => i64::try_from(i)
            .ok()
            .and_then(|s| Utc.timestamp_opt(s, 0).single())
            .map_or_else(GoTime::now, GoTime::utc),
        _ => GoTime::now(),
    }
}

fn time_arg(v: &Value) -> Result<GoTime, Error> {
    match gv(v) {
        GV::Time(t) => Ok(t.clone()),
        _ => Err(err(format!(
            "wrong type for value; expected time.Time; got {}",
            go_type_name(v)
        ))),
    }
}

fn layout_arg(v: &Value) -> Result<String, Error> {
    let l = arg_str(v)?;
    if l.len() > MAX_LAYOUT {
        return Err(err("layout too long"));
    }
    Ok(l.into_owned())
}

pub(crate) fn now(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 0)?;
    Ok(Value::from_object(GoTime::now()))
}

pub(crate) fn date(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    Ok(Value::from(date_arg(&a[1]).format(&layout_arg(&a[0])?)))
}

pub(crate) fn date_in_zone(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 3)?;
    // Zones other than UTC are not available (no zone database): like sprig on a failed
    // LoadLocation, fall back to UTC.
    arg_str(&a[2])?;
    Ok(Value::from(date_arg(&a[1]).format(&layout_arg(&a[0])?)))
}

pub(crate) fn html_date(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(date_arg(&a[0]).format("2006-01-02")))
}

pub(crate) fn html_date_in_zone(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    arg_str(&a[1])?;
    Ok(Value::from(date_arg(&a[0]).format("2006-01-02")))
}

pub(crate) fn unix_epoch(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 1)?;
    Ok(Value::from(time_arg(&a[0])?.t.timestamp().to_string()))
}

pub(crate) fn to_date(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let t = GoTime::parse(&layout_arg(&a[0])?, &arg_str(&a[1])?).unwrap_or_else(|_| GoTime::zero());
    Ok(Value::from_object(t))
}

pub(crate) fn must_to_date(_s: &State, a: &[Value]) -> Result<Value, Error> {
    want(a, 2)?;
    let t = GoTime::parse(&layout_arg(&a[0])?, &arg_str(&a[1])?).map_err(err)?;
    Ok(Value::from_object(t))
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i128, String> {
    let orig = s;
    let bad = || format!("time: invalid duration {orig:?}");
    let (neg, mut s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {orig:?}"))?;
        if num_end == 0 {
            return Err(bad());
        }
        let num: f64 = s[..num_end].parse().map_err(|_| bad())?;
        s = &s[num_end..];
        let unit_end = s
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(s.len());
        let mult: f64 = match &s[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            u => return Err(format!("time: unknown unit {u:?} in duration {orig:?}")),
        };
        total += num * mult;
        s = &s[unit_end..];
    }
    if total > 9.3e18 {
        return Err(bad());
    }
    let ns = total as i128;
    Ok(if neg { -ns } else { ns })
}

fn modify(a: &[Value], must: bool) -> Result<Value, Error> {
    want(a, 2)?;
    let d = arg_str(&a[0])?;
    let t = time_arg(&a[1])?;
    match parse_duration(&d) {
        Ok(ns) => {
            let moved = i64::try_from(ns)
                .ok()
                .and_then(|ns| t.t.checked_add_signed(chrono::Duration::nanoseconds(ns)))
                .ok_or_else(|| err("time out of range"))?;
            Ok(Value::from_object(GoTime {
                t: moved,
                zone: t.zone,
            }))
        }
        Err(e) if must => Err(err(e)),
        Err(_) => Ok(Value::from_object(t)),
    }
}

pub(crate) fn date_modify(_s: &State, a: &[Value]) -> Result<Value, Error> {
    modify(a, false)
}

pub(crate) fn must_date_modify(_s: &State, a: &[Value]) -> Result<Value, Error> {
    modify(a, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> GoTime {
        GoTime {
            t: DateTime::parse_from_rfc3339(s).unwrap(),
            zone: "UTC".into(),
        }
    }

    #[test]
    fn formats_go_layouts() {
        let x = t("2024-03-05T07:08:09.120Z");
        assert_eq!(x.format("2006-01-02"), "2024-03-05");
        assert_eq!(x.format("Jan _2 15:04:05.000"), "Mar  5 07:08:09.120");
        assert_eq!(
            x.format("Monday, January 2 2006 3:04PM"),
            "Tuesday, March 5 2024 7:08AM"
        );
        assert_eq!(
            x.format("2006-01-02T15:04:05.999999999Z07:00"),
            "2024-03-05T07:08:09.12Z"
        );
        assert_eq!(
            x.format("06 002 pm MST -0700 -07:00"),
            "24 065 am UTC +0000 +00:00"
        );
        assert_eq!(x.go_string(), "2024-03-05 07:08:09.12 +0000 UTC");
        assert_eq!(GoTime::zero().go_string(), "0001-01-01 00:00:00 +0000 UTC");
        let p = GoTime {
            t: DateTime::parse_from_rfc3339("2024-03-05T07:08:09+02:00").unwrap(),
            zone: String::new(),
        };
        assert_eq!(p.format("Z07:00 MST"), "+02:00 +0200");
    }

    #[test]
    fn parses_go_layouts() {
        let p = GoTime::parse("2006-01-02", "2024-03-05").unwrap();
        assert_eq!(p.go_string(), "2024-03-05 00:00:00 +0000 UTC");
        let p = GoTime::parse("2006-01-02T15:04:05Z07:00", "2024-03-05T07:08:09Z").unwrap();
        assert_eq!(p.t.timestamp(), 1709622489);
        let p = GoTime::parse("2006-01-02 15:04", "2024-03-05 07:08").unwrap();
        assert_eq!(p.format("15h04"), "07h08");
        assert!(GoTime::parse("2006-01-02", "nope").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration("-1.5h").unwrap(), -5_400_000_000_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("3x").is_err());
    }
}
