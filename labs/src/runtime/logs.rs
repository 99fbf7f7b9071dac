//! A container's log, in docker's `json-file` format: one JSON object per line of
//! output, `{"log":"hello\n","stream":"stdout","time":"2026-12-01T09:12:03.123456789Z"}`.
//! The monitor writes it as the output arrives; `mini logs` reads it back, with
//! `--tail`, `--since`, `-t` (timestamps) and `-f` (follow until the container stops).

use std::io::Write;

use serde::{Deserialize, Serialize};

/// One line of the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The line, with its newline (the last piece of output may have none).
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When it arrived (RFC 3339, nanoseconds).
    pub time: String,
}

/// Splits output into lines as it arrives; a line waits for its newline, unless it
/// grows past 16 KiB (docker splits long lines the same way).
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feed bytes; get the complete lines.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
            out.push(self.pending.drain(..=i).collect());
        }
        while self.pending.len() >= 16 * 1024 {
            out.push(self.pending.drain(..16 * 1024).collect());
        }
        out
    }

    /// What is left when the stream ends.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

/// Append one entry to the log file (one write(2) per line).
pub fn append(w: &mut impl Write, line: &[u8], stream: &str, time: &str) -> std::io::Result<()> {
    let e = Entry { log: String::from_utf8_lossy(line).into_owned(), stream: stream.into(), time: time.into() };
    let mut s = serde_json::to_string(&e).unwrap_or_default();
    s.push('\n');
    w.write_all(s.as_bytes())
}

/// Parse the log's text into entries (lines that do not parse are skipped).
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// What `mini logs` keeps of the entries: `--since` (nanoseconds), then the last
/// `tail` ones.
pub fn select(entries: Vec<Entry>, tail: Option<usize>, since: Option<i128>) -> Vec<Entry> {
    let mut v: Vec<Entry> = match since {
        Some(t) => {
            entries.into_iter().filter(|e| crate::units::parse_rfc3339(&e.time).is_some_and(|x| x >= t)).collect()
        }
        None => entries,
    };
    if let Some(n) = tail {
        let skip = v.len().saturating_sub(n);
        v.drain(..skip);
    }
    v
}

/// How an entry prints: the line, after its timestamp with `-t`.
pub fn render(e: &Entry, timestamps: bool) -> String {
    if timestamps {
        format!("{} {}", e.time, e.log)
    } else {
        e.log.clone()
    }
}

/// `--since`: an RFC 3339 time, a Unix timestamp, or a duration back from `now`
/// (`10m`, `1h30m`, `45s`). Returns nanoseconds since the epoch.
pub fn parse_since(s: &str, now: i128) -> Option<i128> {
    if let Some(t) = crate::units::parse_rfc3339(s) {
        return Some(t);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Some((secs * 1e9) as i128);
    }
    let mut total: i128 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        let unit: f64 = match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += (v * unit * 1e9) as i128;
    }
    if !num.is_empty() {
        return None;
    }
    Some(now - total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_for_their_newline() {
        let mut s = LineSplitter::default();
        assert!(s.feed(b"hel").is_empty());
        assert_eq!(s.feed(b"lo\nwor"), vec![b"hello\n".to_vec()]);
        assert_eq!(s.finish(), Some(b"wor".to_vec()));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn entries_are_dockers_json_file() {
        let mut out = Vec::new();
        append(&mut out, b"hi\n", "stdout", "2026-12-01T09:00:00.000000001Z").unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "{\"log\":\"hi\\n\",\"stream\":\"stdout\",\"time\":\"2026-12-01T09:00:00.000000001Z\"}\n"
        );
        let e = parse(&String::from_utf8(out).unwrap());
        assert_eq!(render(&e[0], true), "2026-12-01T09:00:00.000000001Z hi\n");
    }

    #[test]
    fn tail_and_since() {
        let e = |t: &str, l: &str| Entry { log: l.into(), stream: "stdout".into(), time: t.into() };
        let all = vec![e("2026-12-01T09:00:00Z", "a"), e("2026-12-01T09:00:10Z", "b"), e("2026-12-01T09:00:20Z", "c")];
        assert_eq!(select(all.clone(), Some(2), None).len(), 2);
        let since = crate::units::parse_rfc3339("2026-12-01T09:00:05Z");
        assert_eq!(select(all.clone(), None, since).iter().map(|x| x.log.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        let now = crate::units::parse_rfc3339("2026-12-01T09:00:30Z").unwrap();
        assert_eq!(parse_since("15s", now), crate::units::parse_rfc3339("2026-12-01T09:00:15Z"));
        assert_eq!(parse_since("1m", now), crate::units::parse_rfc3339("2026-12-01T08:59:30Z"));
        assert_eq!(parse_since("bogus", now), None);
    }
}
