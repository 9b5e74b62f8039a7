//! Client commands that talk to actors: messages, channels, subscriptions.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use theater::server::protocol::{ChannelOpened, Event, Op, Payload, Queued, Reply, Subscribed};
use tokio::sync::mpsc;

use crate::events;
use crate::output::{self, print_json_line};
use crate::remote::{self, Remote};

/// Send a message to an actor, or ask it and print its reply.
#[derive(Subcommand)]
pub enum MessageCommand {
    /// Queue a message for the actor's `handle-send` and return at once.
    #[command(after_help = "Example:\n  theater message send 1a2b3c4d '{\"add\": 2}'")]
    Send(MessageArgs),
    /// Call the actor's `handle-request` and print its reply.
    #[command(after_help = "Example:\n  theater message request 1a2b3c4d '{}'")]
    Request(RequestArgs),
}

#[derive(Args)]
pub struct MessageArgs {
    /// Actor id or an unambiguous prefix of it.
    actor: String,
    /// The message, as JSON text.
    message: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Args)]
pub struct RequestArgs {
    #[command(flatten)]
    message: MessageArgs,
    /// How long to wait for the reply, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    timeout: u64,
}

/// Open a channel to an actor and print what it sends on it.
#[derive(Subcommand)]
pub enum ChannelCommand {
    /// Open a channel and print its messages until it closes or Ctrl-C.
    ///
    /// Each line of standard input is sent on the channel as a message
    /// (JSON text). At the end of the input the channel closes once the
    /// actor has handled every line, and the command ends.
    #[command(after_help = "Example:\n  theater channel open 1a2b3c4d '\"hello\"'")]
    Open(MessageArgs),
}

#[derive(Args)]
#[command(after_help = "Examples:\n  theater subscribe\n  theater subscribe 1a2b3c4d --json")]
pub struct SubscribeArgs {
    /// Only this actor's events (id or an unambiguous prefix).
    actor: Option<String>,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

pub fn message(command: MessageCommand) -> anyhow::Result<ExitCode> {
    match command {
        MessageCommand::Send(args) => {
            let op = Op::Send {
                actor: args.actor,
                payload: Payload::json(remote::parse_message(&args.message)?),
            };
            remote::show(&args.remote, args.json, op, |queued: &Queued| {
                outln!("queued for {}", queued.actor.short())
            })
        }
        MessageCommand::Request(RequestArgs { message, timeout }) => {
            let op = Op::Request {
                actor: message.actor,
                payload: Payload::json(remote::parse_message(&message.message)?),
                timeout_ms: Some(timeout),
            };
            remote::show(&message.remote, message.json, op, |reply: &Reply| {
                outln!("{}", reply.reply)
            })
        }
    }
}

pub fn channel(command: ChannelCommand) -> anyhow::Result<ExitCode> {
    let ChannelCommand::Open(args) = command;
    remote::block_on(async move {
        let initial = remote::parse_message(&args.message)?;
        let mut client = args.remote.connect().await?;
        let explain = |e| args.remote.explain(e);
        let opened: ChannelOpened = client
            .ask(Op::OpenChannel {
                actor: args.actor.clone(),
                payload: Payload::json(initial),
                timeout_ms: None,
            })
            .await
            .map_err(explain)?;
        let channel = opened.channel.clone();
        let actor = opened.actor.to_string();
        if args.json {
            print_json_line(&opened);
        } else {
            outln!("channel {channel} open to {}", opened.actor.short());
            if opened.accept_message.get().is_some() {
                outln!("{}", opened.accept_message);
            }
        }
        let close = Op::CloseChannel {
            channel: channel.clone(),
        };
        let mut lines = stdin_lines();
        loop {
            if output::closed() {
                break;
            }
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                line = lines.recv() => match line {
                    // End of input: the actor handles what it was sent
                    // (a state query queues behind it), then the channel closes.
                    None => {
                        let barrier = Op::State { actor: actor.clone() };
                        client.call(barrier).await.map_err(explain)?;
                        client.call(Op::Ping).await.map_err(explain)?;
                        let kept: Vec<Event> = client.kept_events().collect();
                        for event in &kept {
                            if show_channel_event(event, &channel, args.json) {
                                return Ok(ExitCode::SUCCESS);
                            }
                        }
                        break;
                    }
                    Some(line) if line.trim().is_empty() => {}
                    Some(line) => {
                        let message = match remote::parse_message(&line) {
                            Ok(message) => message,
                            Err(e) => {
                                errln!("error: {e}");
                                continue;
                            }
                        };
                        let send = Op::ChannelSend {
                            channel: channel.clone(),
                            payload: Payload::json(message),
                        };
                        client.call(send).await.map_err(explain)?;
                    }
                },
                event = client.next_event() => {
                    if show_channel_event(&event.map_err(explain)?, &channel, args.json) {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
        }
        client.call(close).await.map_err(explain)?;
        if !args.json {
            outln!("channel closed");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints an event of `channel`; `true` once the actor closed it.
fn show_channel_event(event: &Event, channel: &str, json: bool) -> bool {
    if event.channel() != Some(channel) {
        return false;
    }
    let closed = matches!(event, Event::ChannelClosed(_));
    if json {
        print_json_line(event);
    } else if closed {
        outln!("channel closed");
    } else if let Event::ChannelMessage(message) = event {
        outln!("{}", message.message);
    }
    closed
}

/// Lines of standard input, read on a thread of their own.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub fn subscribe(args: SubscribeArgs) -> anyhow::Result<ExitCode> {
    remote::block_on(async move {
        let mut client = args.remote.connect().await?;
        let subscribed: Subscribed = client
            .ask(Op::Subscribe {
                actor: args.actor.clone(),
            })
            .await
            .map_err(|e| args.remote.explain(e))?;
        if args.json {
            print_json_line(&subscribed);
        } else {
            match subscribed.actor {
                Some(actor) => outln!("subscribed to {}; Ctrl-C to stop", actor.short()),
                None => outln!("subscribed to every actor; Ctrl-C to stop"),
            }
        }
        events::stream(&mut client, &args.remote, None, 0, args.json, None).await?;
        Ok(ExitCode::SUCCESS)
    })
}
