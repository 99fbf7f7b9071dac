//! The trace: one [`Event`] per request made of the kernel, rendered as strace-like
//! text, as text with a plain-English line per event (`--explain`), or as JSON Lines.
//!
//! Events are produced only by [`super::Kernel`], after (or, for a dry run, instead of)
//! the real call, so a line can never say something that did not happen.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, IsTerminal, Write};

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
    /// The binary that made the request (`ns-exec`).
    pub tool: &'static str,
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
                v.parse::<i64>()
                    .map(serde_json::Value::from)
                    .unwrap_or_else(|_| serde_json::Value::from(v.as_str())),
                serde_json::Value::Null,
            ),
            Ret::Err(e) => (serde_json::Value::from(-1), serde_json::Value::from(format!("{e:?}"))),
            Ret::None => (serde_json::Value::Null, serde_json::Value::Null),
        };
        serde_json::json!({
            "tool": self.tool, "pid": self.pid, "seq": self.seq, "kind": self.kind,
            "call": self.call, "args": self.args, "ret": ret, "errno": errno,
            "man": self.man, "why": self.why,
        })
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

/// Where and how the trace is written.
#[derive(Debug)]
pub struct Tracer {
    format: TraceFormat,
    explain: bool,
    quiet: bool,
    color: bool,
    file: Option<RefCell<File>>,
}

impl Tracer {
    /// A tracer writing to stderr, or to `file` (opened for appending) when given.
    pub fn new(
        format: TraceFormat,
        explain: bool,
        quiet: bool,
        color: ColorChoice,
        file: Option<File>,
    ) -> Tracer {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => file.is_none() && !no_color && io::stderr().is_terminal(),
        };
        if color {
            colored::control::set_override(true);
        }
        Tracer { format, explain, quiet: quiet && file.is_none(), color, file: file.map(RefCell::new) }
    }

    /// A tracer that writes nothing (the recording kernel of unit tests keeps events).
    pub fn silent() -> Tracer {
        Tracer { format: TraceFormat::Text, explain: false, quiet: true, color: false, file: None }
    }

    /// Whether color escapes are used (the tools' own tables follow the same choice).
    pub fn color(&self) -> bool {
        self.color
    }

    /// Render and write one event with a single write(2), so lines from a parent and
    /// its children never interleave mid-line.
    pub fn emit(&self, ev: &Event) {
        if self.quiet {
            return;
        }
        let line = self.render(ev);
        let res = match &self.file {
            Some(f) => f.borrow_mut().write_all(line.as_bytes()),
            None => io::stderr().lock().write_all(line.as_bytes()),
        };
        // A trace that cannot be written (closed stderr) must not stop the tool.
        let _ = res;
    }

    /// The bytes [`Tracer::emit`] writes for `ev`, newline included.
    pub fn render(&self, ev: &Event) -> String {
        match self.format {
            TraceFormat::Json => format!("{}\n", ev.json()),
            TraceFormat::Text => {
                let prefix = format!("[{} {}]", ev.tool, ev.pid);
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
                        out.push_str(&format!("    ↳ {x}\n"));
                    }
                }
                out
            }
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
        }
    }

    #[test]
    fn text_is_strace_syntax() {
        let t = Tracer::new(TraceFormat::Text, false, false, ColorChoice::Never, None);
        assert_eq!(
            t.render(&ev(Ret::Ok("0".into()))),
            "[ns-exec 42] unshare(CLONE_NEWUTS|CLONE_NEWPID) = 0\n"
        );
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
        assert!(second.contains("unshare(2): move this process into new namespaces; here: give the command its own hostname."), "{second}");
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
