//! # A Dockerfile, read
//!
//! A Dockerfile is not a shell script: it is a list of *instructions*, one per logical
//! line, each a keyword and its arguments. The builder, not a shell, reads it, so it
//! has rules of its own:
//!
//! - A line ending in the *escape character* (`\`, or `` ` `` after a `# escape=`` `
//!   parser directive on the first lines) continues on the next one; comment lines
//!   inside a continued instruction are dropped.
//! - `RUN`, `CMD` and `ENTRYPOINT` take a *shell form* (`RUN apk add curl`: run by
//!   `/bin/sh -c`, or the `SHELL` instruction's program) or an *exec form*, a JSON
//!   array (`CMD ["nginx", "-g", "daemon off;"]`: run as is, no shell). Text that is
//!   not a valid JSON array is shell form, even if it starts with `[`.
//! - Every build starts at a `FROM`; each `FROM` begins a *stage*, and `ARG`s before
//!   the first `FROM` are only for the `FROM` lines.
//! - `<<EOF` starts a here-document: the lines up to `EOF` are its text (a script for
//!   `RUN`, a file for `COPY`).
//!
//! The parsing itself is done by the `parse-dockerfile` crate (it knows the directives,
//! continuations, JSON forms, flags and here-documents); this module turns its tree
//! into the plain steps [`super::build`] executes, each with the text docker echoes
//! (`Step 2/5 : COPY index.html /usr/share/nginx/html/`). Variables (`$PORT`) are
//! *not* expanded here: their values change as the build goes (each `ENV` and `ARG`
//! adds some), so the builder expands each step's words when it reaches it, with
//! [`super::shell_words`].
//!
//! Reference: <https://docs.docker.com/reference/dockerfile/>.

use std::collections::BTreeMap;

use parse_dockerfile::{Command, Flag, HealthcheckArguments, Instruction, JsonOrStringArray, Source};

use crate::error::{Error, Result};

/// A command in one of the two forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// A JSON array: run as is.
    Exec(Vec<String>),
    /// Text for the shell (`SHELL`, by default `/bin/sh -c`).
    Shell(String),
}

/// One source of `COPY`/`ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Src {
    /// A path of the context (or of a stage, an image; or for ADD a URL), maybe a glob.
    Path(String),
    /// A here-document: a file of this text.
    Inline {
        /// Its name (the delimiter).
        name: String,
        /// Its text.
        text: String,
    },
}

/// What a step does: one instruction, its arguments unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `FROM [--platform=P] IMAGE [AS NAME]`.
    From {
        /// The image, a stage name, or `scratch`.
        image: String,
        /// `AS NAME`.
        name: Option<String>,
        /// `--platform`.
        platform: Option<String>,
    },
    /// `RUN [--network=N] CMD`.
    Run {
        /// The command.
        cmd: Form,
        /// `--network`.
        network: Option<String>,
    },
    /// `COPY`/`ADD [--from=S] [--chown=U:G] [--chmod=M] SRC... DEST`.
    Copy {
        /// ADD (extract local tars, fetch URLs) rather than COPY.
        add: bool,
        /// The sources.
        srcs: Vec<Src>,
        /// The destination.
        dest: String,
        /// `--from`.
        from: Option<String>,
        /// `--chown`.
        chown: Option<String>,
        /// `--chmod`.
        chmod: Option<String>,
    },
    /// `ENV K=V ...` (or `ENV K V`), as written.
    Env(String),
    /// `ARG NAME[=DEFAULT] ...`, as written.
    Arg(String),
    /// `LABEL K=V ...`, as written.
    Label(String),
    /// `WORKDIR DIR`.
    Workdir(String),
    /// `USER U[:G]`.
    User(String),
    /// `EXPOSE PORT[/PROTO] ...`.
    Expose(Vec<String>),
    /// `VOLUME ["/a"]` or `VOLUME /a /b`.
    Volume(Vec<String>),
    /// `CMD`.
    Cmd(Form),
    /// `ENTRYPOINT`.
    Entrypoint(Form),
    /// `SHELL ["exe", "arg"...]`.
    Shell(Vec<String>),
    /// `STOPSIGNAL SIG`.
    Stopsignal(String),
    /// `HEALTHCHECK [--interval=...] CMD ...` (`None`: `HEALTHCHECK NONE`).
    Healthcheck {
        /// The flags (`interval`, `timeout`, `start-period`, `start-interval`, `retries`).
        flags: BTreeMap<String, String>,
        /// The test.
        cmd: Option<Form>,
    },
    /// `ONBUILD INSTRUCTION`: the instruction's text, kept for the images built on this one.
    Onbuild(String),
    /// `MAINTAINER NAME` (deprecated: the image's `author`).
    Maintainer(String),
}

/// One instruction of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its first line (1-based).
    pub line: usize,
    /// The instruction as docker echoes it: its logical line, continuations joined.
    pub text: String,
    /// What it does.
    pub op: Op,
}

/// A stage: a `FROM` and the steps after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Its `FROM`.
    pub from: Step,
    /// The rest.
    pub steps: Vec<Step>,
}

impl Stage {
    /// `AS NAME`, lower-cased as docker compares stage names.
    pub fn name(&self) -> Option<String> {
        match &self.from.op {
            Op::From { name, .. } => name.as_ref().map(|n| n.to_lowercase()),
            _ => None,
        }
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`# escape=`).
    pub escape: char,
    /// The `ARG`s before the first `FROM`.
    pub global_args: Vec<Step>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

/// docker's message for a file it cannot read.
fn parse_error(line: usize, what: &str) -> Error {
    Error::Failed {
        what: format!("Error response from daemon: dockerfile parse error line {line}: {what}"),
        hint: None,
    }
}

/// Read a Dockerfile (`name`, for messages: `Dockerfile`).
pub fn parse_named(text: &str, name: &str) -> Result<Dockerfile> {
    if text.is_empty() {
        return Err(Error::Failed {
            what: format!("Error response from daemon: the Dockerfile ({name}) cannot be empty"),
            hint: None,
        });
    }
    let blank = text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if blank {
        return Err(Error::Failed {
            what: format!("Error response from daemon: failed to parse {name}: file with no instructions"),
            hint: None,
        });
    }
    parse(text)
}

/// Read a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile> {
    let d = parse_dockerfile::parse(text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        // docker's words for the two most common mistakes.
        let msg = match msg.strip_prefix("unknown instruction '") {
            Some(rest) => format!("unknown instruction: {}", rest.trim_end_matches('\'').to_uppercase()),
            None => msg,
        };
        if msg.contains("at least one FROM") || msg == "expected FROM" {
            return Error::Failed {
                what: "Error response from daemon: no build stage in current context".into(),
                hint: None,
            };
        }
        parse_error(e.line(), &msg)
    })?;
    let escape = d.parser_directives.escape.as_ref().map(|e| e.value.value).unwrap_or('\\');
    let mut global_args = vec![];
    let mut stages: Vec<Stage> = vec![];
    for i in &d.instructions {
        let step = step(text, escape, i)?;
        match (&step.op, stages.last_mut()) {
            (Op::From { .. }, _) => stages.push(Stage { from: step, steps: vec![] }),
            (_, Some(s)) => s.steps.push(step),
            (_, None) => global_args.push(step),
        }
    }
    Ok(Dockerfile { escape, global_args, stages })
}

/// The line of byte `pos` (1-based).
fn line_of(text: &str, pos: usize) -> usize {
    text[..pos.min(text.len())].matches('\n').count() + 1
}

/// The logical line starting at `start`: physical lines joined while they end in the
/// escape character, comment lines in between dropped, as docker echoes it.
fn logical_line(text: &str, start: usize, escape: char) -> String {
    let mut out = String::new();
    for (n, line) in text[start..].split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if n > 0 && line.trim_start().starts_with('#') {
            continue;
        }
        let t = line.trim_end();
        match t.strip_suffix(escape) {
            Some(head) => out.push_str(head),
            None => {
                out.push_str(t);
                break;
            }
        }
    }
    out.trim().to_string()
}

/// Continuations removed from a shell-form command (the crate keeps them): the text a
/// shell receives.
fn joined(s: &str, escape: char) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = s.split('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if n > 0 && line.trim_start().starts_with('#') {
            continue;
        }
        match line.strip_suffix(escape) {
            Some(head) if n + 1 < lines.len() => out.push_str(head),
            _ => {
                out.push_str(line);
                if n + 1 < lines.len() {
                    out.push('\n');
                }
            }
        }
    }
    out.trim().to_string()
}

fn form(c: &Command, escape: char) -> Form {
    match c {
        Command::Exec(v) => Form::Exec(v.value.iter().map(|s| s.value.to_string()).collect()),
        Command::Shell(s) => Form::Shell(joined(s.value, escape)),
        _ => Form::Shell(String::new()),
    }
}

fn flag_map(flags: &[Flag]) -> BTreeMap<String, String> {
    flags
        .iter()
        .map(|f| (f.name.value.to_string(), f.value.as_ref().map(|v| v.value.to_string()).unwrap_or_default()))
        .collect()
}

/// Refuse a flag the instruction does not have, as docker does.
fn only(keyword: &str, flags: &BTreeMap<String, String>, known: &[&str], line: usize) -> Result<()> {
    for name in flags.keys() {
        if !known.contains(&name.as_str()) {
            let what = match (keyword, name.as_str()) {
                ("RUN", "mount" | "security") | (_, "checksum" | "keep-git-dir" | "link" | "parents" | "exclude") => format!(
                    "the --{name} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"
                ),
                _ => format!("unknown flag: {name}"),
            };
            return Err(parse_error(line, &what));
        }
    }
    Ok(())
}

/// The delimiters of the here-documents of a line (`<<EOF`, `<<-"EOF"`), in order.
fn heredoc_names(line: &str) -> Vec<String> {
    let mut names = vec![];
    let mut rest = line;
    while let Some(i) = rest.find("<<") {
        let after = rest[i + 2..].trim_start_matches('-');
        let after = after.trim_start_matches(['"', '\'']);
        let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            names.push(name);
        }
        rest = &rest[i + 2..];
    }
    names
}

fn step(text: &str, escape: char, i: &Instruction) -> Result<Step> {
    let start = keyword_start(i);
    let line = line_of(text, start);
    let echoed = logical_line(text, start, escape);
    let op = match i {
        Instruction::From(f) => {
            let flags = flag_map(&f.options);
            only("FROM", &flags, &["platform"], line)?;
            Op::From {
                image: f.image.value.to_string(),
                name: f.as_.as_ref().map(|(_, n)| n.value.to_string()),
                platform: flags.get("platform").cloned(),
            }
        }
        Instruction::Run(r) => {
            let flags = flag_map(&r.options);
            only("RUN", &flags, &["network"], line)?;
            let cmd = match (&r.arguments, r.here_docs.is_empty()) {
                (_, true) => form(&r.arguments, escape),
                (Command::Shell(_), false) => {
                    // The crate takes the documents out of the line: the line as
                    // written, after the keyword and the flags, has their names.
                    let mut words =
                        echoed.split_once(char::is_whitespace).map(|x| x.1).unwrap_or_default().trim_start();
                    while words.starts_with("--") {
                        words = words.split_once(char::is_whitespace).map(|(_, r)| r.trim_start()).unwrap_or("");
                    }
                    let head = words.to_string();
                    let names = heredoc_names(&head);
                    // `RUN <<EOF` alone: the document is the script; otherwise the
                    // shell gets the line and its documents, and reads them itself.
                    let only_docs = head.split_whitespace().all(|w| w.starts_with("<<"));
                    if only_docs {
                        Form::Shell(r.here_docs.iter().map(|h| h.value.to_string()).collect::<String>())
                    } else {
                        let mut script = head;
                        for (h, name) in r.here_docs.iter().zip(names.iter()) {
                            script.push('\n');
                            script.push_str(&h.value);
                            script.push_str(name);
                        }
                        Form::Shell(script)
                    }
                }
                (_, false) => form(&r.arguments, escape),
            };
            Op::Run { cmd, network: flags.get("network").cloned() }
        }
        Instruction::Copy(c) => copy_op(false, &c.options, &c.src, &c.dest.value, &echoed, line)?,
        Instruction::Add(a) => copy_op(true, &a.options, &a.src, &a.dest.value, &echoed, line)?,
        Instruction::Env(e) => Op::Env(e.arguments.value.to_string()),
        Instruction::Arg(a) => Op::Arg(a.arguments.value.to_string()),
        Instruction::Label(l) => Op::Label(l.arguments.value.to_string()),
        Instruction::Workdir(w) => Op::Workdir(w.arguments.value.to_string()),
        Instruction::User(u) => Op::User(u.arguments.value.to_string()),
        Instruction::Stopsignal(s) => Op::Stopsignal(s.arguments.value.to_string()),
        Instruction::Maintainer(m) => Op::Maintainer(m.name.value.to_string()),
        Instruction::Expose(e) => Op::Expose(e.arguments.iter().map(|s| s.value.to_string()).collect()),
        Instruction::Volume(v) => Op::Volume(match &v.arguments {
            JsonOrStringArray::Json(a) => a.value.iter().map(|s| s.value.to_string()).collect(),
            JsonOrStringArray::String(a) => a.iter().map(|s| s.value.to_string()).collect(),
        }),
        Instruction::Cmd(c) => Op::Cmd(form(&c.arguments, escape)),
        Instruction::Entrypoint(e) => Op::Entrypoint(form(&e.arguments, escape)),
        Instruction::Shell(s) => Op::Shell(s.arguments.iter().map(|a| a.value.to_string()).collect()),
        Instruction::Healthcheck(h) => {
            let flags = flag_map(&h.options);
            only("HEALTHCHECK", &flags, &["interval", "timeout", "start-period", "start-interval", "retries"], line)?;
            let cmd = match &h.arguments {
                HealthcheckArguments::Cmd { arguments, .. } => Some(form(arguments, escape)),
                _ => None,
            };
            Op::Healthcheck { flags, cmd }
        }
        Instruction::Onbuild(o) => {
            let inner = logical_line(text, keyword_start(&o.instruction), escape);
            let kw = inner.split_whitespace().next().unwrap_or_default().to_uppercase();
            if matches!(kw.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(parse_error(line, &format!("{kw} isn't allowed as an ONBUILD trigger")));
            }
            Op::Onbuild(inner)
        }
        other => {
            return Err(parse_error(line, &format!("unknown instruction: {}", echoed_keyword(other, text))));
        }
    };
    Ok(Step { line, text: echoed, op })
}

fn echoed_keyword(i: &Instruction, text: &str) -> String {
    let s = keyword_start(i);
    text[s..].split_whitespace().next().unwrap_or_default().to_uppercase()
}

fn copy_op(add: bool, options: &[Flag], src: &[Source], dest: &str, echoed: &str, line: usize) -> Result<Op> {
    let flags = flag_map(options);
    let keyword = if add { "ADD" } else { "COPY" };
    let known: &[&str] = if add { &["chown", "chmod"] } else { &["from", "chown", "chmod"] };
    only(keyword, &flags, known, line)?;
    let names = heredoc_names(echoed);
    let mut docs = names.iter();
    let srcs = src
        .iter()
        .map(|s| match s {
            Source::Path(p) => Src::Path(p.value.to_string()),
            Source::HereDoc(h) => {
                Src::Inline { name: docs.next().cloned().unwrap_or_else(|| "EOF".into()), text: h.value.to_string() }
            }
            _ => Src::Path(String::new()),
        })
        .collect();
    Ok(Op::Copy {
        add,
        srcs,
        dest: dest.to_string(),
        from: flags.get("from").cloned(),
        chown: flags.get("chown").cloned(),
        chmod: flags.get("chmod").cloned(),
    })
}

fn keyword_start(i: &Instruction) -> usize {
    match i {
        Instruction::Add(x) => x.add.span.start,
        Instruction::Arg(x) => x.arg.span.start,
        Instruction::Cmd(x) => x.cmd.span.start,
        Instruction::Copy(x) => x.copy.span.start,
        Instruction::Entrypoint(x) => x.entrypoint.span.start,
        Instruction::Env(x) => x.env.span.start,
        Instruction::Expose(x) => x.expose.span.start,
        Instruction::From(x) => x.from.span.start,
        Instruction::Healthcheck(x) => x.healthcheck.span.start,
        Instruction::Label(x) => x.label.span.start,
        Instruction::Maintainer(x) => x.maintainer.span.start,
        Instruction::Onbuild(x) => x.onbuild.span.start,
        Instruction::Run(x) => x.run.span.start,
        Instruction::Shell(x) => x.shell.span.start,
        Instruction::Stopsignal(x) => x.stopsignal.span.start,
        Instruction::User(x) => x.user.span.start,
        Instruction::Volume(x) => x.volume.span.start,
        Instruction::Workdir(x) => x.workdir.span.start,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_steps_and_the_echoed_text() {
        let d = parse(
            "# escape=\\\nARG V=3.14\nFROM alpine:$V AS build\nRUN echo a \\\n  # a comment\n  && echo b\nCOPY --chown=1:2 a b /dst/\n\nfrom build\nCMD [\"sh\"]\n",
        )
        .unwrap();
        assert_eq!(d.escape, '\\');
        assert_eq!(d.global_args.len(), 1);
        assert_eq!(d.stages.len(), 2);
        assert_eq!(d.stages[0].name().as_deref(), Some("build"));
        let run = &d.stages[0].steps[0];
        assert_eq!(run.text, "RUN echo a   && echo b");
        assert_eq!(run.line, 4);
        assert_eq!(run.op, Op::Run { cmd: Form::Shell("echo a   && echo b".into()), network: None });
        match &d.stages[0].steps[1].op {
            Op::Copy { srcs, dest, chown, add: false, .. } => {
                assert_eq!(srcs, &[Src::Path("a".into()), Src::Path("b".into())]);
                assert_eq!(dest, "/dst/");
                assert_eq!(chown.as_deref(), Some("1:2"));
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(d.stages[1].steps[0].op, Op::Cmd(Form::Exec(vec!["sh".into()])));
    }

    #[test]
    fn json_or_shell_form_and_heredocs() {
        let d =
            parse("FROM a\nCMD [\"a\",\nRUN <<EOF\necho one\necho two\nEOF\nRUN --network=none <<X cat >/f\nhi\nX\n")
                .unwrap();
        let s = &d.stages[0].steps;
        assert_eq!(s[0].op, Op::Cmd(Form::Shell("[\"a\",".into())), "not JSON: the shell form");
        assert_eq!(s[1].op, Op::Run { cmd: Form::Shell("echo one\necho two\n".into()), network: None });
        assert_eq!(s[2].op, Op::Run { cmd: Form::Shell("<<X cat >/f\nhi\nX".into()), network: Some("none".into()) });
    }

    #[test]
    fn mistakes_get_dockers_messages() {
        let e = parse("FROM a\nBOGUS x\n").unwrap_err().to_string();
        assert_eq!(e, "Error response from daemon: dockerfile parse error line 2: unknown instruction: BOGUS");
        let e = parse("RUN x\n").unwrap_err().to_string();
        assert!(e.contains("no build stage in current context"), "{e}");
        let e = parse_named("", "Dockerfile").unwrap_err().to_string();
        assert!(e.ends_with("the Dockerfile (Dockerfile) cannot be empty"), "{e}");
        let e = parse_named("# only\n\n", "Dockerfile").unwrap_err().to_string();
        assert!(e.ends_with("failed to parse Dockerfile: file with no instructions"), "{e}");
        let e = parse("FROM a\nRUN --mount=type=cache,target=/x true\n").unwrap_err().to_string();
        assert!(e.contains("requires BuildKit"), "{e}");
        let e = parse("FROM a\nADD --checksum=sha256:00 https://x/y /\n").unwrap_err().to_string();
        assert!(e.contains("the --checksum option requires BuildKit"), "{e}");
        let e = parse("FROM a\nCOPY --bogus=1 a /\n").unwrap_err().to_string();
        assert!(e.contains("unknown flag: bogus"), "{e}");
        let e = parse("FROM a\nONBUILD FROM b\n").unwrap_err().to_string();
        assert!(e.contains("isn't allowed as an ONBUILD trigger"), "{e}");
    }

    #[test]
    fn the_backtick_escape() {
        let d = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo x\n").unwrap();
        assert_eq!(d.escape, '`');
        assert_eq!(d.stages[0].steps[0].op, Op::Run { cmd: Form::Shell("dir c:\\   && echo x".into()), network: None });
    }
}
