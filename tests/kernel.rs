//! The trace, as every binary prints it: text, --explain, JSON Lines, -q, files, color.
//! Exercised through ns-exec's dry run, which needs no privilege.

use crate::harness::{cmd, stderr_of, tmp};

fn dry(extra: &[&str]) -> std::process::Output {
    let mut c = cmd("ns-exec");
    c.env("PATH", "/usr/bin:/bin").args(extra).args(["--dry-run", "--uts", "--hostname", "box", "--", "true"]);
    c.output().unwrap()
}

#[test]
fn text_lines_are_strace_syntax() {
    let err = stderr_of(&dry(&[]));
    let pid_prefix = regex_lite(&err);
    assert!(pid_prefix, "every line starts with [ns-exec PID]: {err}");
    assert!(err.contains("] unshare(CLONE_NEWUTS) = 0\n"), "{err}");
    assert!(err.contains("] sethostname(\"box\", 3) = 0\n"), "{err}");
}

/// Every line is `[ns-exec <digits>] ...`.
fn regex_lite(s: &str) -> bool {
    s.lines().all(|l| {
        l.strip_prefix("[ns-exec ")
            .and_then(|r| r.split_once(']'))
            .is_some_and(|(pid, _)| !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()))
    })
}

#[test]
fn explain_adds_a_line_with_the_man_page() {
    let err = stderr_of(&dry(&["--explain"]));
    let lines: Vec<&str> = err.lines().collect();
    let i = lines.iter().position(|l| l.contains("] unshare(")).unwrap();
    let x = lines[i + 1];
    assert!(x.trim_start().starts_with("↳ unshare(2): "), "{x}");
    assert!(x.contains("here: give the command its own copy"), "{x}");
    assert!(x.ends_with("https://man7.org/linux/man-pages/man2/unshare.2.html"), "{x}");
}

#[test]
fn json_lines_have_the_documented_fields() {
    let err = stderr_of(&dry(&["--trace=json"]));
    let mut seqs = std::collections::HashMap::<i64, Vec<i64>>::new();
    for line in err.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for k in ["tool", "pid", "seq", "kind", "call", "args", "ret", "errno"] {
            assert!(v.get(k).is_some(), "{k} missing in {line}");
        }
        assert_eq!(v["tool"], "ns-exec");
        seqs.entry(v["pid"].as_i64().unwrap()).or_default().push(v["seq"].as_i64().unwrap());
    }
    for (pid, s) in seqs {
        let want: Vec<i64> = (1..=s.len() as i64).collect();
        assert_eq!(s, want, "seq counts 1, 2, 3... per process ({pid})");
    }
    let unshare: serde_json::Value = err
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["call"] == "unshare")
        .unwrap();
    assert_eq!(unshare["kind"], "syscall");
    assert_eq!(unshare["args"][0], "CLONE_NEWUTS");
    assert_eq!(unshare["ret"], 0);
    assert!(unshare["errno"].is_null());
}

#[test]
fn quiet_prints_no_trace() {
    let o = dry(&["-q"]);
    assert!(o.status.success());
    assert_eq!(stderr_of(&o), "");
}

#[test]
fn trace_file_takes_the_trace() {
    let t = tmp();
    let f = t.path().join("trace.txt");
    let o = dry(&["--trace-file", f.to_str().unwrap()]);
    assert_eq!(stderr_of(&o), "", "nothing on stderr when the trace goes to a file");
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.contains("unshare(CLONE_NEWUTS) = 0"), "{text}");
    // Appended, not overwritten:
    dry(&["--trace-file", f.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&f).unwrap().matches("unshare(").count(), 2);
}

#[test]
fn trace_file_in_a_missing_dir_is_a_clear_error() {
    let o = dry(&["--trace-file", "/no/such/dir/trace.txt"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr_of(&o).contains("cannot open the trace file /no/such/dir/trace.txt"), "{}", stderr_of(&o));
}

#[test]
fn color_auto_on_a_terminal_honours_no_color() {
    let run = |no_color: Option<&str>| {
        let mut c = std::process::Command::new(crate::harness::bin_path("ns-exec"));
        c.env("PATH", "/usr/bin:/bin").args(["--color", "auto", "--dry-run", "--uts", "--", "true"]);
        match no_color {
            Some(v) => c.env("NO_COLOR", v),
            None => c.env_remove("NO_COLOR"),
        };
        let (st, out) = crate::harness::run_on_pty(c);
        assert!(st.success(), "{out}");
        assert!(out.contains("unshare"), "the trace reached the terminal: {out}");
        out
    };
    assert!(run(None).contains("\u{1b}["), "auto on a terminal colors");
    assert!(run(Some("")).contains("\u{1b}["), "an empty NO_COLOR counts as unset");
    assert!(!run(Some("1")).contains("\u{1b}["), "NO_COLOR=1 turns color off on a terminal too");
}

#[test]
fn color_always_and_no_color() {
    let o = dry(&["--color", "always"]);
    assert!(stderr_of(&o).contains("\u{1b}["), "--color always colors even into a pipe");
    let o = dry(&["--color", "auto"]);
    assert!(!stderr_of(&o).contains("\u{1b}["), "auto into a pipe: no color");
    let mut c = cmd("ns-exec");
    c.env("NO_COLOR", "1").args(["--dry-run", "--uts", "--", "true"]);
    assert!(!stderr_of(&c.output().unwrap()).contains("\u{1b}["));
}

#[test]
fn unknown_trace_format_is_a_usage_error() {
    let o = dry(&["--trace=xml"]);
    assert_eq!(o.status.code(), Some(2));
}
