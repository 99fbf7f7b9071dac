//! `lvm-snap`: device-mapper from first principles (loop devices, a small LVM,
//! snapshots, thin provisioning). The lab is `contlab::dm`; this file only parses and
//! maps the result to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = contlab::dm::Cli::parse();
    contlab::exit::finish("lvm-snap", contlab::dm::run(cli))
}
