use clap::Parser;
use convtest::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Inside the nested lane's L1, convtest is /init: no arguments to parse.
    if std::process::id() == 1 {
        return ExitCode::from(u8::try_from(convtest::l1init::main()).unwrap_or(1));
    }
    // Bad arguments exit here with clap's status 2.
    let cli = Cli::parse();
    convtest::cleanup::install_signal_handler();
    let code = match cli.command {
        Command::Run(args) => convtest::run::run(&args),
        Command::Vmm(args) => convtest::vmm::main(&args),
        Command::Mutants(args) => convtest::mutants::main(&args),
        Command::Matrix(args) => convtest::matrix::main(&args),
        Command::Bench(args) => convtest::bench::main(&args),
        Command::List => {
            print!("{}", convtest::list::render());
            0
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}
