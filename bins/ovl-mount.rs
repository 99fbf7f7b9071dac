//! `ovl-mount`: mount, unmount and look into overlay filesystems.
//! The lab is `contlab::overlay`; this file only parses and maps the result to an exit code.

use clap::Parser;
use contlab::overlay;

fn main() -> std::process::ExitCode {
    let cli = overlay::Cli::parse();
    let role = cli.role();
    contlab::exit::report(overlay::TOOL, role, overlay::run(cli))
}
