//! `layer-diff`: docker diff from an overlay upper directory, OCI layer tarballs.
//! The lab is `contlab::layer`; this file only parses and maps the result to an exit code.

use clap::Parser;
use contlab::layer;

fn main() -> std::process::ExitCode {
    let cli = layer::Cli::parse();
    let role = cli.role();
    contlab::exit::report(layer::TOOL, role, layer::run(cli))
}
