//! The trace: one [`Event`] per request made of the kernel, rendered as strace-like
//! text, as text with a plain-English line per event (`--explain`), or as JSON Lines.
//!
//! Events are produced only by [`super::Kernel`], after (or, for a dry run, instead of)
//! the real call, so a line can never say something that did not happen.
//!
//! ## Where events go: sinks
//!
//! A [`Tracer`] writes every event to each of its [`Sink`]s: stderr, a file (appended),
//! or memory. Each sink has its own format, so a long-lived process (mini's monitor)
//! can append JSON Lines to a container's trace file and show text live at once.
//!
//! ## Which primitive asked: the `lab` field
//!
//! Every event names the tool that made the request (`ns-exec`) and the lab it was made
//! for. A standalone tool's lab is itself; a runtime that composes the labs sets the
//! lab with [`super::Kernel::scope`], so its trace reads as the primitives it used:
//! `[mini ▸ ovl-mount 4242] fsmount(...) = 4`.
//!
//! ## Counted requests
//!
//! Some requests come by the thousand (extracting a layer makes a `mkdirat`, `openat`,
//! `fchownat`... per entry). Their events are marked `bulk`: JSON sinks write each of
//! them like any other event, text sinks count them per call and print one summary
//! line when the lab asks ([`super::Kernel::flush_counts`]). A failed bulk request is
//! printed in full, like any failure.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::rc::Rc;

use colored::Colorize;
use serde::Serialize;

/// What kind of request an event records (the `kind` field of `--trace=json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A system call (`unshare`, `mount`, `setns`, `wait4`...).
    Syscall,
    /// A read or write of a kernel file under /proc or /sys (cgroupfs, uid_map...).
    File,
    /// A netlink message (rtnetlink, nftables).
    Netlink,
    /// An ioctl (device-mapper, loop devices).
    Ioctl,
    /// What the tool decided, not a request: "cgroup v1 detected".
    Note,
}

/// The outcome of a request, as strace shows it after `=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ret {
    /// Success, with the value as text (`0`, `4243`, `SIGCHLD`).
    Ok(String),
    /// Failure: `-1 EPERM (Operation not permitted)`.
    Err(nix::errno::Errno),
    /// Nothing to show (notes).
    None,
}

/// One request made of the kernel.
#[derive(Debug, Clone)]
pub struct Event {
    /// The binary that made the request (`ns-exec`, `mini`).
    pub tool: &'static str,
    /// The lab (primitive) the request was made for: the tool itself for a standalone
    /// binary, `ovl-mount`, `netns-bridge`... inside `mini`.
    pub lab: &'static str,
    /// The process that made it, as the host sees it.
    pub pid: i32,
    /// Position in that process's trace, from 1.
    pub seq: u64,
    /// What kind of request.
    pub kind: Kind,
    /// The call (`unshare`, `write`, `RTM_NEWLINK`, `DM_TABLE_LOAD`) or `note`.
    pub call: String,
    /// The arguments, each already rendered (`"CLONE_NEWPID|CLONE_NEWNS"`).
    pub args: Vec<String>,
    /// What came back.
    pub ret: Ret,
    /// The man page that documents the call: `unshare(2)`.
    pub man: Option<&'static str>,
    /// What the call does, in one plain sentence.
    pub what: Option<&'static str>,
    /// Why the tool made it, when the lab said so.
    pub why: Option<String>,
    /// One of many alike (an entry of a layer): text sinks count it instead of
    /// printing it when it succeeded.
    pub bulk: bool,
}

impl Event {
    /// The strace-syntax line, without the `[tool pid]` prefix.
    pub fn call_text(&self) -> String {
        let mut s = match self.kind {
            Kind::Note => return format!("# {}", self.args.join(" ")),
            Kind::Netlink => format!("{} {}", self.call, self.args.join(", ")),
            _ => format!("{}({})", self.call, self.args.join(", ")),
        };
        match &self.ret {
            Ret::Ok(v) => {
                s.push_str(" = ");
                s.push_str(v);
            }
            Ret::Err(e) => s.push_str(&format!(" = -1 {:?} ({})", e, e.desc())),
            Ret::None => {}
        }
        s
    }

    /// The `--explain` line: what the call does and why, with its man page.
    pub fn explain_text(&self) -> Option<String> {
        let mut s = String::new();
        if let Some(man) = self.man {
            s.push_str(man);
            s.push_str(": ");
        }
        match (self.what, &self.why) {
            (Some(w), Some(y)) => s.push_str(&format!("{w}; here: {y}.")),
            (Some(w), None) => s.push_str(&format!("{w}.")),
            (None, Some(y)) => s.push_str(&format!("{y}.")),
            (None, None) if self.man.is_none() => return None,
            (None, None) => {}
        }
        if let Some(url) = self.man.and_then(man_url) {
            s.push(' ');
            s.push_str(&url);
        }
        Some(s)
    }

    /// The JSON Lines object: tool, pid, seq, kind, call, args, ret, errno (+ man, why).
    pub fn json(&self) -> serde_json::Value {
        let (ret, errno) = match &self.ret {
            Ret::Ok(v) => (
                v.parse::<i64>().map(serde_json::Value::from).unwrap_or_else(|_| serde_json::Value::from(v.as_str())),
                serde_json::Value::Null,
            ),
            Ret::Err(e) => (serde_json::Value::from(-1), serde_json::Value::from(format!("{e:?}"))),
            Ret::None => (serde_json::Value::Null, serde_json::Value::Null),
        };
        serde_json::json!({
            "tool": self.tool, "lab": self.lab, "pid": self.pid, "seq": self.seq, "kind": self.kind,
            "call": self.call, "args": self.args, "ret": ret, "errno": errno,
            "man": self.man, "why": self.why,
        })
    }

    /// The `[tool pid]` prefix of a text line; `[tool ▸ lab pid]` when a runtime made
    /// the request for one of the labs.
    pub fn prefix(&self) -> String {
        if self.lab == self.tool {
            format!("[{} {}]", self.tool, self.pid)
        } else {
            format!("[{} \u{25b8} {} {}]", self.tool, self.lab, self.pid)
        }
    }
}

/// `unshare(2)` → its page on man7.org.
pub fn man_url(man: &str) -> Option<String> {
    let (name, rest) = man.split_once('(')?;
    let section = rest.strip_suffix(')')?;
    Some(format!("https://man7.org/linux/man-pages/man{section}/{name}.{section}.html"))
}

/// `--trace`: how events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceFormat {
    /// strace syntax: `[tool pid] call(args) = ret`.
    Text,
    /// JSON Lines, one object per event.
    Json,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Color when the trace goes to a terminal and NO_COLOR is unset or empty.
    Auto,
    /// Always color, even into a pipe or file.
    Always,
    /// Never color.
    Never,
}

/// Where one stream of events goes.
#[derive(Debug)]
pub enum Target {
    /// This process's standard error.
    Stderr,
    /// A file, opened for appending.
    File(File),
    /// Memory: every event is kept (tests, and runtimes that forward events).
    Memory(Rc<RefCell<Vec<Event>>>),
}

/// One destination of the trace, with its own rendering.
#[derive(Debug)]
pub struct Sink {
    target: Target,
    format: TraceFormat,
    explain: bool,
    color: bool,
    /// Text sinks: successful bulk events not printed yet, per call, in first-seen order.
    counts: RefCell<Vec<(String, u64)>>,
    /// Its reader is gone (EPIPE): nothing more is written, and no write raises the
    /// SIGPIPE a process that blocks it would then read, and trace, again.
    gone: std::cell::Cell<bool>,
}

impl Sink {
    /// A sink writing `format` to `target`; `explain` adds the plain-English lines,
    /// `color` the escapes (text only).
    pub fn new(target: Target, format: TraceFormat, explain: bool, color: bool) -> Sink {
        Sink { target, format, explain, color, counts: RefCell::new(Vec::new()), gone: std::cell::Cell::new(false) }
    }

    /// Whether it writes to this process's stderr.
    pub fn is_stderr(&self) -> bool {
        matches!(self.target, Target::Stderr)
    }

    fn write(&self, line: &str) {
        // A trace that cannot be written (closed stderr, full disk) must not stop the tool.
        if self.gone.get() {
            return;
        }
        let r = match &self.target {
            Target::Stderr => io::stderr().lock().write_all(line.as_bytes()),
            Target::File(f) => (&*f).write_all(line.as_bytes()),
            Target::Memory(_) => Ok(()),
        };
        if r.is_err_and(|e| e.kind() == io::ErrorKind::BrokenPipe) {
            self.gone.set(true);
        }
    }

    fn emit(&self, ev: &Event) {
        if let Target::Memory(m) = &self.target {
            m.borrow_mut().push(ev.clone());
            return;
        }
        if ev.bulk && self.format == TraceFormat::Text && matches!(ev.ret, Ret::Ok(_)) {
            let mut c = self.counts.borrow_mut();
            match c.iter_mut().find(|(n, _)| *n == ev.call) {
                Some((_, n)) => *n += 1,
                None => c.push((ev.call.clone(), 1)),
            }
            return;
        }
        self.write(&self.render(ev));
    }

    /// Text sinks: the summary of the counted events since the last one, as a note.
    fn summary(&self, ev: &Event) -> Option<String> {
        let mut c = self.counts.borrow_mut();
        if c.is_empty() || self.format != TraceFormat::Text {
            return None;
        }
        let parts: Vec<String> = c.drain(..).map(|(n, k)| format!("{n} \u{d7}{k}")).collect();
        let mut note = ev.clone();
        note.kind = Kind::Note;
        note.args = vec![format!("{} {}", ev.args.join(" "), parts.join(", "))];
        Some(self.render(&note))
    }

    /// The bytes this sink writes for `ev`, newline included.
    pub fn render(&self, ev: &Event) -> String {
        match self.format {
            TraceFormat::Json => format!("{}\n", ev.json()),
            TraceFormat::Text => {
                let prefix = ev.prefix();
                let body = ev.call_text();
                let mut out = if self.color {
                    let body = match (&ev.ret, ev.kind) {
                        (_, Kind::Note) => body.yellow().to_string(),
                        (Ret::Err(_), _) => body.red().to_string(),
                        _ => match body.find('(') {
                            Some(i) => format!("{}{}", body[..i].bold(), &body[i..]),
                            None => body,
                        },
                    };
                    format!("{} {}\n", prefix.dimmed(), body)
                } else {
                    format!("{prefix} {body}\n")
                };
                if self.explain {
                    if let Some(x) = ev.explain_text() {
                        let x = if self.color { x.cyan().to_string() } else { x };
                        out.push_str(&format!("    \u{21b3} {x}\n"));
                    }
                }
                out
            }
        }
    }
}

/// Where and how the trace is written: a list of sinks (none: silent).
#[derive(Debug, Default)]
pub struct Tracer {
    sinks: RefCell<Vec<Sink>>,
    color: bool,
}

impl Tracer {
    /// A tracer writing to stderr, or to `file` (opened for appending) when given;
    /// `quiet` (without a file) writes nothing.
    pub fn new(format: TraceFormat, explain: bool, quiet: bool, color: ColorChoice, file: Option<File>) -> Tracer {
        let color = color.resolve(file.is_none() && io::stderr().is_terminal());
        if color {
            colored::control::set_override(true);
        }
        let target = match file {
            Some(f) => Some(Target::File(f)),
            None if quiet => None,
            None => Some(Target::Stderr),
        };
        let sinks = target.map(|t| Sink::new(t, format, explain, color)).into_iter().collect();
        Tracer { sinks: RefCell::new(sinks), color }
    }

    /// A tracer that writes nothing (the recording kernel of unit tests keeps events).
    pub fn silent() -> Tracer {
        Tracer::default()
    }

    /// Add a destination: from now on every event goes there too.
    pub fn add_sink(&self, sink: Sink) {
        self.sinks.borrow_mut().push(sink);
    }

    /// Point the sinks that write to stderr at a copy of it (close-on-exec), so they
    /// keep writing there after descriptor 2 is replaced: a container's first process
    /// traces its setup on the caller's terminal, then makes its stderr the
    /// container's, then execs (and the copy closes).
    pub fn detach_from_stderr(&self) {
        use std::os::fd::AsFd;
        for s in self.sinks.borrow_mut().iter_mut() {
            if matches!(s.target, Target::Stderr) {
                if let Ok(fd) = io::stderr().as_fd().try_clone_to_owned() {
                    s.target = Target::File(File::from(fd));
                }
            }
        }
    }

    /// Remove every destination (a process that hands its terminal to a container
    /// stops writing there), returning them.
    pub fn take_sinks(&self) -> Vec<Sink> {
        std::mem::take(&mut *self.sinks.borrow_mut())
    }

    /// Whether color escapes are used (the tools' own tables follow the same choice).
    pub fn color(&self) -> bool {
        self.color
    }

    /// Write one event to every sink, each with a single write(2), so lines from a
    /// parent and its children never interleave mid-line.
    pub fn emit(&self, ev: &Event) {
        for s in self.sinks.borrow().iter() {
            s.emit(ev);
        }
    }

    /// Text sinks print the counts of the bulk events they held back, as one note
    /// rendered from `ev` (whose args start the line).
    pub fn flush_counts(&self, ev: &Event) {
        for s in self.sinks.borrow().iter() {
            if let Some(line) = s.summary(ev) {
                s.write(&line);
            }
        }
    }

    /// The bytes the first sink would write for `ev` (text on stderr when none).
    pub fn render(&self, ev: &Event) -> String {
        match self.sinks.borrow().first() {
            Some(s) => s.render(ev),
            None => Sink::new(Target::Stderr, TraceFormat::Text, false, false).render(ev),
        }
    }
}

impl ColorChoice {
    /// Whether to color, given whether the output is a terminal: auto means a
    /// terminal and NO_COLOR unset or empty.
    pub fn resolve(self, terminal: bool) -> bool {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !no_color,
        }
    }
}

/// Quote a string as strace does: `"abc\n"`, cut after `max` characters with `...`.
pub fn quote(s: &str, max: usize) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push_str("\"...");
            return out;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ret: Ret) -> Event {
        Event {
            tool: "ns-exec",
            pid: 42,
            seq: 1,
            kind: Kind::Syscall,
            call: "unshare".into(),
            args: vec!["CLONE_NEWUTS|CLONE_NEWPID".into()],
            ret,
            man: Some("unshare(2)"),
            what: Some("move this process into new namespaces"),
            why: Some("give the command its own hostname".into()),
            lab: "ns-exec",
            bulk: false,
        }
    }

    #[test]
    fn text_is_strace_syntax() {
        let t = Tracer::new(TraceFormat::Text, false, false, ColorChoice::Never, None);
        assert_eq!(t.render(&ev(Ret::Ok("0".into()))), "[ns-exec 42] unshare(CLONE_NEWUTS|CLONE_NEWPID) = 0\n");
        assert_eq!(
            t.render(&ev(Ret::Err(nix::errno::Errno::EPERM))),
            "[ns-exec 42] unshare(CLONE_NEWUTS|CLONE_NEWPID) = -1 EPERM (Operation not permitted)\n"
        );
    }

    #[test]
    fn explain_names_the_man_page() {
        let t = Tracer::new(TraceFormat::Text, true, false, ColorChoice::Never, None);
        let out = t.render(&ev(Ret::Ok("0".into())));
        let second = out.lines().nth(1).unwrap();
        assert!(
            second.contains(
                "unshare(2): move this process into new namespaces; here: give the command its own hostname."
            ),
            "{second}"
        );
        assert!(second.ends_with("https://man7.org/linux/man-pages/man2/unshare.2.html"), "{second}");
    }

    #[test]
    fn json_has_the_documented_fields() {
        let v = ev(Ret::Err(nix::errno::Errno::EPERM)).json();
        for k in ["tool", "pid", "seq", "kind", "call", "args", "ret", "errno"] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["errno"], "EPERM");
        assert_eq!(v["ret"], -1);
        assert_eq!(v["kind"], "syscall");
        assert_eq!(ev(Ret::Ok("8".into())).json()["ret"], 8);
    }

    #[test]
    fn quote_escapes_and_cuts() {
        assert_eq!(quote("a\"b\n", 32), "\"a\\\"b\\n\"");
        assert_eq!(quote("abcdef", 3), "\"abc\"...");
    }

    #[test]
    fn color_marks_errors_red() {
        let t = Tracer::new(TraceFormat::Text, false, false, ColorChoice::Always, None);
        let out = t.render(&ev(Ret::Err(nix::errno::Errno::EPERM)));
        assert!(out.contains("\u{1b}[31m"), "{out:?}");
    }
}
