//! P-Mode TOML loader (`as4gw::pmode::set::load_file`).
//!
//! There is no string-level entry point: the loader reads a file (certificate paths are
//! relative to it), so each input is written to `<tmp>/pmodes/fuzz.toml` in a private temp
//! directory whose `certs` is a symlink to the repository's `certs/` — the shipped presets'
//! `../certs/demo/...` paths then resolve and the certificate checks run too. Whatever loads is
//! also put through the set checks (`PModeSet::load_files`) and matched against a fixed key.
//! Property: the loader returns a P-Mode or diagnostics, never panics.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use as4gw::pmode::set::load_file;
use as4gw::pmode::{PModeSet, SetContext};
use libfuzzer_sys::fuzz_target;
use time::macros::datetime;

fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("as4gw-fuzz-pmode-{}", std::process::id()));
        std::fs::create_dir_all(base.join("pmodes")).expect("temp dir");
        let certs = base.join("certs");
        if !certs.exists() {
            let repo_certs = concat!(env!("CARGO_MANIFEST_DIR"), "/../certs");
            std::os::unix::fs::symlink(repo_certs, &certs).expect("symlink certs");
        }
        base.join("pmodes").join("fuzz.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = file();
    std::fs::write(path, data).expect("write temp P-Mode");
    let now = datetime!(2027-06-01 12:00 UTC);
    match load_file(path, now) {
        Ok((p, _locator)) => {
            for leg in &p.legs {
                let _ = p.sender_receiver(leg);
            }
            let _ = p.is_test_service();
            let ctx = SetContext::default();
            if let Ok(set) = PModeSet::load_files(std::slice::from_ref(path), &ctx, now) {
                assert_eq!(set.len(), 1);
            }
        }
        Err(diags) => {
            assert!(!diags.is_empty(), "an error without a diagnostic");
            for d in diags {
                let _ = d.to_string();
            }
        }
    }
});
