//! The `theater` command. It parses flags, calls the `theater` library and
//! prints; the work lives in the library.

#[macro_use]
mod output;

mod actors;
mod build_actor;
mod create;
mod dev;
mod events;
mod history;
mod manifest_arg;
mod messages;
mod observe;
mod remote;
mod run;
mod serve;
mod telemetry;
mod validate;
mod verify;

use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Exit status when a chain does not verify, or its replay diverges.
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
    /// How log lines (on stderr) are written.
    #[arg(long, global = true, value_enum, default_value_t = telemetry::LogFormat::Text)]
    log_format: telemetry::LogFormat,
    /// Export trace spans (one per actor call, with its host calls) over
    /// OTLP/HTTP to the collector at URL, e.g. http://127.0.0.1:4318.
    #[arg(long, global = true, value_name = "URL", env = "THEATER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    Run(run::RunArgs),
    Verify(verify::VerifyArgs),
    Server(serve::ServerArgs),
    /// Start an actor on the server from its manifest.
    Start(actors::StartArgs),
    /// Stop a running actor.
    #[command(after_help = "Example:\n  theater stop 1a2b3c4d")]
    Stop(actors::IdArgs),
    /// Give a running actor a fresh instance; its state and chain are kept.
    #[command(after_help = "Example:\n  theater restart 1a2b3c4d")]
    Restart(actors::IdArgs),
    /// Show the supervision tree of the running actors.
    #[command(after_help = "Example:\n  theater tree --json")]
    Tree(actors::ShowArgs),
    /// List the nodes of the cluster the server belongs to, with their
    /// load and when each was last heard from.
    #[command(after_help = "Example:\n  theater nodes --json")]
    Nodes(actors::ShowArgs),
    /// Move a running actor to another node of the cluster: it finishes
    /// its queued calls, stops, and starts there from its replicated
    /// chain under the same id.
    #[command(after_help = "Example:\n  theater migrate 1a2b3c4d-… --to n2")]
    Migrate(actors::MigrateArgs),
    /// List the running actors (with --all, the stopped ones too).
    #[command(after_help = "Examples:\n  theater list --json\n  theater list --all")]
    List(actors::ListArgs),
    /// Print an actor's current state.
    #[command(after_help = "Example:\n  theater state 1a2b3c4d")]
    State(actors::IdArgs),
    /// Print an actor's chain events.
    Events(events::EventsArgs),
    /// Print an actor's log lines (its `log` chain events).
    Logs(events::LogsArgs),
    /// Show an actor's manifest, limits, counters and chain head; for one
    /// that stopped, how it ended.
    #[command(after_help = "Example:\n  theater inspect 1a2b3c4d")]
    Inspect(actors::IdArgs),
    Replay(history::ReplayArgs),
    Fork(history::ForkArgs),
    Revert(history::RevertArgs),
    #[command(subcommand)]
    Message(messages::MessageCommand),
    #[command(subcommand)]
    Channel(messages::ChannelCommand),
    /// Print chain events of every actor (or one) as they happen.
    Subscribe(messages::SubscribeArgs),
    Validate(validate::ValidateArgs),
    Create(create::CreateArgs),
    Build(build_actor::BuildArgs),
    Dev(dev::DevArgs),
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  theater completions bash > /etc/bash_completion.d/theater")]
    Completions {
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let json = wants_json(&matches);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let telemetry = match telemetry::init(cli.log_format, cli.otlp_endpoint.as_deref()) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            output::report(&e, json);
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Command::Run(args) => {
            let order =
                run::message_order(matches.subcommand_matches("run").expect("run was parsed"));
            run::run(args, order)
        }
        Command::Verify(args) => verify::verify(args),
        Command::Server(args) => serve::serve(args),
        Command::Start(args) => actors::start(args),
        Command::Stop(args) => actors::stop(args),
        Command::Restart(args) => actors::restart(args),
        Command::Tree(args) => actors::tree(args),
        Command::Nodes(args) => actors::nodes(args),
        Command::Migrate(args) => actors::migrate(args),
        Command::List(args) => actors::list(args),
        Command::State(args) => actors::state(args),
        Command::Events(args) => events::events(args),
        Command::Logs(args) => events::logs(args),
        Command::Inspect(args) => actors::inspect(args),
        Command::Replay(args) => history::replay(args),
        Command::Fork(args) => history::fork(args),
        Command::Revert(args) => history::revert(args),
        Command::Message(command) => messages::message(command),
        Command::Channel(command) => messages::channel(command),
        Command::Subscribe(args) => messages::subscribe(args),
        Command::Validate(args) => validate::validate(args),
        Command::Create(args) => create::create(args),
        Command::Build(args) => build_actor::build(args),
        Command::Dev(args) => dev::dev(args),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "theater", &mut script);
            outln!("{}", String::from_utf8_lossy(&script).trim_end());
            Ok(ExitCode::SUCCESS)
        }
    };
    let code = outcome.unwrap_or_else(|e| {
        output::report(&e, json);
        ExitCode::FAILURE
    });
    // The last spans reach the collector before the process ends.
    drop(telemetry);
    match output::write_error() {
        Some(e) => {
            errln!("error: cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
        None => code,
    }
}

/// Whether the command given, however deep, asked for `--json`.
fn wants_json(matches: &ArgMatches) -> bool {
    match matches.subcommand() {
        Some((_, command)) => wants_json(command),
        None => matches!(matches.try_get_one::<bool>("json"), Ok(Some(true))),
    }
}
