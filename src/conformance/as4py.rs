//! The Python `as4==0.2.0` library as a conformance partner: `tests/interop/python/partner.py
//! serve` (the library behind an HTTPS server with mutual TLS), started once per run. as4gw
//! sends to it over real HTTPS on the Peppol-shaped agreement `pmodes/interop/as4py-red-blue`;
//! what the library received (its verdict and the decrypted payload) is read back from the
//! records the script writes, so `delivered` is checked against the library's view.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::world::{RemoteTarget, TempDir};

/// Peppol AP PartyId type: the only one the library accepts (docs/interop.md).
const PEPPOL_AP: &str = "urn:fdc:peppol.eu:2017:identifiers:ap";

/// A running `partner.py serve`, stopped on drop.
pub struct As4pyPartner {
    child: Child,
    dir: TempDir,
    base: PathBuf,
    python: PathBuf,
    /// How red reaches it.
    pub target: RemoteTarget,
}

/// `partner.py <verb>` with the identity every invocation shares: party `as4py-blue` with blue's
/// demo RSA pair, blue's TLS pair, the demo CA, writing to `out`.
fn partner_command(base: &Path, python: &Path, verb: &str, out: &Path) -> Command {
    let demo = |f: &str| base.join("certs/demo").join(f);
    let mut cmd = Command::new(python);
    cmd.arg(base.join("tests/interop/python/partner.py"))
        .arg(verb)
        .args(["--party-id", "as4py-blue"])
        .arg("--cert")
        .arg(demo("blue/rsa.cert.pem"))
        .arg("--key")
        .arg(demo("blue/rsa.key.pem"))
        .arg("--tls-cert")
        .arg(demo("blue/tls.cert.pem"))
        .arg("--tls-key")
        .arg(demo("blue/tls.key.pem"))
        .arg("--ca")
        .arg(demo("ca.cert.pem"))
        .arg("--out")
        .arg(out);
    cmd
}

impl As4pyPartner {
    /// Starts the partner with `python` (the pinned venv's interpreter) from `base`.
    pub fn start(base: &Path, python: &Path) -> anyhow::Result<As4pyPartner> {
        let dir = TempDir::new("as4gw-conformance-as4py")?;
        let log = dir.path().join("partner.log");
        let mut child = partner_command(base, python, "serve", &dir.path().join("out"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| anyhow::anyhow!("{}: {e}", python.display()))?;
        // Its first stdout line says where it listens (EOF when it died).
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let port = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v["listening"].as_u64());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "partner.py serve did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Ok(As4pyPartner {
            child,
            target: RemoteTarget {
                config: base.join("as4gw.toml"),
                pmodes: base.join("pmodes/interop"),
                url: format!("https://127.0.0.1:{port}/as4"),
                party: Some(crate::pmode::model::PartyId {
                    id: "as4gw-red".into(),
                    id_type: Some(PEPPOL_AP.into()),
                }),
            },
            dir,
            base: base.to_path_buf(),
            python: python.to_path_buf(),
        })
    }

    /// The library sends: `partner.py send` builds a message around `document` (its SBD),
    /// POSTs it to `url` over HTTPS and verifies the answer. Returns its verdict (JSON) and
    /// the SBD it sent.
    pub async fn send(&self, url: &str, document: &[u8]) -> anyhow::Result<(Value, Vec<u8>)> {
        let out = self
            .dir
            .path()
            .join(format!("send-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&out)?;
        let doc = out.join("document.xml");
        std::fs::write(&doc, document)?;
        let demo = |f: &str| self.base.join("certs/demo").join(f);
        let mut cmd = partner_command(&self.base, &self.python, "send", &out);
        cmd.args(["--url", url, "--to-party-id", "as4gw-red"])
            .arg("--to-cert")
            .arg(demo("red/rsa.cert.pem"))
            .args(["--sender", super::run::AS4PY_SENDER])
            .args(["--recipient", super::run::AS4PY_RECIPIENT])
            .args(["--instance-id", "conformance-as4py-send"])
            .arg("--payload")
            .arg(&doc);
        let run = tokio::task::spawn_blocking(move || cmd.output()).await??;
        if !run.status.success() {
            anyhow::bail!(
                "partner.py send: {}\n{}",
                run.status,
                String::from_utf8_lossy(&run.stderr)
            );
        }
        let verdict: Value = serde_json::from_slice(&run.stdout).map_err(|e| {
            anyhow::anyhow!(
                "partner.py send printed no verdict ({e}): {}",
                String::from_utf8_lossy(&run.stdout)
            )
        })?;
        let sent = std::fs::read(out.join("sent.sbd.xml"))?;
        Ok((verdict, sent))
    }

    /// The payloads the library accepted (verdict `ok`) for `message_id`, one per reception.
    pub fn received(&self, message_id: &str) -> anyhow::Result<Vec<Vec<u8>>> {
        let out = self.dir.path().join("out");
        let mut got = Vec::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&out)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for p in names {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !(name.starts_with("received-") && name.ends_with(".json")) {
                continue;
            }
            let v: Value = serde_json::from_slice(&std::fs::read(&p)?)?;
            if v["message_id"] == message_id && v["ok"] == true {
                got.push(std::fs::read(p.with_extension("sbd.xml"))?);
            }
        }
        Ok(got)
    }
}

impl Drop for As4pyPartner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
