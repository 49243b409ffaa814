//! `as4gw messages …` (list, show, payload, retry): an admin client of the REST API.
//!
//! It talks to a running gateway over HTTP like any backend (bearer token, problem JSON), so
//! an operator sees exactly what the backend sees and needs no access to the store files.
//! The one exception is `purge`, store housekeeping with no API equivalent: it opens the
//! store of `--config` itself.
//! Exit codes: 0 done, 1 the API refused (the problem is printed), 2 usage or I/O errors.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use as4gw::backend::model::{encode_segment, MessageList, MessageView};
use as4gw::backend::Problem;
use clap::{Args as ClapArgs, Subcommand};
use futures_util::StreamExt;
use serde_json::json;

/// Connection settings shared by every subcommand.
#[derive(ClapArgs)]
pub struct Args {
    /// Base URL of the gateway's backend API.
    #[arg(
        long,
        global = true,
        env = "AS4GW_API",
        default_value = "http://127.0.0.1:8080"
    )]
    api: String,
    /// Bearer token of a configured backend.
    #[arg(long, global = true, env = "AS4GW_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    tls: super::api_client::ApiTlsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List messages, newest first (filters as in GET /api/v1/messages).
    List {
        /// IN or OUT.
        #[arg(long)]
        direction: Option<String>,
        /// State, e.g. FAILED or RECEIVED.
        #[arg(long)]
        state: Option<String>,
        /// P-Mode id.
        #[arg(long)]
        pmode: Option<String>,
        /// ConversationId.
        #[arg(long)]
        conversation: Option<String>,
        /// A message property, name:value.
        #[arg(long)]
        property: Option<String>,
        /// Created at or after (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Created before (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after this cursor.
        #[arg(long)]
        cursor: Option<String>,
        /// Follow the cursor through every page.
        #[arg(long)]
        all: bool,
        /// Print JSON (one document per page) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one message with its payloads and state history.
    Show {
        /// ebMS MessageId.
        id: String,
        /// IN or OUT, when the id exists in both directions.
        #[arg(long)]
        direction: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Download a payload (to stdout unless --output).
    Payload {
        /// ebMS MessageId.
        id: String,
        /// Payload name (see `show`).
        name: String,
        #[arg(long)]
        direction: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Resubmit a FAILED outbound message as a new message (same P-Mode, conversation,
    /// properties and payloads; new MessageId). Repeating the command does not send twice
    /// (Idempotency-Key `retry-of:<MessageId>`).
    Retry {
        /// ebMS MessageId of the FAILED message.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Run the retention purge now (the P-Modes' [retention]; docs/lifecycle.md). Unlike the
    /// other subcommands it opens the store of --config directly (SQLite serialises it with a
    /// running gateway); no token needed. Prints the report as JSON.
    Purge {
        /// The gateway configuration (store directory and P-Modes).
        #[arg(long, default_value = "as4gw.toml")]
        config: PathBuf,
        /// Count what would be purged, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Purge as if it were this time (RFC 3339), e.g. to preview a future run.
        #[arg(long)]
        now: Option<String>,
        /// Messages per write transaction.
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
}

/// An API client bound to one base URL and token.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// What went wrong in a call: a problem document (exit 1) or anything else (exit 2).
enum CallError {
    Problem(Problem),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for CallError {
    fn from(e: anyhow::Error) -> Self {
        CallError::Other(e)
    }
}

impl From<reqwest::Error> for CallError {
    fn from(e: reqwest::Error) -> Self {
        CallError::Other(e.into())
    }
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<Problem>(&text) {
            Ok(p) => CallError::Problem(p),
            Err(_) => CallError::Other(anyhow::anyhow!("HTTP {status}: {text}")),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, CallError> {
        let resp = self
            .send(self.http.get(self.url(path)).query(query))
            .await?;
        Ok(resp.json().await.context("unexpected answer")?)
    }
}

fn direction_query(direction: &Option<String>) -> Vec<(&'static str, String)> {
    direction.iter().map(|d| ("direction", d.clone())).collect()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Command::Purge {
        config,
        dry_run,
        now,
        batch,
    } = args.command
    {
        return purge(&config, dry_run, now.as_deref(), batch);
    }
    let Some(token) = args.token.clone() else {
        bail!("no token: pass --token or set AS4GW_TOKEN");
    };
    let client = Client {
        http: args
            .tls
            .builder(&args.api)?
            .build()
            .context("HTTP client")?,
        base: args.api.clone(),
        token,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    match rt.block_on(dispatch(&client, args.command)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(CallError::Problem(p)) => {
            let field = p.field.map(|f| format!(" (field {f})")).unwrap_or_default();
            eprintln!("as4gw: {} {}: {}{field}", p.status, p.type_, p.detail);
            Ok(ExitCode::from(1))
        }
        Err(CallError::Other(e)) => Err(e),
    }
}

/// `messages purge`: exit 0 with the JSON report, 1 on an invalid configuration or P-Mode set.
fn purge(
    config: &std::path::Path,
    dry_run: bool,
    now: Option<&str>,
    batch: usize,
) -> anyhow::Result<ExitCode> {
    use as4gw::store::{PurgeOptions, SqliteStore};
    let now = match now {
        None => time::OffsetDateTime::now_utc(),
        Some(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("--now {s:?} is not an RFC 3339 time"))?,
    };
    let wall = time::OffsetDateTime::now_utc();
    let cfg = match as4gw::config::Config::load(config, wall) {
        Ok(c) => c,
        Err(d) => {
            eprintln!("as4gw: invalid configuration {}:\n{d}", config.display());
            return Ok(ExitCode::from(1));
        }
    };
    let set = match as4gw::pmode::set::PModeSet::load_dir(
        &cfg.pmode_dir,
        &as4gw::pmode::SetContext {
            backends: Some(cfg.backend_names()),
        },
        wall,
    ) {
        Ok(s) => s,
        Err(d) => {
            eprintln!("as4gw: invalid P-Modes:\n{d}");
            return Ok(ExitCode::from(1));
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let report = rt.block_on(async {
        let store = SqliteStore::open(&cfg.store_dir)
            .await
            .with_context(|| format!("opening the store {}", cfg.store_dir.display()))?;
        let r =
            as4gw::msh::retention::purge_once(&store, &set, now, PurgeOptions { batch, dry_run })
                .await
                .context("purge");
        store.close().await.context("closing the store")?;
        r
    })?;
    let mut v = serde_json::to_value(report)?;
    v["dryRun"] = json!(dry_run);
    v["rules"] = json!(as4gw::msh::retention::rules_of(&set).len());
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}

async fn dispatch(c: &Client, cmd: Command) -> Result<(), CallError> {
    match cmd {
        Command::List {
            direction,
            state,
            pmode,
            conversation,
            property,
            from,
            to,
            limit,
            cursor,
            all,
            json,
        } => {
            let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            for (k, v) in [
                ("direction", direction),
                ("state", state),
                ("pmode", pmode),
                ("conversationId", conversation),
                ("property", property),
                ("from", from),
                ("to", to),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let mut cursor = cursor;
            let mut header = true;
            loop {
                let mut qq = q.clone();
                if let Some(c) = &cursor {
                    qq.push(("cursor", c.clone()));
                }
                let page: MessageList = c.get_json("/api/v1/messages", &qq).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&page).context("JSON")?);
                } else {
                    print_table(&page.items, header);
                    header = false;
                }
                match (&page.next_cursor, all) {
                    (Some(n), true) => cursor = Some(n.clone()),
                    (Some(n), false) => {
                        if !json {
                            eprintln!("more: --cursor {n}");
                        }
                        break;
                    }
                    (None, _) => break,
                }
            }
            Ok(())
        }
        Command::Show {
            id,
            direction,
            json,
        } => {
            let m: MessageView = c
                .get_json(
                    &format!("/api/v1/messages/{}", encode_segment(&id)),
                    &direction_query(&direction),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m).context("JSON")?);
            } else {
                print_message(&m);
            }
            Ok(())
        }
        Command::Payload {
            id,
            name,
            direction,
            output,
        } => {
            let path = format!(
                "/api/v1/messages/{}/payloads/{}",
                encode_segment(&id),
                encode_segment(&name)
            );
            let resp = c
                .send(c.http.get(c.url(&path)).query(&direction_query(&direction)))
                .await?;
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot create {}", p.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut stream = resp.bytes_stream();
            let mut n = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                n += chunk.len() as u64;
                out.write_all(&chunk).context("write")?;
            }
            out.flush().context("write")?;
            if let Some(p) = output {
                eprintln!("{n} bytes written to {}", p.display());
            }
            Ok(())
        }
        Command::Retry { id, json } => retry(c, &id, json).await,
        Command::Purge { .. } => Err(CallError::Other(anyhow::anyhow!(
            "purge is handled before the API client is built"
        ))),
    }
}

/// Part properties the gateway sets itself (not copied into a resubmission).
const GATEWAY_PART_PROPERTIES: &[&str] = &["MimeType", "CompressionType"];

async fn retry(c: &Client, id: &str, json_out: bool) -> Result<(), CallError> {
    let m: MessageView = c
        .get_json(
            &format!("/api/v1/messages/{}", encode_segment(id)),
            &[("direction", "OUT".to_string())],
        )
        .await?;
    if m.state != "FAILED" {
        return Err(CallError::Other(anyhow::anyhow!(
            "{id} is {}; only FAILED outbound messages are resubmitted",
            m.state
        )));
    }
    let metadata = json!({
        "pmode": m.pmode_id,
        "conversationId": m.conversation_id,
        "refToMessageId": m.ref_to_message_id,
        "properties": m.properties,
        "payloads": m.payloads.iter().map(|p| json!({
            "part": p.name,
            "mimeType": p.mime_type,
            "properties": p.properties.iter()
                .filter(|pp| !GATEWAY_PART_PROPERTIES.contains(&pp.name.as_str()))
                .map(|pp| json!({"name": pp.name, "value": pp.value}))
                .collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let mut form = reqwest::multipart::Form::new().part(
        "metadata",
        reqwest::multipart::Part::text(metadata.to_string())
            .mime_str("application/json")
            .context("mime")?,
    );
    // Each payload is streamed from the download straight into the upload.
    for p in &m.payloads {
        let resp = c
            .send(c.http.get(c.url(&p.href)).query(&[("direction", "OUT")]))
            .await?;
        let part = reqwest::multipart::Part::stream_with_length(
            reqwest::Body::wrap_stream(resp.bytes_stream()),
            p.size,
        )
        .file_name(p.name.clone())
        .mime_str(&p.mime_type)
        .context("payload MIME type")?;
        form = form.part(p.name.clone(), part);
    }
    let resp = c
        .send(
            c.http
                .post(c.url("/api/v1/messages"))
                .header("Idempotency-Key", format!("retry-of:{id}"))
                .multipart(form),
        )
        .await?;
    let accepted: serde_json::Value = resp.json().await.context("unexpected answer")?;
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&accepted).context("JSON")?
        );
    } else {
        println!(
            "{id} resubmitted as {} ({}{})",
            accepted["messageId"].as_str().unwrap_or("?"),
            accepted["state"].as_str().unwrap_or("?"),
            if accepted["created"] == false {
                ", already resubmitted earlier"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn print_table(items: &[MessageView], header: bool) {
    let rows: Vec<[String; 7]> = items
        .iter()
        .map(|m| {
            [
                m.message_id.clone(),
                m.direction.clone(),
                m.state.clone(),
                m.pmode_id.clone(),
                m.conversation_id.clone(),
                m.created_at.clone(),
                m.last_code.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let head = [
        "MESSAGE ID",
        "DIR",
        "STATE",
        "P-MODE",
        "CONVERSATION",
        "CREATED",
        "CODE",
    ];
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    if header {
        line(head.to_vec());
    }
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn print_message(m: &MessageView) {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    println!("MessageId:      {}", m.message_id);
    println!("Direction:      {}", m.direction);
    println!("State:          {}", m.state);
    println!("P-Mode:         {}", m.pmode_id);
    println!("ConversationId: {}", m.conversation_id);
    println!("RefToMessageId: {}", opt(&m.ref_to_message_id));
    println!("Service/Action: {} / {}", opt(&m.service), opt(&m.action));
    if let (Some(f), Some(t)) = (&m.from, &m.to) {
        println!("From → To:      {} → {}", f.id, t.id);
    }
    println!("Created:        {}", m.created_at);
    println!("Updated:        {}", m.updated_at);
    println!("Attempts:       {}", m.attempts);
    if let Some(c) = &m.last_code {
        println!("Last code:      {c} {}", opt(&m.last_detail));
    }
    if let Some(r) = m.has_receipt {
        println!("Receipt:        {}", if r { "stored" } else { "none" });
    }
    println!("Properties:");
    for p in &m.properties {
        println!("  {} = {}", p.name, p.value);
    }
    println!("Payloads:");
    for p in &m.payloads {
        println!(
            "  {}  {}  {} bytes  sha256 {}",
            p.name, p.mime_type, p.size, p.sha256
        );
    }
    if let Some(events) = &m.events {
        println!("Events:");
        for e in events {
            println!(
                "  {}  {} → {}  {}{}",
                e.at,
                e.from.as_deref().unwrap_or("-"),
                e.to,
                e.code
                    .as_deref()
                    .map(|c| format!("{c} "))
                    .unwrap_or_default(),
                e.detail
            );
        }
    }
}
