//! Command-line interface: one file per area, dispatched from here.

mod bench;
mod conformance;
mod message;
mod messages;
mod pki;
mod pmode;
mod serve;
mod xml;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "as4gw",
    version,
    about = "eDelivery AS4 access point for the Once-Only Technical System"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// XML tools (canonicalization) for operators comparing digests.
    Xml {
        #[command(subcommand)]
        command: xml::Command,
    },
    /// P-Mode tools: check, explain.
    Pmode {
        #[command(subcommand)]
        command: pmode::Command,
    },
    /// Captured-traffic tools: verify.
    Message {
        #[command(subcommand)]
        command: message::Command,
    },
    /// Messages in a running gateway, over its REST API: list, show, payload, retry.
    Messages(messages::Args),
    /// Key and certificate tools: demo PKI.
    Pki {
        #[command(subcommand)]
        command: pki::Command,
    },
    /// Benchmark: two gateways on this machine, throughput and latency next to the crypto ceiling.
    Bench(bench::Args),
    /// Conformance self-test: scenarios against two in-process gateways.
    Conformance {
        #[command(subcommand)]
        command: conformance::Command,
    },
    /// Run the gateway: AS4 listener, backend API, sender (runs red from the repository root).
    Serve(serve::Args),
}

/// Runs a parsed command line. Exit code 2 is reserved for usage and I/O errors.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Xml { command } => xml::run(command),
        Command::Pmode { command } => pmode::run(command),
        Command::Message { command } => message::run(command),
        Command::Pki { command } => pki::run(command),
        Command::Messages(args) => messages::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Conformance { command } => conformance::run(command),
    }
}
