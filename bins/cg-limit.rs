//! `cg-limit`: put processes in control groups and watch them. See `contlab::cgroup`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = contlab::cgroup::Cli::parse();
    contlab::exit::finish("cg-limit", contlab::cgroup::run(cli))
}
