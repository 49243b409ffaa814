//! `pmode check`: every broken P-Mode file under `tests/pmodes-broken/` produces the
//! `file:line: message` its first comment line announces (`# expect: LINE: text`), and nothing
//! else; the shipped presets and configurations are valid.

use std::path::{Path, PathBuf};
use std::process::Command;

use as4gw::pmode::{PModeSet, SetContext};
use time::OffsetDateTime;

use crate::support::as4gw_bin;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ctx() -> SetContext {
    SetContext {
        backends: Some(vec!["oots".into()]),
    }
}

/// `# expect: LINE: text` lines and an optional `# now: YYYY-MM-DD`.
fn header(text: &str) -> (Vec<(usize, String)>, OffsetDateTime) {
    let mut expect = Vec::new();
    let mut now = OffsetDateTime::now_utc();
    for l in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(rest) = l.strip_prefix("# expect: ") {
            let (line, msg) = rest.split_once(": ").expect("# expect: LINE: text");
            expect.push((line.parse().expect("line number"), msg.to_string()));
        } else if let Some(d) = l.strip_prefix("# now: ") {
            let date =
                time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
                    .unwrap();
            now = date.midnight().assume_utc();
        }
    }
    (expect, now)
}

fn check_files(files: &[PathBuf], expect_in: &Path) {
    let text = std::fs::read_to_string(expect_in).unwrap();
    let (expect, now) = header(&text);
    assert!(
        !expect.is_empty(),
        "{}: no # expect line",
        expect_in.display()
    );
    let diags = PModeSet::load_files(files, &ctx(), now)
        .expect_err("broken set must be refused")
        .0;
    let got: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        diags.len(),
        expect.len(),
        "{}: got {got:#?}",
        expect_in.display()
    );
    for (d, (line, msg)) in diags.iter().zip(&expect) {
        assert_eq!(d.file, expect_in, "{got:#?}");
        assert_eq!(
            d.line,
            *line,
            "{}: wrong line in {got:#?}",
            expect_in.display()
        );
        assert!(
            d.message.contains(msg.as_str()),
            "{}: expected {msg:?} in {got:#?}",
            expect_in.display()
        );
    }
}

#[test]
fn every_broken_pmode_reports_its_line_and_message() {
    let dir = root().join("tests/pmodes-broken");
    let files = as4gw::pmode::set::list_toml_files(&dir).unwrap();
    assert!(
        files.len() >= 20,
        "at least 20 broken files, found {}",
        files.len()
    );
    for f in &files {
        check_files(std::slice::from_ref(f), f);
    }
}

#[test]
fn ambiguous_pmodes_are_refused() {
    let dir = root().join("tests/pmodes-broken/ambiguous");
    check_files(
        &[dir.join("a.toml"), dir.join("b.toml")],
        &dir.join("b.toml"),
    );
}

#[test]
fn duplicate_ids_are_refused() {
    let dir = root().join("tests/pmodes-broken/duplicate-id");
    check_files(
        &[dir.join("a.toml"), dir.join("b.toml")],
        &dir.join("b.toml"),
    );
}

#[test]
fn shipped_configs_and_presets_are_valid() {
    for cfg in ["as4gw.toml", "as4gw-blue.toml"] {
        let out = Command::new(as4gw_bin())
            .current_dir(root())
            .args(["pmode", "check", "--config", cfg])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cfg}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn reference_and_domibus_equivalent_files_are_valid() {
    let now = OffsetDateTime::now_utc();
    for f in [
        "docs/pmode-reference.toml",
        "pmodes/domibus-oots/blue_gw-oots.toml",
        "pmodes/domibus-oots/blue_gw-test.toml",
    ] {
        as4gw::pmode::set::load_file(&root().join(f), now)
            .unwrap_or_else(|d| panic!("{f}: {d:#?}"));
    }
}

#[test]
fn check_cli_prints_file_line_message_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(root().join("as4gw.toml")).unwrap();
    // Point the copy at the repository's certificates and at a P-Mode dir with one broken file.
    let cfg = cfg
        .replace("\"certs/", &format!("\"{}/certs/", root().display()))
        .replace("pmodes = \"pmodes\"", "pmodes = \"p\"");
    let cfg = cfg.replace("max-parts = 32", "max-parts = 32\nmax-partz = 1");
    std::fs::write(tmp.path().join("gw.toml"), cfg).unwrap();
    std::fs::create_dir(tmp.path().join("p")).unwrap();
    let broken =
        std::fs::read_to_string(root().join("tests/pmodes-broken/05-http-endpoint.toml")).unwrap();
    let broken = broken.replace("\"../../certs/", &format!("\"{}/certs/", root().display()));
    std::fs::write(tmp.path().join("p/x.toml"), broken).unwrap();
    let out = Command::new(as4gw_bin())
        .current_dir(tmp.path())
        .args(["pmode", "check", "--config", "gw.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("gw.toml:"), "{stdout}");
    assert!(lines[0].contains("unknown field `max-partz`"), "{stdout}");
    assert!(
        lines[1].starts_with(
            "p/x.toml:17: responder endpoint \"http://127.0.0.1:9443/as4\" is not an https URL"
        ),
        "{stdout}"
    );
}

/// Prints the diagnostics of every broken file: run with `--ignored --nocapture` when adding
/// a case, to write its `# expect:` header.
#[test]
#[ignore]
fn print_broken() {
    let dir = root().join("tests/pmodes-broken");
    for f in as4gw::pmode::set::list_toml_files(&dir).unwrap() {
        let (_, now) = header(&std::fs::read_to_string(&f).unwrap());
        match PModeSet::load_files(std::slice::from_ref(&f), &ctx(), now) {
            Ok(_) => println!("OK?? {}", f.display()),
            Err(d) => d.0.iter().for_each(|d| {
                println!(
                    "{}:{}: {}",
                    d.file.file_name().unwrap().to_string_lossy(),
                    d.line,
                    d.message
                )
            }),
        }
    }
    for sub in ["ambiguous", "duplicate-id"] {
        let d = root().join("tests/pmodes-broken").join(sub);
        if let Err(d) = PModeSet::load_files(
            &[d.join("a.toml"), d.join("b.toml")],
            &ctx(),
            OffsetDateTime::now_utc(),
        ) {
            d.0.iter().for_each(|d| {
                println!(
                    "{sub}/{}:{}: {}",
                    d.file.file_name().unwrap().to_string_lossy(),
                    d.line,
                    d.message
                )
            });
        }
    }
}
