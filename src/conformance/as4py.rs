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
    /// How red reaches it.
    pub target: RemoteTarget,
}

impl As4pyPartner {
    /// Starts the partner with `python` (the pinned venv's interpreter) from `base`.
    pub fn start(base: &Path, python: &Path) -> anyhow::Result<As4pyPartner> {
        let dir = TempDir::new("as4gw-conformance-as4py")?;
        let demo = |f: &str| base.join("certs/demo").join(f);
        let log = dir.path().join("partner.log");
        let mut child = Command::new(python)
            .arg(base.join("tests/interop/python/partner.py"))
            .arg("serve")
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
            .arg(dir.path().join("out"))
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
        })
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
