//! `ovl-mount`: mount, unmount and look into overlay filesystems.
//! The lab is `contlab::overlay`; this file only parses and maps the result to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = contlab::overlay::Cli::parse();
    contlab::exit::finish("ovl-mount", contlab::overlay::run(cli))
}
