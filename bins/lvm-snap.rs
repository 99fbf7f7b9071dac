//! `lvm-snap`: device-mapper from first principles (loop devices, a small LVM,
//! snapshots, thin provisioning). The lab is `contlab::dm`; this file only parses and
//! maps the result to an exit code.

use clap::Parser;
use contlab::dm::{run, Cli, TOOL};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let role = cli.role();
    contlab::exit::report(TOOL, role, run(cli))
}
