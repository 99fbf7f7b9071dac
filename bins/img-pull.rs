//! `img-pull`: pull images from registries into an OCI store, inspect, unpack, save,
//! load and push them. The lab is `contlab::image`; this file only parses and maps
//! the result to an exit code.

use clap::Parser;
use contlab::image;

fn main() -> std::process::ExitCode {
    let cli = image::Cli::parse();
    let role = cli.role();
    contlab::exit::report(image::TOOL, role, image::run(cli))
}
