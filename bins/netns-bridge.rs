//! `netns-bridge`: network namespaces, bridges, veth pairs, NAT and published ports,
//! over netlink. The lab is `contlab::netns`; this file only parses and maps the result
//! to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = contlab::netns::Cli::parse();
    contlab::exit::finish("netns-bridge", contlab::netns::run(cli))
}
