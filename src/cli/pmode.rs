//! `as4gw pmode …` (check, explain).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use as4gw::config::Config;
use as4gw::pmode::matching::{
    explain_inbound, explain_submission, MatchError, Matched, MessageKey, NearMiss, Submission,
};
use as4gw::pmode::model::{Direction, PartyId};
use as4gw::pmode::{Diagnostic, PModeSet, SetContext};
use clap::Subcommand;
use time::OffsetDateTime;

#[derive(Subcommand)]
pub enum Command {
    /// Validate the gateway configuration and every P-Mode; print each problem as
    /// `file:line: message`. Exit 0 when valid, 1 otherwise.
    Check {
        /// Gateway configuration file.
        #[arg(long, default_value = "as4gw.toml")]
        config: PathBuf,
        /// Check this P-Mode directory instead of the configured one.
        #[arg(long)]
        pmodes: Option<PathBuf>,
    },
    /// Say which P-Mode and leg a message (SOAP envelope, `.xml`) or a submission (`.toml` /
    /// `.json` metadata) selects, and for the near misses which field differed.
    Explain {
        /// The message or submission file.
        file: PathBuf,
        /// Gateway configuration file.
        #[arg(long, default_value = "as4gw.toml")]
        config: PathBuf,
        /// Use this P-Mode directory instead of the configured one.
        #[arg(long)]
        pmodes: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    // The CLI is the edge: it reads the clock and passes it in.
    let now = OffsetDateTime::now_utc();
    match cmd {
        Command::Check { config, pmodes } => {
            let (diags, count) = check(&config, pmodes.as_deref(), now);
            for d in &diags {
                println!("{d}");
            }
            if diags.is_empty() {
                eprintln!("ok: {} and {count} P-Mode(s) are valid", config.display());
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{} problem(s)", diags.len());
                Ok(ExitCode::from(1))
            }
        }
        Command::Explain {
            file,
            config,
            pmodes,
        } => explain(&file, &config, pmodes.as_deref(), now),
    }
}

/// The configured P-Mode directory even when the configuration has other errors, so that one
/// `check` run reports the problems of both.
fn pmode_dir_of(config: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let rel = table.get("gateway")?.get("pmodes")?.as_str()?;
    Some(config.parent().unwrap_or(Path::new("")).join(rel))
}

/// Every problem in the configuration and the P-Mode set; the number of valid P-Modes.
pub fn check(
    config: &Path,
    pmodes: Option<&Path>,
    now: OffsetDateTime,
) -> (Vec<Diagnostic>, usize) {
    let mut diags = Vec::new();
    let (dir, ctx) = match Config::load(config, now) {
        Ok(cfg) => (
            Some(
                pmodes
                    .map(Path::to_path_buf)
                    .unwrap_or(cfg.pmode_dir.clone()),
            ),
            SetContext {
                backends: Some(cfg.backend_names()),
            },
        ),
        Err(d) => {
            diags.extend(d.0);
            (
                pmodes
                    .map(Path::to_path_buf)
                    .or_else(|| pmode_dir_of(config)),
                SetContext::default(),
            )
        }
    };
    let mut count = 0;
    if let Some(dir) = dir {
        match PModeSet::load_dir(&dir, &ctx, now) {
            Ok(set) => count = set.len(),
            Err(d) => diags.extend(d.0),
        }
    }
    (diags, count)
}

fn load_set(
    config: &Path,
    pmodes: Option<&Path>,
    now: OffsetDateTime,
) -> anyhow::Result<(Config, PModeSet)> {
    let cfg =
        Config::load(config, now).map_err(|d| anyhow::anyhow!("invalid configuration:\n{d}"))?;
    let dir = pmodes
        .map(Path::to_path_buf)
        .unwrap_or(cfg.pmode_dir.clone());
    let set = PModeSet::load_dir(
        &dir,
        &SetContext {
            backends: Some(cfg.backend_names()),
        },
        now,
    )
    .map_err(|d| anyhow::anyhow!("invalid P-Modes:\n{d}"))?;
    Ok((cfg, set))
}

fn explain(
    file: &Path,
    config: &Path,
    pmodes: Option<&Path>,
    now: OffsetDateTime,
) -> anyhow::Result<ExitCode> {
    let (cfg, set) = load_set(config, pmodes, now)?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
    let is_xml = ext == "xml" || bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
    let (result, near) = if is_xml {
        let key = MessageKey::from_envelope(&bytes)
            .with_context(|| format!("reading the ebMS header of {}", file.display()))?;
        println!("inbound message {}", file.display());
        println!("  From  {} role {}", key.from, key.from_role);
        println!("  To    {} role {}", key.to, key.to_role);
        println!(
            "  Service {}{}",
            key.service.value,
            key.service
                .service_type
                .as_ref()
                .map(|t| format!("[{t}]"))
                .unwrap_or_default()
        );
        println!("  Action  {}", key.action);
        println!(
            "  AgreementRef {}",
            key.agreement
                .as_ref()
                .map(|a| a.value.as_str())
                .unwrap_or("(none)")
        );
        explain_inbound(&set, &key)
    } else {
        let text = String::from_utf8(bytes).context("submission file is not UTF-8")?;
        let sub: Submission = if ext == "json" {
            serde_json::from_str(&text).context("submission JSON")?
        } else {
            toml::from_str(&text).context("submission TOML")?
        };
        println!(
            "submission {} from this gateway ({})",
            file.display(),
            cfg.party
        );
        if let Some(p) = &sub.pmode {
            println!("  P-Mode  {p}");
        }
        println!("  Action  {}", sub.action);
        explain_submission(&set, &cfg.party, &sub)
    };
    let code = print_result(&result, &near, &cfg.party);
    Ok(code)
}

fn print_result(
    result: &Result<Matched, MatchError>,
    near: &[NearMiss],
    own: &PartyId,
) -> ExitCode {
    let code = match result {
        Ok(m) => {
            let p = &m.pmode;
            let leg = m.leg();
            let (s, r) = p.sender_receiver(leg);
            println!(
                "match: P-Mode {:?} ({}) leg {:?}",
                p.id,
                p.file.display(),
                leg.name
            );
            println!(
                "  {} -> {} ({}), suite {}, compress {}, backend {}",
                s.party_id,
                r.party_id,
                match leg.direction {
                    Direction::InitiatorToResponder => "initiator to responder",
                    Direction::ResponderToInitiator => "responder to initiator",
                },
                p.security.suite.name(),
                leg.compress,
                if p.is_test_service() {
                    "(test service: not delivered)".to_string()
                } else {
                    p.backend.clone().unwrap_or_else(|| "(none)".into())
                }
            );
            if s.party_id == *own {
                println!(
                    "  this gateway sends; endpoint {}",
                    r.endpoint.as_deref().unwrap_or("(none)")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!(
                "no match: {} {}: {}",
                e.code.code(),
                e.code.short_description(),
                e.detail
            );
            for (p, l) in &e.ambiguous {
                println!("  matches P-Mode {p:?} leg {l:?}");
            }
            ExitCode::from(1)
        }
    };
    if !near.is_empty() {
        println!("near misses:");
        for n in near {
            println!("  {}", n.to_string().replace('\n', "\n  "));
        }
    }
    code
}
