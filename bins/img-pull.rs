//! `img-pull`: pull images from registries into an OCI store, inspect, unpack, save,
//! load and push them. The lab is `contlab::image`; this file only parses and maps
//! the result to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = contlab::image::Cli::parse();
    contlab::exit::finish("img-pull", contlab::image::run(cli))
}
