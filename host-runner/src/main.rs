use clap::Parser;
use convtest::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Bad arguments exit here with clap's status 2.
    let cli = Cli::parse();
    convtest::cleanup::install_signal_handler();
    let code = match cli.command {
        Command::Run(args) => convtest::run::run(&args),
        Command::Vmm(args) => convtest_vmm::main(&args.config()),
        Command::Mutants(args) => convtest::mutants::main(&args),
        Command::Matrix(args) => convtest::matrix::main(&args),
        Command::Bench(args) => convtest::bench::main(&args),
        Command::LavaJob(args) => convtest::lava::job_main(&args),
        Command::LavaCases(args) => convtest::lava::cases_main(&args),
        Command::Bundle(args) => convtest::bundle::main(&args),
        Command::List => {
            print!("{}", convtest::list::render());
            0
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}
