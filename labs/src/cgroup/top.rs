//! `cg-limit top`: the groups under contlab/ and what they use, refreshed, like
//! systemd-cgtop(1) (<https://man7.org/linux/man-pages/man1/systemd-cgtop.1.html>).
//!
//! There is no "CPU percentage" file: the kernel keeps a counter of CPU time used
//! (v2 `cpu.stat` `usage_usec`, v1 `cpuacct.usage` in ns), so top reads it twice, one
//! interval apart, and divides the difference by the time that passed. 100% is one
//! CPU's worth; a group busy on two CPUs shows 200%. The same goes for I/O (v2
//! `io.stat` `rbytes`/`wbytes`, v1 `blkio.throttle.io_service_bytes_recursive`).
//! Tasks (`pids.current`) and memory (`memory.current`, v1 `memory.usage_in_bytes`)
//! are read as they are. Counters of a group include its children.

use std::cmp::Ordering;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use super::limits::human_bytes;
use super::show::Sample;
use super::{Backend, GroupName, PARENT, TOOL};
use crate::cli::CommonOpts;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::kernel::Kernel;

/// The column `top` sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Order {
    /// CPU use, highest first.
    Cpu,
    /// Memory, highest first.
    Memory,
    /// Tasks, most first.
    Tasks,
    /// Path, alphabetically.
    Path,
}

/// `cg-limit top`.
#[derive(Args, Debug, Clone)]
pub struct TopArgs {
    /// Seconds between refreshes; the first frame comes after one interval (CPU and
    /// I/O rates need two samples).
    #[arg(short, long, value_name = "SECS", default_value = "1", value_parser = parse_delay)]
    pub delay: Duration,
    /// Sort by cpu, memory, tasks (highest first) or path.
    #[arg(short, long, value_enum, default_value_t = Order::Cpu)]
    pub order: Order,
    /// Print one frame, after one interval, then exit (for scripts).
    #[arg(long)]
    pub once: bool,
    /// Print N frames, then exit.
    #[arg(short = 'n', long, value_name = "N", conflicts_with = "once")]
    pub iterations: Option<u64>,
}

impl TopArgs {
    /// Whether frames redraw the screen: stdout is a terminal and not `--once`.
    pub fn redraws(&self) -> bool {
        !self.once && std::io::stdout().is_terminal()
    }

    /// Whether the trace must be hidden: the screen redraws and the trace would go to
    /// the same terminal (no --trace-file).
    pub fn hides_trace(&self, common: &CommonOpts) -> bool {
        self.redraws() && common.trace_file.is_none() && std::io::stderr().is_terminal()
    }
}

/// Parse `--delay`: a positive number of seconds.
pub fn parse_delay(s: &str) -> std::result::Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 86400.0 => Ok(Duration::from_secs_f64(x)),
        _ => Err(format!("{s:?} is not a delay: give a positive number of seconds, e.g. 1 or 0.5")),
    }
}

/// One line of the view.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `/contlab/web`.
    pub path: String,
    /// Tasks.
    pub tasks: Option<u64>,
    /// CPU use over the interval, in % of one CPU.
    pub cpu: Option<f64>,
    /// Memory, in bytes.
    pub memory: Option<u64>,
    /// Bytes read per second.
    pub input: Option<f64>,
    /// Bytes written per second.
    pub output: Option<f64>,
}

fn rate(a: Option<u64>, b: Option<u64>, secs: f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if secs > 0.0 => Some(b.saturating_sub(a) as f64 / secs),
        _ => None,
    }
}

/// The row of a group from two samples `dt` apart (`before` is `None` for a group
/// that appeared meanwhile: no rates yet, shown `-`).
pub fn row(path: String, before: Option<&Sample>, now: &Sample, dt: Duration) -> Row {
    let secs = dt.as_secs_f64();
    let b = before.cloned().unwrap_or_default();
    Row {
        path,
        tasks: now.tasks,
        cpu: rate(b.cpu_ns, now.cpu_ns, secs).map(|ns| ns / 1e9 * 100.0),
        memory: now.memory,
        input: rate(b.read_bytes, now.read_bytes, secs),
        output: rate(b.write_bytes, now.write_bytes, secs),
    }
}

/// Sort rows by `order` (unknown values last; ties by path).
pub fn sort(rows: &mut [Row], order: Order) {
    fn desc<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Ordering {
        match (a, b) {
            (Some(a), Some(b)) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
    rows.sort_by(|a, b| {
        let o = match order {
            Order::Cpu => desc(a.cpu, b.cpu),
            Order::Memory => desc(a.memory, b.memory),
            Order::Tasks => desc(a.tasks, b.tasks),
            Order::Path => Ordering::Equal,
        };
        o.then_with(|| a.path.cmp(&b.path))
    });
}

/// The frame: a header and one line per row, columns as systemd-cgtop prints them.
pub fn frame(rows: &[Row]) -> String {
    let w = rows.iter().map(|r| r.path.len()).max().unwrap_or(0).max(20) + 2;
    let dash = || "-".to_string();
    let mut s = format!("{:<w$}{:>7}{:>7}{:>9}{:>9}{:>9}\n", "Path", "Tasks", "%CPU", "Memory", "Input/s", "Output/s");
    for r in rows {
        s.push_str(&format!(
            "{:<w$}{:>7}{:>7}{:>9}{:>9}{:>9}\n",
            r.path,
            r.tasks.map(|t| t.to_string()).unwrap_or_else(dash),
            r.cpu.map(|c| format!("{c:.1}")).unwrap_or_else(dash),
            r.memory.map(human_bytes).unwrap_or_else(dash),
            r.input.map(|x| human_bytes(x as u64)).unwrap_or_else(dash),
            r.output.map(|x| human_bytes(x as u64)).unwrap_or_else(dash),
        ));
    }
    s
}

/// Sample contlab/ and every group below it.
fn sample_all(k: &Kernel, cg: &dyn Backend) -> Vec<(String, Sample)> {
    if !cg.has_parent(k) {
        return Vec::new();
    }
    let mut v = vec![(format!("/{PARENT}"), cg.sample(k, None))];
    for name in cg.list(k) {
        let g = GroupName(name);
        v.push((format!("/{PARENT}/{g}"), cg.sample(k, Some(&g))));
    }
    v
}

/// Run the view: sample, wait `--delay`, sample again, print a frame; repeat.
pub fn run(k: &Kernel, cg: &dyn Backend, a: &TopArgs, out: &mut dyn Write) -> Result<Exit> {
    let frames = if a.once { 1 } else { a.iterations.unwrap_or(u64::MAX) };
    let redraw = a.redraws();
    let mut before = sample_all(k, cg);
    let mut t0 = Instant::now();
    for _ in 0..frames {
        k.why("wait one interval between two samples of the counters").sleep(a.delay)?;
        let now = sample_all(k, cg);
        let dt = t0.elapsed();
        t0 = Instant::now();
        let mut rows: Vec<Row> = now
            .iter()
            .map(|(p, s)| row(p.clone(), before.iter().find(|(q, _)| q == p).map(|(_, s)| s), s, dt))
            .collect();
        sort(&mut rows, a.order);
        if redraw {
            // ANSI: cursor home, clear the screen.
            out.write_all(b"\x1b[H\x1b[2J").map_err(Error::Output)?;
        }
        out.write_all(frame(&rows).as_bytes()).map_err(Error::Output)?;
        if rows.is_empty() {
            writeln!(out, "(no group under {PARENT}/ yet: `{TOOL} create NAME` or `{TOOL} run -- CMD` makes one)")
                .map_err(Error::Output)?;
        }
        out.flush().map_err(Error::Output)?;
        before = now;
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::testing::{fake_v2, fake_v2_group};
    use crate::cgroup::{execute, Cmd};

    fn s(cpu_ns: u64, mem: u64, tasks: u64) -> Sample {
        Sample {
            tasks: Some(tasks),
            cpu_ns: Some(cpu_ns),
            memory: Some(mem),
            read_bytes: Some(0),
            write_bytes: Some(2048),
        }
    }

    #[test]
    fn rates_from_two_samples() {
        let r = row("/contlab/a".into(), Some(&s(0, 1, 1)), &s(500_000_000, 1 << 20, 3), Duration::from_secs(1));
        assert_eq!(r.cpu, Some(50.0));
        assert_eq!(r.tasks, Some(3));
        assert_eq!(r.output, Some(0.0));
        let r = row("/contlab/new".into(), None, &s(5, 1, 1), Duration::from_secs(1));
        assert_eq!(r.cpu, None, "a group that appeared meanwhile has no rate yet");
        assert_eq!(r.tasks, Some(1));
    }

    #[test]
    fn sorting() {
        let mk = |p: &str, cpu: Option<f64>, mem: u64, tasks: u64| Row {
            path: p.into(),
            tasks: Some(tasks),
            cpu,
            memory: Some(mem),
            input: None,
            output: None,
        };
        let mut rows = vec![mk("/c", Some(1.0), 30, 1), mk("/a", None, 10, 3), mk("/b", Some(9.0), 20, 2)];
        sort(&mut rows, Order::Cpu);
        assert_eq!(rows.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/b", "/c", "/a"]);
        sort(&mut rows, Order::Memory);
        assert_eq!(rows.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/c", "/b", "/a"]);
        sort(&mut rows, Order::Tasks);
        assert_eq!(rows.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/a", "/b", "/c"]);
        sort(&mut rows, Order::Path);
        assert_eq!(rows.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/a", "/b", "/c"]);
    }

    #[test]
    fn a_frame_looks_like_cgtop() {
        let rows = vec![Row {
            path: "/contlab/web".into(),
            tasks: Some(2),
            cpu: Some(49.95),
            memory: Some(140 * 1024),
            input: None,
            output: Some(2048.0),
        }];
        let f = frame(&rows);
        let lines: Vec<&str> = f.lines().collect();
        assert!(lines[0].starts_with("Path"), "{f}");
        assert!(lines[0].ends_with("Tasks   %CPU   Memory  Input/s Output/s"), "{f}");
        assert!(lines[1].starts_with("/contlab/web"), "{f}");
        assert!(lines[1].ends_with("      2   50.0   140.0K        -     2.0K"), "{f}");
    }

    #[test]
    fn once_prints_one_frame_of_the_tree() {
        let t = fake_v2();
        fake_v2_group(&t.path().join("contlab"), "");
        fake_v2_group(&t.path().join("contlab/web"), "42\n");
        let k = Kernel::recording("cg-limit");
        let a = TopArgs { delay: Duration::from_millis(10), order: Order::Path, once: true, iterations: None };
        let mut out = Vec::new();
        execute(&k, t.path(), Cmd::Top(a), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("/contlab ") && lines[2].starts_with("/contlab/web "), "{text}");
        assert!(lines[2].contains("1.0M"), "memory.current of the fake group: {text}");
        assert!(!text.contains('\x1b'), "no screen control when not on a terminal");
        assert_eq!(k.events().iter().filter(|e| e.call == "clock_nanosleep").count(), 1);
    }

    #[test]
    fn delays() {
        assert_eq!(parse_delay("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "x", "inf", "NaN"] {
            assert!(parse_delay(bad).is_err(), "{bad}");
        }
    }
}
