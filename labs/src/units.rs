//! Numbers and times as docker prints them (its `go-units` package): sizes in decimal
//! units (`5.71MB`), durations in words (`Up 3 minutes`, `About an hour ago`), and
//! timestamps in RFC 3339 with nanoseconds (`2026-12-01T09:12:03.123456789Z`), the
//! format of `docker inspect`'s `Created`, `StartedAt`, `FinishedAt`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Now, in nanoseconds since the epoch.
pub fn now_nanos() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

/// RFC 3339 with nanoseconds, in UTC: `2026-12-01T09:12:03.123456789Z`.
pub fn rfc3339(nanos: i128) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

/// The nanoseconds since the epoch of an RFC 3339 time; `None` when it does not parse
/// or is docker's zero time (`0001-01-01T00:00:00Z`, "never").
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    (t.year() > 1).then(|| t.unix_timestamp_nanos())
}

/// docker's zero time, for a container that never started or never finished.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A size in decimal units, four significant digits: `5.71MB`, `287MB`, `0B`
/// (docker's `units.HumanSize`).
pub fn human_size(n: u64) -> String {
    human_size_digits(n, 4)
}

/// A size in decimal units with `digits` significant digits (Go's `%.Ng`, trailing
/// zeros dropped), as docker's `units.HumanSizeWithPrecision`: 4 where docker says
/// `HumanSize` (pull, `system df`), 3 in its image tables (`images`, `history`).
pub fn human_size_digits(n: u64, digits: usize) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    let int_digits = if v >= 100.0 {
        3
    } else if v >= 10.0 {
        2
    } else {
        1
    };
    let s = format!("{v:.prec$}", prec = digits.saturating_sub(int_digits));
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if s.len() > digits && !s.contains('.') {
        // 999.6 with 3 digits rounds to 1000: Go prints 1e+03.
        return format!("1e+03{}", units[u]);
    }
    format!("{s}{}", units[u])
}

/// A size in binary units as `docker stats` prints memory: `1.5MiB`, `64MiB`.
pub fn bytes_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s}{}", units[u])
    }
}

/// A duration in words, as docker's `units.HumanDuration`: "Less than a second",
/// "3 seconds", "About a minute", "5 minutes", "About an hour", "3 hours", "2 days",
/// "3 weeks", "4 months", "2 years".
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h) = (s / 60, s / 3600);
    let days = h / 24;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".into()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".into()
    } else if h < 48 {
        format!("{h} hours")
    } else if h < 24 * 7 * 2 {
        format!("{days} days")
    } else if h < 24 * 30 * 2 {
        format!("{} weeks", days / 7)
    } else if h < 24 * 365 * 2 {
        format!("{} months", days / 30)
    } else {
        format!("{} years", days / 365)
    }
}

/// How long ago `then` (nanoseconds since the epoch) was, from `now`, in words.
pub fn ago(then: i128, now: i128) -> String {
    let d = Duration::from_nanos((now - then).max(0) as u64);
    format!("{} ago", human_duration(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(5_710_000), "5.71MB");
        assert_eq!(human_size(287_000_000), "287MB");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(bytes_size(64 << 20), "64MiB");
        assert_eq!(bytes_size(1536 * 1024), "1.5MiB");
    }

    #[test]
    fn durations_as_docker_words_them() {
        let s = Duration::from_secs;
        assert_eq!(human_duration(Duration::from_millis(300)), "Less than a second");
        assert_eq!(human_duration(s(2)), "2 seconds");
        assert_eq!(human_duration(s(61)), "About a minute");
        assert_eq!(human_duration(s(180)), "3 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
        assert_eq!(human_duration(s(21 * 86400)), "3 weeks");
        assert_eq!(human_duration(s(800 * 86400)), "2 years");
    }

    #[test]
    fn rfc3339_round_trips_with_nanoseconds() {
        let t: i128 = 1_764_580_323_123_456_789;
        let s = rfc3339(t);
        assert_eq!(s, "2025-12-01T09:12:03.123456789Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(parse_rfc3339(ZERO_TIME), None);
        assert_eq!(parse_rfc3339("2023-01-09T17:05:20.656498097+01:00"), Some(1_673_280_320_656_498_097));
    }
}
