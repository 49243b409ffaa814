//! `as4gw health [--url …]`: the container `HEALTHCHECK` and monitoring probe. The runtime
//! image has no curl, and the probe should judge readiness the way the gateway itself does:
//! `GET /api/v1/health` answers 200 only when the store, P-Modes, AS4 listener and scheduler
//! are all up (no token needed for it).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Base URL of the backend API.
    #[arg(long, env = "AS4GW_API", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let url = format!("{}/api/v1/health", args.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(args.timeout))
        .build()
        .context("HTTP client")?;
    let r = rt.block_on(async {
        let resp = client.get(&url).send().await?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    });
    match r {
        Ok((status, body)) if status.is_success() => {
            println!("ready: {body}");
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
