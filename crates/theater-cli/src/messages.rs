//! Client commands that talk to actors: messages, channels, subscriptions.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;
use theater::server::protocol::{Op, Payload};
use tokio::sync::mpsc;

use crate::actors;
use crate::output::{self, print_json, print_json_line};
use crate::remote::{self, Remote, short, show_bytes};

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
    remote::block_on(async move {
        match command {
            MessageCommand::Send(args) => {
                let payload = Payload::json(remote::parse_message(&args.message)?);
                let op = Op::Send {
                    actor: args.actor,
                    payload,
                };
                let answer = remote::call(&args.remote, op).await?;
                if args.json {
                    print_json(&answer);
                } else {
                    outln!(
                        "queued for {}",
                        short(answer["actor"].as_str().unwrap_or_default())
                    );
                }
            }
            MessageCommand::Request(RequestArgs { message, timeout }) => {
                let payload = Payload::json(remote::parse_message(&message.message)?);
                let op = Op::Request {
                    actor: message.actor,
                    payload,
                    timeout_ms: Some(timeout),
                };
                let answer = remote::call(&message.remote, op).await?;
                if message.json {
                    print_json(&answer);
                } else {
                    outln!("{}", show_bytes(&answer, "reply"));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn channel(command: ChannelCommand) -> anyhow::Result<ExitCode> {
    let ChannelCommand::Open(args) = command;
    remote::block_on(async move {
        let initial = remote::parse_message(&args.message)?;
        let mut client = args.remote.connect().await?;
        let explain = |e| args.remote.explain(e);
        let answer = client
            .call(Op::OpenChannel {
                actor: args.actor.clone(),
                payload: Payload::json(initial),
                timeout_ms: None,
            })
            .await
            .map_err(explain)?;
        let channel = answer["channel"].as_str().unwrap_or_default().to_owned();
        let actor = answer["actor"].as_str().unwrap_or_default().to_owned();
        if args.json {
            print_json_line(&answer);
        } else {
            outln!("channel {channel} open to {}", short(&actor));
            if answer.get("accept_message").is_some_and(|m| !m.is_null())
                || answer.get("accept_message_hex").is_some()
            {
                outln!("{}", show_bytes(&answer, "accept_message"));
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
                        let kept: Vec<Value> = client.kept_events().collect();
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
                        client
                            .call(Op::ChannelSend {
                                channel: channel.clone(),
                                payload: Payload::json(message),
                            })
                            .await
                            .map_err(explain)?;
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
fn show_channel_event(event: &Value, channel: &str, json: bool) -> bool {
    if event["channel"].as_str() != Some(channel) {
        return false;
    }
    let closed = event["event"] == "channel_closed";
    if json {
        print_json_line(event);
    } else if closed {
        outln!("channel closed");
    } else if event["event"] == "channel_message" {
        outln!("{}", show_bytes(event, "message"));
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
        let answer = client
            .call(Op::Subscribe {
                actor: args.actor.clone(),
            })
            .await
            .map_err(|e| args.remote.explain(e))?;
        if args.json {
            print_json_line(&answer);
        } else {
            match answer["actor"].as_str() {
                Some(actor) => outln!("subscribed to {}; Ctrl-C to stop", short(actor)),
                None => outln!("subscribed to every actor; Ctrl-C to stop"),
            }
        }
        actors::stream(&mut client, &args.remote, None, 0, args.json, None).await?;
        Ok(ExitCode::SUCCESS)
    })
}
