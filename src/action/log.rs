//! The log handle an action writes its execution's lines to (stdout/stderr of scripts and
//! plugins, request summaries of http). Cheap to clone; a handle from [`StepLog::discard`]
//! (tests, actions run outside a step) drops everything. The engine's writer
//! ([`crate::engine::logs`]) masks secrets, caps the size and stores the lines.
//!
//! Progress: a line `MUTASK-PROGRESS: <percent> [message]` (or `MUTASK-PROGRESS: <message>`)
//! on stdout or stderr is recorded as a `progress` line instead of an output line (plugins use
//! stderr: their stdout carries the protocol).

use tokio::sync::mpsc::UnboundedSender;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    Http,
    Progress,
    System,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Http => "http",
            Stream::Progress => "progress",
            Stream::System => "system",
        }
    }
}

/// Prefix of a progress line.
pub const PROGRESS_PREFIX: &str = "MUTASK-PROGRESS:";

/// A handle to one execution's log.
#[derive(Debug, Clone, Default)]
pub struct StepLog {
    tx: Option<UnboundedSender<(Stream, String)>>,
}

impl StepLog {
    /// A handle that drops every line.
    pub fn discard() -> StepLog {
        StepLog { tx: None }
    }

    /// A handle feeding `tx`.
    pub fn new(tx: UnboundedSender<(Stream, String)>) -> StepLog {
        StepLog { tx: Some(tx) }
    }

    /// Records one line (a trailing newline is dropped); stdout and stderr lines starting with
    /// [`PROGRESS_PREFIX`] become progress lines.
    pub fn line(&self, stream: Stream, text: &str) {
        let Some(tx) = &self.tx else { return };
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let (stream, text) = match text.strip_prefix(PROGRESS_PREFIX) {
            Some(rest) if matches!(stream, Stream::Stdout | Stream::Stderr) => {
                (Stream::Progress, rest.trim())
            }
            _ => (stream, text),
        };
        let _ = tx.send((stream, text.to_string()));
    }

    /// True when lines go somewhere.
    pub fn is_recording(&self) -> bool {
        self.tx.is_some()
    }
}

/// Splits a byte stream into lines for a [`StepLog`] (a partial line is kept until its end).
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; complete lines go to `log`.
    pub fn feed(&mut self, log: &StepLog, stream: Stream, bytes: &[u8]) {
        for b in bytes {
            if *b == b'\n' {
                log.line(stream, &String::from_utf8_lossy(&self.partial));
                self.partial.clear();
            } else if self.partial.len() < MAX_LINE_BYTES {
                self.partial.push(*b);
            }
        }
    }

    /// Flushes a last line without a newline.
    pub fn finish(&mut self, log: &StepLog, stream: Stream) {
        if !self.partial.is_empty() {
            log.line(stream, &String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
    }
}

/// Longest line kept (longer lines are cut).
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// Parses a progress text: `42 copying` → (Some(42), "copying"); `copying` → (None, "copying").
pub fn parse_progress(text: &str) -> (Option<u8>, String) {
    let t = text.trim();
    let (head, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    match head.trim_end_matches('%').parse::<u8>() {
        Ok(p) if p <= 100 => (Some(p), rest.trim().to_string()),
        _ => (None, t.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_progress_and_splitting() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let log = StepLog::new(tx);
        let mut s = LineSplitter::default();
        s.feed(&log, Stream::Stdout, b"one\ntw");
        s.feed(
            &log,
            Stream::Stdout,
            b"o\r\nMUTASK-PROGRESS: 40% copying\nlast",
        );
        s.finish(&log, Stream::Stdout);
        log.line(Stream::Stderr, "MUTASK-PROGRESS: from a plugin");
        log.line(Stream::Http, "MUTASK-PROGRESS: not from http");
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, "one".to_string()),
                (Stream::Stdout, "two".to_string()),
                (Stream::Progress, "40% copying".to_string()),
                (Stream::Stdout, "last".to_string()),
                (Stream::Progress, "from a plugin".to_string()),
                (Stream::Http, "MUTASK-PROGRESS: not from http".to_string()),
            ]
        );
        assert_eq!(
            parse_progress("40% copying files"),
            (Some(40), "copying files".into())
        );
        assert_eq!(parse_progress("75"), (Some(75), String::new()));
        assert_eq!(parse_progress("warming up"), (None, "warming up".into()));
        assert_eq!(
            parse_progress("250 too much"),
            (None, "250 too much".into())
        );
        StepLog::discard().line(Stream::Stdout, "dropped");
    }
}
