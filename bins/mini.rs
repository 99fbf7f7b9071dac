//! `mini`: a daemonless container runtime made of contlab's labs, with docker's
//! commands. The lab is `contlab::runtime`; this file only parses and maps the result
//! to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = contlab::runtime::cli::Cli::parse();
    let role = cli.role();
    contlab::exit::report(contlab::runtime::TOOL, role, contlab::runtime::cli::run(cli))
}
