//! The limits a student asks for (`--memory 64M --cpus 0.5 --pids 20 ...`), parsed
//! once, then turned into the values each cgroup version's files expect.
//!
//! | flag | cgroup v2 file | cgroup v1 file(s) |
//! |---|---|---|
//! | `--memory 64M` | `memory.max` (+ `memory.swap.max` = 0) | `memory.limit_in_bytes` (+ `memory.memsw.limit_in_bytes`) |
//! | `--cpus 0.5` | `cpu.max` = `50000 100000` | `cpu.cfs_period_us` = 100000, `cpu.cfs_quota_us` = 50000 |
//! | `--pids 20` | `pids.max` | `pids.max` |
//! | `--io-weight 100` | `io.weight` (or `io.bfq.weight`) | `blkio.weight` (scaled ×5 to its 10..1000), or `blkio.bfq.weight` (1..1000) |
//! | `--cpuset 0-1` | `cpuset.cpus` | `cpuset.cpus` (+ `cpuset.mems`, copied from the parent) |

use std::fmt;

use serde::{Serialize, Serializer};

/// The CFS period contlab uses: 100 ms, the kernel's default
/// (<https://docs.kernel.org/scheduler/sched-bwc.html>).
pub const CFS_PERIOD_US: u64 = 100_000;

/// A limit that can also be lifted: a number, or `max` (no limit), as cgroup v2
/// files write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Max {
    /// No limit.
    Max,
    /// This many bytes, tasks, microseconds...
    Value(u64),
}

impl fmt::Display for Max {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Max::Max => f.write_str("max"),
            Max::Value(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Max {
    /// A number, or the string `"max"`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Max::Max => s.serialize_str("max"),
            Max::Value(n) => s.serialize_u64(*n),
        }
    }
}

impl Max {
    /// Read a limit as a cgroup file shows it: `max`, a number, or (cgroup v1) `-1` or
    /// a number so large it means "no limit" (v1's memory.limit_in_bytes shows
    /// 9223372036854771712 when unlimited).
    pub fn from_file(text: &str) -> Option<Max> {
        let t = text.trim();
        if t == "max" || t == "-1" {
            return Some(Max::Max);
        }
        let n: u64 = t.parse().ok()?;
        Some(if n >= 1 << 62 { Max::Max } else { Max::Value(n) })
    }

    /// `64.0M`, or `max`.
    pub fn human_bytes(self) -> String {
        match self {
            Max::Max => "max".into(),
            Max::Value(n) => human_bytes(n),
        }
    }
}

/// A CPU bandwidth limit: how much CPU time the group may use per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpus {
    /// No limit.
    Max,
    /// `quota_us` microseconds of CPU time every `period_us` microseconds, summed over
    /// all the CPUs: 0.5 CPU = 50000 every 100000, 2 CPUs = 200000 every 100000.
    Quota {
        /// CPU time per period, in microseconds.
        quota_us: u64,
        /// The period, in microseconds.
        period_us: u64,
    },
}

impl Cpus {
    /// The cgroup v2 `cpu.max` line: `$QUOTA $PERIOD` (`max 100000` when unlimited).
    pub fn v2(self) -> String {
        match self {
            Cpus::Max => format!("max {CFS_PERIOD_US}"),
            Cpus::Quota { quota_us, period_us } => format!("{quota_us} {period_us}"),
        }
    }

    /// The cgroup v1 (`cpu.cfs_period_us`, `cpu.cfs_quota_us`) values; `-1` is no quota.
    pub fn v1(self) -> (String, String) {
        match self {
            Cpus::Max => (CFS_PERIOD_US.to_string(), "-1".into()),
            Cpus::Quota { quota_us, period_us } => (period_us.to_string(), quota_us.to_string()),
        }
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cpus::Max => f.write_str("max"),
            Cpus::Quota { quota_us, period_us } => write!(f, "{:.2}", *quota_us as f64 / *period_us as f64),
        }
    }
}

/// v1 `cpu.shares` as v2 `cpu.weight`, as runc (1.3.2 on) and crun (1.23 on) map
/// docker's `--cpu-shares`: 2..=262144 onto 1..=10000 by a curve through the two
/// defaults, 1024 → 100 (the older linear map gave 39, a low priority by default):
/// with l = log2(shares), weight = ceil(10^((l² + 125 l) / 612 − 7/34)).
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0..=2 => 1,
        262_144.. => 10_000,
        s => {
            let l = (s as f64).log2();
            let e = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            (10f64.powf(e).ceil() as u64).clamp(1, 10_000)
        }
    }
}

/// The limits of one group. Every field is optional: `create` sets those given,
/// `set` changes those given and leaves the others alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in bytes, or no limit. Past it the kernel reclaims memory, then its
    /// OOM killer kills a process of the group; the same limit holds for memory+swap.
    pub memory: Option<Max>,
    /// Memory+swap limit in bytes (docker's `--memory-swap`), written with `memory`.
    /// `None`: the same as the memory limit, so the group gets no swap.
    pub memory_swap: Option<Max>,
    /// CPU bandwidth: CPU time per period.
    pub cpus: Option<Cpus>,
    /// CPU weight against sibling groups, in docker's `--cpu-shares` units (2..=262144,
    /// 1024 by default): v1 `cpu.shares`, v2 `cpu.weight` (1..=10000) by
    /// [`shares_to_weight`]. It only matters when CPUs are contended.
    pub cpu_shares: Option<u64>,
    /// Max tasks (processes and threads): fork(2) fails with EAGAIN beyond it.
    pub pids: Option<Max>,
    /// I/O weight 1..10000 (default 100), against sibling groups.
    pub io_weight: Option<u16>,
    /// CPUs the group may run on (`0-1`, `0,2-3`).
    pub cpuset: Option<String>,
    /// The devices the group's processes may open, and nothing else (cgroup v1:
    /// `devices.deny` `a`, then one `devices.allow` per rule; cgroup v2: an eBPF
    /// program attached to the group, [`super::devices`]).
    pub devices: Option<Vec<DeviceRule>>,
}

/// What kind of device a [`DeviceRule`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// `a`: every device, character and block.
    All,
    /// `c`: character devices (`/dev/null` is c 1:3).
    Char,
    /// `b`: block devices.
    Block,
}

/// One line of the v1 `devices.allow` file: `TYPE MAJOR:MINOR ACCESS`, e.g. `c 1:3 rwm`
/// (read, write, mknod on /dev/null); `*` for any major or minor; `a` alone is every
/// device. <https://docs.kernel.org/admin-guide/cgroup-v1/devices.html>
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// Character, block, or all.
    pub kind: DeviceKind,
    /// The major number (`None`: `*`).
    pub major: Option<u32>,
    /// The minor number (`None`: `*`).
    pub minor: Option<u32>,
    /// Some of `r` (read), `w` (write), `m` (mknod), in that order.
    pub access: String,
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_else(|| "*".into());
        match self.kind {
            DeviceKind::All => f.write_str("a"),
            DeviceKind::Char | DeviceKind::Block => {
                let t = if self.kind == DeviceKind::Char { 'c' } else { 'b' };
                write!(f, "{t} {}:{} {}", num(self.major), num(self.minor), self.access)
            }
        }
    }
}

/// Parse a device rule: `a`, or `c|b MAJOR:MINOR [ACCESS]` (ACCESS defaults to rwm).
pub fn parse_device_rule(s: &str) -> Result<DeviceRule, String> {
    let bad = || format!("{s:?} is not a device rule: write TYPE MAJOR:MINOR ACCESS, e.g. 'c 1:3 rwm', or 'a'");
    let f: Vec<&str> = s.split_whitespace().collect();
    if f == ["a"] {
        return Ok(DeviceRule { kind: DeviceKind::All, major: None, minor: None, access: "rwm".into() });
    }
    let (t, nums, access) = match f.as_slice() {
        [t, n] => (*t, *n, "rwm"),
        [t, n, a] => (*t, *n, *a),
        _ => return Err(bad()),
    };
    let kind = match t {
        "c" => DeviceKind::Char,
        "b" => DeviceKind::Block,
        _ => return Err(bad()),
    };
    let (ma, mi) = nums.split_once(':').ok_or_else(bad)?;
    let num = |x: &str| if x == "*" { Ok(None) } else { x.parse().map(Some).map_err(|_| bad()) };
    let ok = !access.is_empty() && access.chars().all(|c| "rwm".contains(c));
    let ordered: String = "rwm".chars().filter(|c| access.contains(*c)).collect();
    if !ok || ordered.len() != access.len() {
        return Err(bad());
    }
    Ok(DeviceRule { kind, major: num(ma)?, minor: num(mi)?, access: ordered })
}

impl Limits {
    /// Whether no limit was given.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// `memory=64.0M cpus=0.50 pids=20`, for notes.
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(m) = self.memory {
            v.push(format!("memory={}", m.human_bytes()));
        }
        if let Some(c) = self.cpus {
            v.push(format!("cpus={c}"));
        }
        if let Some(p) = self.pids {
            v.push(format!("pids={p}"));
        }
        if let Some(w) = self.io_weight {
            v.push(format!("io-weight={w}"));
        }
        if let Some(c) = &self.cpuset {
            v.push(format!("cpuset={c}"));
        }
        if let Some(d) = &self.devices {
            let rules: Vec<String> = d.iter().map(|r| r.to_string()).collect();
            v.push(format!("devices=[{}]", rules.join(", ")));
        }
        if v.is_empty() {
            "no limits".into()
        } else {
            v.join(" ")
        }
    }
}

/// Parse `--memory`: `64M`, `1g`, `1048576`, `max`.
pub fn parse_memory(s: &str) -> Result<Max, String> {
    if s == "max" {
        return Ok(Max::Max);
    }
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let help = "write a number of bytes with an optional K, M, G or T suffix (powers of 1024), e.g. 64M, or max";
    if num.is_empty() {
        return Err(format!("{s:?} is not a size: {help}"));
    }
    if unit.starts_with('.') {
        return Err(format!("{s:?}: no decimals; use a smaller unit instead (1536M, not 1.5G)"));
    }
    let mult: u64 = match unit {
        "" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        "t" | "T" => 1 << 40,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: {help}")),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is too large: {help}"))?;
    match n.checked_mul(mult) {
        Some(0) => Err(format!("{s:?}: a memory limit of 0 would kill the first process at once; {help}")),
        Some(b) => Ok(Max::Value(b)),
        None => Err(format!("{s:?} is too large: {help}")),
    }
}

/// Parse `--cpus`: a positive decimal number of CPUs, or `max`.
pub fn parse_cpus(s: &str) -> Result<Cpus, String> {
    if s == "max" {
        return Ok(Cpus::Max);
    }
    let help = "write a positive number of CPUs such as 0.5 or 2, or max";
    let c: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of CPUs: {help}"))?;
    if !c.is_finite() || c <= 0.0 {
        return Err(format!("{s:?}: {help}"));
    }
    let quota = (c * CFS_PERIOD_US as f64).round();
    if quota < 1000.0 {
        return Err(format!(
            "{s:?} is below 0.01 CPU: the kernel's smallest quota is 1 ms (1000 us) per {CFS_PERIOD_US} us period"
        ));
    }
    if quota > 1e15 {
        return Err(format!("{s:?} is too large: {help}"));
    }
    Ok(Cpus::Quota { quota_us: quota as u64, period_us: CFS_PERIOD_US })
}

/// Parse `--pids`: a positive number of tasks, or `max`.
pub fn parse_pids(s: &str) -> Result<Max, String> {
    if s == "max" {
        return Ok(Max::Max);
    }
    match s.parse::<u64>() {
        Ok(0) => Err("--pids 0 would forbid any new process; give at least 1, or max".into()),
        Ok(n) if n <= i32::MAX as u64 => Ok(Max::Value(n)),
        _ => Err(format!("{s:?} is not a number of tasks: give a positive integer, or max")),
    }
}

/// Parse `--cpuset`: `N`, `N-M`, comma-separated, as cpuset.cpus takes them.
pub fn parse_cpuset(s: &str) -> Result<String, String> {
    let bad = || format!("{s:?} is not a CPU list: write CPU numbers and ranges such as 0, 0-1 or 0,2-3");
    if s.is_empty() {
        return Err(bad());
    }
    for item in s.split(',') {
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        let ok = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()) && x.parse::<u32>().is_ok();
        if !ok(a) || !ok(b) || a.parse::<u32>().ok() > b.parse::<u32>().ok() {
            return Err(bad());
        }
    }
    Ok(s.to_string())
}

/// Bytes as systemd-cgtop shows them: `512B`, `140.0K`, `75.7M`, `1.2G`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("64M"), Ok(Max::Value(64 << 20)));
        assert_eq!(parse_memory("64m"), Ok(Max::Value(64 << 20)));
        assert_eq!(parse_memory("1G"), Ok(Max::Value(1 << 30)));
        assert_eq!(parse_memory("1g"), Ok(Max::Value(1 << 30)));
        assert_eq!(parse_memory("512k"), Ok(Max::Value(512 << 10)));
        assert_eq!(parse_memory("2T"), Ok(Max::Value(2 << 40)));
        assert_eq!(parse_memory("1048576"), Ok(Max::Value(1048576)));
        assert_eq!(parse_memory("max"), Ok(Max::Max));
    }

    #[test]
    fn memory_errors_say_what_is_wrong() {
        let e = parse_memory("12XB").unwrap_err();
        assert!(e.contains("unknown unit \"XB\""), "{e}");
        assert!(e.contains("64M"), "the message shows a valid example: {e}");
        assert!(parse_memory("").is_err());
        assert!(parse_memory("M").unwrap_err().contains("not a size"));
        assert!(parse_memory("1.5G").unwrap_err().contains("1536M"));
        assert!(parse_memory("-1").is_err());
        assert!(parse_memory("0").is_err());
        assert!(parse_memory("99999999999999999999").unwrap_err().contains("too large"));
        assert!(parse_memory("20000000T").unwrap_err().contains("too large"));
    }

    #[test]
    fn cpus_to_quota() {
        let half = parse_cpus("0.5").unwrap();
        assert_eq!(half, Cpus::Quota { quota_us: 50_000, period_us: 100_000 });
        assert_eq!(half.v2(), "50000 100000");
        assert_eq!(half.v1(), ("100000".to_string(), "50000".to_string()));
        assert_eq!(parse_cpus("2").unwrap().v2(), "200000 100000");
        assert_eq!(parse_cpus("max").unwrap().v2(), "max 100000");
        assert_eq!(parse_cpus("max").unwrap().v1().1, "-1");
        assert_eq!(parse_cpus("0.01").unwrap().v2(), "1000 100000");
        assert!(parse_cpus("0.001").unwrap_err().contains("1 ms"));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpus("NaN").is_err());
        assert!(parse_cpus("inf").is_err());
        assert!(parse_cpus("half").is_err());
        assert_eq!(half.to_string(), "0.50");
    }

    #[test]
    fn shares_map_onto_weights_as_runc_maps_them() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(512), 59);
        assert_eq!(shares_to_weight(1024), 100, "the defaults meet");
        assert_eq!(shares_to_weight(2000), 170, "runc's own example");
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1, "below the range: its floor");
    }

    #[test]
    fn pids_and_cpusets() {
        assert_eq!(parse_pids("20"), Ok(Max::Value(20)));
        assert_eq!(parse_pids("max"), Ok(Max::Max));
        assert!(parse_pids("0").is_err());
        assert!(parse_pids("-3").is_err());
        assert!(parse_pids("ten").is_err());
        for ok in ["0", "0-1", "0,2-3", "1-1"] {
            assert_eq!(parse_cpuset(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "a", "1-", "-1", "2-1", "0,,1", "0 1", "0-1-2"] {
            assert!(parse_cpuset(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn limits_as_files_show_them() {
        assert_eq!(Max::from_file("max\n"), Some(Max::Max));
        assert_eq!(Max::from_file("-1\n"), Some(Max::Max));
        assert_eq!(Max::from_file("9223372036854771712\n"), Some(Max::Max));
        assert_eq!(Max::from_file("67108864\n"), Some(Max::Value(64 << 20)));
        assert_eq!(Max::from_file("x"), None);
        assert_eq!(serde_json::to_string(&Max::Max).unwrap(), "\"max\"");
        assert_eq!(serde_json::to_string(&Max::Value(3)).unwrap(), "3");
    }

    #[test]
    fn device_rules() {
        assert_eq!(parse_device_rule("c 1:3 rwm").unwrap().to_string(), "c 1:3 rwm");
        assert_eq!(parse_device_rule("b *:* m").unwrap().to_string(), "b *:* m");
        assert_eq!(parse_device_rule("c 136:*").unwrap().to_string(), "c 136:* rwm");
        assert_eq!(parse_device_rule("c 1:5 wr").unwrap().access, "rw", "kept in the kernel's order");
        assert_eq!(parse_device_rule("a").unwrap().to_string(), "a");
        for bad in ["", "x 1:3 r", "c 1 r", "c a:3 r", "c 1:3 rx", "c 1:3 rr", "c 1:3 r w"] {
            assert!(parse_device_rule(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn bytes_like_cgtop() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(140 * 1024), "140.0K");
        assert_eq!(human_bytes(64 << 20), "64.0M");
        assert_eq!(human_bytes(3 << 30), "3.0G");
        let l = Limits { memory: Some(Max::Value(64 << 20)), pids: Some(Max::Value(20)), ..Limits::default() };
        assert_eq!(l.describe(), "memory=64.0M pids=20");
        assert_eq!(Limits::default().describe(), "no limits");
    }
}
