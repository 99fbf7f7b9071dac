//! `cg-limit`: put processes in control groups and watch them. See `contlab::cgroup`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = contlab::cgroup::Cli::parse();
    let role = cli.role();
    contlab::exit::report(contlab::cgroup::TOOL, role, contlab::cgroup::run(cli))
}
