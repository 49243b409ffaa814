//! Command-line interface: one file per area, dispatched from here.

mod api_client;
mod bench;
mod conformance;
mod health;
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
    /// Readiness probe for container health checks and monitors: GET /api/v1/health, exit 0
    /// when the gateway reports ready, 1 otherwise.
    Health(health::Args),
}

/// What `as4gw --version` prints: the version and, per enabled eDelivery suite, the algorithm
/// URIs the P-Modes of that suite use (so an operator can compare with a partner's profile).
pub fn version_text() -> String {
    use as4gw::ns;
    use as4gw::pmode::Suite;
    let mut out = format!("{}\nsuites:", env!("CARGO_PKG_VERSION"));
    for s in [Suite::Edelivery115, Suite::Edelivery20] {
        out.push_str(&format!(
            "\n  {}\n    signature      {}\n    digest         {}\n    key            {}",
            s.name(),
            s.signature_algorithm(),
            s.hash_function(),
            s.key_algorithm(),
        ));
        if s == Suite::Edelivery115 {
            out.push_str(&format!(" (mask {})", ns::ALG_MGF1_SHA256));
        } else {
            out.push_str(&format!(" (+ {}, {})", ns::ALG_HKDF, ns::ALG_KW_AES128));
        }
        out.push_str(&format!(
            "\n    content        {}",
            s.encryption_algorithm()
        ));
    }
    out
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
        Command::Health(args) => health::run(args),
    }
}
