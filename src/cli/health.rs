//! `as4gw health [--url …]`: the container `HEALTHCHECK` and monitoring probe. The runtime
//! image has no curl, and the probe should judge readiness the way the gateway itself does:
//! `GET /api/v1/health` answers 200 only when the store, P-Modes, AS4 listener and scheduler
//! are all up. The route wants a backend's bearer token; without one (`--token` or
//! `AS4GW_TOKEN`) the probe can only tell that the API answers (liveness): it says so.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Base URL of the backend API.
    #[arg(long, env = "AS4GW_API", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Bearer token of a configured backend: readiness; without it only liveness is checked.
    #[arg(long, env = "AS4GW_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    #[command(flatten)]
    tls: super::api_client::ApiTlsArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let url = format!("{}/api/v1/health", args.url.trim_end_matches('/'));
    let client = args
        .tls
        .builder(&args.url)?
        .timeout(Duration::from_secs(args.timeout))
        .build()
        .context("HTTP client")?;
    let r = rt.block_on(async {
        let mut req = client.get(&url);
        if let Some(t) = &args.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    });
    match r {
        Ok((status, body)) if status.is_success() => {
            println!("ready: {body}");
            Ok(ExitCode::SUCCESS)
        }
        // The API answered, refusing only the missing token: the process is alive.
        Ok((status, _)) if args.token.is_none() && status == reqwest::StatusCode::UNAUTHORIZED => {
            println!("alive (no token given: readiness not checked)");
            Ok(ExitCode::SUCCESS)
        }
        Ok((status, body)) => {
            println!("not ready ({status}): {body}");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            println!("unreachable: {url}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
