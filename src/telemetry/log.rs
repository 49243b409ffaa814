//! The log subscriber: text for people at a terminal, JSON lines for log shippers.
//!
//! The filter is `RUST_LOG` when set (operators' usual knob), else the configured level
//! (`[log] level`, default `info`). JSON lines carry the current span and the whole span list,
//! so the ids of the message stage spans ([`super::span`]) are on every line logged inside
//! them. Logs go to stderr; stdout is reserved for the `serve` start line tests wait for.

use std::str::FromStr;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Output format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (tracing-subscriber's default format).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields`, `target`, `span`, `spans`.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("log format {s:?}: expected \"text\" or \"json\"")),
        }
    }
}

/// Log settings (`[log]` in `as4gw.toml`, `--log-format` on the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `info,as4gw::msh=debug`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the process-wide subscriber writing to stderr. A second call (tests, a subscriber
/// installed by an embedding program) leaves the first one in place.
pub fn init(settings: &LogSettings) {
    init_with_writer(settings, std::io::stderr);
}

/// [`init`] with another writer.
pub fn init_with_writer<W>(settings: &LogSettings, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&settings.level))
        .with_writer(writer);
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
