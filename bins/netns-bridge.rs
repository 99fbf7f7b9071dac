//! `netns-bridge`: network namespaces, bridges, veth pairs, NAT and published ports,
//! over netlink. The lab is `contlab::netns`; this file only parses and maps the result
//! to an exit code.

use clap::Parser;
use contlab::netns::{run, Cli, TOOL};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let role = cli.role();
    contlab::exit::report(TOOL, role, run(cli))
}
