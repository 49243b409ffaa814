//! The HTTP client of the commands that talk to a running gateway's backend API (`messages`,
//! `health`): plain HTTP on loopback, or HTTPS when the listener has `[api.tls]`, trusting only
//! the given CA and presenting a client certificate when the listener requires one.

use std::path::PathBuf;

use anyhow::Context;
use as4gw::transport::ClientTlsFiles;

/// TLS options for an `https://` backend API.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ApiTlsArgs {
    /// PEM CA the API's TLS certificate chains to (`https://` API; the system roots are not used).
    #[arg(long = "api-ca", global = true, env = "AS4GW_API_CA")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain, when the API listener requires client authentication.
    #[arg(
        long = "api-cert",
        global = true,
        env = "AS4GW_API_CERT",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,
    /// PEM (PKCS#8) key of that client certificate.
    #[arg(
        long = "api-key",
        global = true,
        env = "AS4GW_API_KEY",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,
}

impl ApiTlsArgs {
    /// A client builder for `url`: with `--api-ca`, TLS through the transport room's client
    /// configuration (only that CA, optional client identity); without it reqwest's defaults.
    pub fn builder(&self, url: &str) -> anyhow::Result<reqwest::ClientBuilder> {
        let b = reqwest::Client::builder().no_proxy();
        let Some(ca) = &self.ca else {
            if url.starts_with("https://") {
                anyhow::bail!("{url} is https: give the CA of its certificate with --api-ca");
            }
            return Ok(b);
        };
        let tls = ClientTlsFiles {
            trust_anchors: vec![ca.clone()],
            client_cert_chain: self.cert.clone(),
            client_private_key: self.key.clone(),
            protocols: Default::default(),
        }
        .load()
        .context("API TLS files")?
        .build()
        .context("API TLS configuration")?;
        Ok(b.use_preconfigured_tls((*tls).clone()))
    }
}
