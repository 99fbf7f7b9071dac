//! `ns-exec`: run a command in new namespaces, join a process's, or list them.
//! The lab is `contlab::ns`; this file only parses and maps the result to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = contlab::ns::Cli::parse();
    let role = cli.role();
    contlab::exit::report(contlab::ns::TOOL, role, contlab::ns::run(cli))
}
