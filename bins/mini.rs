//! `mini`: a daemonless container runtime made of contlab's labs, with docker's
//! commands. The lab is `contlab::runtime`; this file only parses and maps the result
//! to an exit code.

fn main() -> std::process::ExitCode {
    let cli = match contlab::runtime::cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let role = cli.role();
    contlab::exit::report(contlab::runtime::TOOL, role, contlab::runtime::cli::run(cli))
}
