//! The `theater` command. It parses flags, calls the `theater` library and
//! prints; the work lives in the library.

mod run;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Exit status when a chain does not verify.
const EXIT_UNVERIFIED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "theater",
    version,
    about = "Run sandboxed, auditable WebAssembly actors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::RunArgs),
    Verify(verify::VerifyArgs),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging();
    let outcome = match cli.command {
        Command::Run(args) => {
            let order =
                run::message_order(matches.subcommand_matches("run").expect("run was parsed"));
            run::run(args, order)
        }
        Command::Verify(args) => verify::verify(args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Actor output (`runtime.log`, stdout, stderr) at info, everything else at
/// warn; `RUST_LOG` overrides. Logs go to stderr so stdout stays parseable.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,actor=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
