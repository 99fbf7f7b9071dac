//! `mini build`'s command line: docker's flags, over [`super::build::build`].

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::{ArgAction, Args};

use super::build::{build, BuildSpec, Context};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::image::Reference;
use crate::kernel::Kernel;

/// `build`'s flags (docker's classic builder).
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format.
    #[arg(short, long = "tag", value_name = "NAME[:TAG]")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (Default is 'PATH/Dockerfile').
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// Set build-time variables.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_arg: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image.
    #[arg(long)]
    pub pull: bool,
    /// Set metadata for an image.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Suppress the build output and print image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Set the networking mode for the RUN instructions during build.
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Remove intermediate containers after a successful build.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub rm: bool,
    /// Always remove intermediate containers.
    #[arg(long)]
    pub force_rm: bool,
    /// Write the image ID to the file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// The build context: a directory, or `-` (a Dockerfile or a tar on stdin).
    #[arg(value_name = "PATH | -")]
    pub context: String,
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}").and_then(|_| o.flush());
}

/// The spec of the flags (`trace_args`: mini's own trace options).
pub fn spec(a: &BuildArgs, trace_args: Vec<String>) -> Result<BuildSpec> {
    let mut tags = vec![];
    for t in &a.tag {
        // docker's client refuses these before anything is done: exit 125.
        let bad = |why: String| Error::Container {
            code: 125,
            message: format!("invalid argument \"{t}\" for \"-t, --tag\" flag: {why}"),
        };
        let r = Reference::parse(t).map_err(|e| bad(e.to_string()))?;
        if r.digest.is_some() {
            return Err(bad("a tag cannot be a digest".into()));
        }
        tags.push(r.to_string());
    }
    let pairs = |v: &[String]| -> Vec<(String, Option<String>)> {
        v.iter()
            .map(|s| match s.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (s.clone(), std::env::var(s).ok()),
            })
            .collect()
    };
    let context = match a.context.as_str() {
        "-" => {
            if std::io::stdin().is_terminal() {
                return Err(Error::failed(
                    "mini build -: the Dockerfile or the context tar is read from stdin, which is a terminal",
                    "redirect it: mini build - < Dockerfile",
                ));
            }
            let mut b = vec![];
            std::io::stdin().lock().read_to_end(&mut b).map_err(Error::Output)?;
            let tar = b.starts_with(&[0x1f, 0x8b]) || (b.len() >= 262 && &b[257..262] == b"ustar");
            if tar {
                Context::Tar(b)
            } else {
                Context::Dockerfile(b)
            }
        }
        c if c.starts_with("http://") || c.starts_with("https://") || c.starts_with("git@") => {
            return Err(Error::failed(
                format!("mini build {c}: a remote context is not supported"),
                "clone or download it, then build the directory",
            ))
        }
        c => Context::Dir(PathBuf::from(c)),
    };
    Ok(BuildSpec {
        context,
        file: a.file.clone(),
        tags,
        build_args: pairs(&a.build_arg),
        target: a.target.clone(),
        no_cache: a.no_cache,
        pull: a.pull,
        // A label without `=` is empty (not taken from the environment, unlike a build arg).
        labels: a
            .label
            .iter()
            .map(|l| {
                l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or((l.clone(), String::new()))
            })
            .collect(),
        network: a.network.clone(),
        quiet: a.quiet,
        rm: a.rm || a.force_rm,
        force_rm: a.force_rm,
        trace_args,
    })
}

/// `mini build`.
pub fn run(k: &Kernel, root: &Path, a: &BuildArgs, trace_args: Vec<String>) -> Result<Exit> {
    let spec = spec(a, trace_args)?;
    let quiet = spec.quiet;
    // -q: the log is kept, and shown (on stderr) only if the build fails.
    let mut log = String::new();
    let built = build(k, root, &spec, &mut |l| match quiet {
        true => {
            log.push_str(l);
            log.push('\n');
        }
        false => out(l),
    });
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            if quiet {
                eprint!("{log}");
            }
            return Err(e);
        }
    };
    if quiet {
        out(&built.id);
    }
    if let Some(f) = &a.iidfile {
        k.why("--iidfile: the image's ID, for scripts").rewrite_file(f, &built.id)?;
    }
    Ok(Exit::Ok)
}
