//! `layer-diff`: docker diff from an overlay upper directory, OCI layer tarballs.
//! The lab is `contlab::layer`; this file only parses and maps the result to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = contlab::layer::Cli::parse();
    contlab::exit::finish("layer-diff", contlab::layer::run(cli))
}
