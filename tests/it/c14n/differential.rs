//! Differential test: generated documents canonicalized by as4gw and by Python lxml (libxml2),
//! compared byte for byte, exclusive C14N with and without comments and with PrefixLists.
//!
//! The documents come from a seeded RNG, so a failure reproduces: the seed, the case number,
//! the document and both outputs are printed. `AS4GW_DIFF_SEED=<u64>` and `AS4GW_DIFF_DOCS=<n>`
//! override the defaults. lxml runs once per batch (one Python process reads every case).
//!
//! The test builds a virtual environment under `target/venv-lxml` on first run
//! (`python3 -m venv`, `pip install lxml==6.1.3`) and reuses it afterwards. If Python or pip is
//! missing or fails, the test fails with the reason: a differential test that silently does
//! nothing proves nothing.
//!
//! Never `#default` in the PrefixList here: lxml's subtree API drops the in-scope default
//! namespace in that case (see `c14n/generated/cases.json`, `lxml_output`); the W3C vector
//! `merlin-exc-c14n-one/c14n-1.txt` covers `#default` instead.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use as4gw::xml::{C14nOptions, Document};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::c14n;

const LXML_VERSION: &str = "6.1.3";
const DEFAULT_SEED: u64 = 0x0A54_C14E_2026_0001;
const DEFAULT_DOCS: usize = 1500;

/// Reads `manifest.json` (a list of cases) in the directory given as argv[1] and writes each
/// case's canonical bytes to `<n>.lxml`, or `ERROR: …` to `<n>.err`.
const LXML_SCRIPT: &str = r#"
import json, os, sys
from lxml import etree
d = sys.argv[1]
cases = json.load(open(os.path.join(d, "manifest.json")))
parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
for c in cases:
    n = c["n"]
    try:
        tree = etree.parse(os.path.join(d, "%d.xml" % n), parser)
        if c["id"] is None:
            node = tree
        else:
            found = tree.getroot().xpath('//*[@Id=$v]', v=c["id"])
            if len(found) != 1:
                raise Exception("found %d targets" % len(found))
            node = found[0]
        out = etree.tostring(node, method="c14n", exclusive=True, with_comments=c["with_comments"],
                             inclusive_ns_prefixes=c["prefixes"] or None)
        open(os.path.join(d, "%d.lxml" % n), "wb").write(out)
    except Exception as e:
        open(os.path.join(d, "%d.err" % n), "w").write("ERROR: %r" % (e,))
"#;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        Err(_) => default,
    }
}

#[test]
fn exclusive_c14n_agrees_with_lxml() {
    let seed: u64 = env_or("AS4GW_DIFF_SEED", DEFAULT_SEED);
    let n_docs: usize = env_or("AS4GW_DIFF_DOCS", DEFAULT_DOCS);
    let python = lxml_python();

    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cases = Vec::with_capacity(n_docs);
    let mut manifest = Vec::with_capacity(n_docs);
    for n in 0..n_docs {
        let case = Generator::new(&mut rng).case();
        std::fs::write(dir.path().join(format!("{n}.xml")), &case.xml).expect("write case");
        manifest.push(serde_json::json!({
            "n": n,
            "id": case.id,
            "with_comments": case.with_comments,
            "prefixes": case.prefixes,
        }));
        cases.push(case);
    }
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_vec(&manifest).expect("json"),
    )
    .expect("manifest");

    let out = Command::new(&python)
        .arg("-c")
        .arg(LXML_SCRIPT)
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "lxml batch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut failures = Vec::new();
    let (mut with_comments, mut with_prefixes, mut documents) = (0, 0, 0);
    for (n, case) in cases.iter().enumerate() {
        with_comments += usize::from(case.with_comments);
        with_prefixes += usize::from(!case.prefixes.is_empty());
        documents += usize::from(case.id.is_none());
        let lxml = match std::fs::read(dir.path().join(format!("{n}.lxml"))) {
            Ok(b) => b,
            Err(_) => {
                let err = std::fs::read_to_string(dir.path().join(format!("{n}.err")))
                    .unwrap_or_default();
                failures.push(report(
                    seed,
                    n,
                    case,
                    "lxml refused the document",
                    err.as_bytes(),
                ));
                continue;
            }
        };
        let doc = match Document::parse(case.xml.as_bytes()) {
            Ok(d) => d,
            Err(e) => {
                failures.push(report(
                    seed,
                    n,
                    case,
                    &format!("as4gw refused the document: {e}"),
                    &lxml,
                ));
                continue;
            }
        };
        let mut opts = C14nOptions::with_prefix_list(&case.prefixes.join(" "));
        opts.with_comments = case.with_comments;
        let ours = c14n(&doc, case.id.as_deref(), &opts);
        if ours != lxml {
            failures.push(report(
                seed,
                n,
                case,
                &format!("as4gw: {:?}", String::from_utf8_lossy(&ours)),
                &lxml,
            ));
        }
    }
    eprintln!(
        "differential: seed {seed:#x}, {n_docs} documents ({documents} whole-document, {with_comments} with comments, \
         {with_prefixes} with a PrefixList), {} mismatches",
        failures.len()
    );
    // The generator must actually exercise every option.
    assert!(n_docs < 100 || (documents > 0 && with_comments > 0 && with_prefixes > 0));
    assert!(
        failures.is_empty(),
        "{} of {n_docs} documents differ from lxml (first 5 shown):\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn report(seed: u64, n: usize, case: &Case, ours: &str, lxml: &[u8]) -> String {
    format!(
        "--- seed {seed:#x} case {n}: id {:?}, with_comments {}, prefixes {:?}\n{}\n--- {ours}\n--- lxml:  {:?}\n",
        case.id,
        case.with_comments,
        case.prefixes,
        case.xml,
        String::from_utf8_lossy(lxml)
    )
}

// ---------------------------------------------------------------------------------------------
// The lxml environment

/// The Python of `target/venv-lxml`, created with lxml pinned on first use.
fn lxml_python() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let venv = target.join("venv-lxml");
    if lxml_ok(&venv) {
        return python_in(&venv);
    }
    // Build aside and rename, so that two test runs never see a half-built environment.
    let tmp = target.join(format!("venv-lxml.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&target).expect("target dir");
    run_or_fail(
        Command::new("python3").args(["-m", "venv"]).arg(&tmp),
        "python3 -m venv",
    );
    run_or_fail(
        Command::new(python_in(&tmp))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(format!("lxml=={LXML_VERSION}")),
        "pip install lxml",
    );
    if std::fs::rename(&tmp, &venv).is_err() {
        // Another run won the race; use its environment if it is complete.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(
        lxml_ok(&venv),
        "{} does not provide lxml {LXML_VERSION}",
        venv.display()
    );
    python_in(&venv)
}

fn python_in(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

fn lxml_ok(venv: &Path) -> bool {
    Command::new(python_in(venv))
        .arg("-c")
        .arg(format!(
            "import lxml; assert lxml.__version__ == '{LXML_VERSION}', lxml.__version__"
        ))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run_or_fail(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The generator

struct Case {
    xml: String,
    /// Value of the unqualified `Id` attribute of the target, or `None` for the whole document.
    id: Option<String>,
    with_comments: bool,
    prefixes: Vec<String>,
}

const PREFIXES: &[&str] = &["a", "b", "p", "ns1", "wsu", "S12", "ñ", "x_y"];
/// Namespace names as written. All are valid URI references: libxml2 refuses others (a
/// non-ASCII or `<` in a namespace name), so they cannot be compared. None contains `&`:
/// libxml2 writes namespace values unescaped (`xmlns:p="urn:q?a=1&b=2"`, not even well-formed),
/// whereas C14N §2.3 renders namespace nodes like attributes, `&amp;`; the unit test
/// `xml::c14n::tests::ampersand_in_namespace_uri_escaped` pins our behaviour.
const URIS: &[&str] = &[
    "urn:a",
    "urn:b",
    "http://example.org/one",
    "http://example.org/two#frag",
    "urn:x:%C3%BC",
    "urn:q?a=1;b=%262",
    "http://www.w3.org/2000/09/xmldsig#",
];
const LOCALS: &[&str] = &[
    "e",
    "Body",
    "élément",
    "x-y",
    "a.b",
    "_z",
    "日本",
    "Messaging",
];
const ATTR_LOCALS: &[&str] = &["a", "b", "z", "id", "Zz", "é", "k-1", "type"];
/// Pieces of character data as written in the document (references left to the parser).
const TEXT_BITS: &[&str] = &[
    "text",
    " ",
    "  ",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "&amp;",
    "&lt;",
    "&gt;",
    ">",
    "&quot;",
    "\"",
    "'",
    "&apos;",
    "&#xD;",
    "&#13;",
    "&#x9;",
    "&#xA;",
    "&#233;",
    "&#x1F600;",
    "é",
    "日本語",
    "😀",
    "a&amp;b",
    "]",
    "&#x5D;",
];
const ATTR_BITS: &[&str] = &[
    "v", " ", "\t", "\n", "\r\n", "&amp;", "&lt;", ">", "&gt;", "&quot;", "'", "&apos;", "&#xD;",
    "&#x9;", "&#xA;", "&#10;", "&#233;", "é", "😀", "x y",
];

struct Generator<'r> {
    rng: &'r mut StdRng,
    out: String,
    /// In-scope bindings, innermost last; the default namespace is `None`, `""` = undeclared.
    scope: Vec<(Option<String>, String)>,
    elements: usize,
    target_placed: bool,
    want_target: bool,
}

impl<'r> Generator<'r> {
    fn new(rng: &'r mut StdRng) -> Self {
        Generator {
            rng,
            out: String::new(),
            scope: Vec::new(),
            elements: 0,
            target_placed: false,
            want_target: true,
        }
    }

    fn pick<'a>(&mut self, s: &[&'a str]) -> &'a str {
        s[self.rng.random_range(0..s.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn case(mut self) -> Case {
        self.want_target = !self.chance(0.2);
        let with_comments = self.chance(0.5);
        let mut prefixes = Vec::new();
        if self.chance(0.4) {
            for _ in 0..self.rng.random_range(1..4) {
                let p = self.pick(PREFIXES).to_string();
                if !prefixes.contains(&p) {
                    prefixes.push(p);
                }
            }
            if self.chance(0.2) {
                prefixes.push("notinscope".into());
            }
        }
        if self.chance(0.3) {
            self.out
                .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
            if self.chance(0.5) {
                self.out.push('\n');
            }
        }
        if !self.want_target {
            self.misc();
        }
        // Retry the tree until a target landed (the RNG decides where).
        let prolog = self.out.clone();
        loop {
            self.out.clone_from(&prolog);
            self.scope.clear();
            self.elements = 0;
            self.target_placed = false;
            self.element(0);
            if !self.want_target || self.target_placed {
                break;
            }
        }
        if !self.want_target {
            self.misc();
        }
        Case {
            xml: self.out,
            id: self.want_target.then(|| "target".to_string()),
            with_comments,
            prefixes,
        }
    }

    /// Comments, PIs and white space outside the root element.
    fn misc(&mut self) {
        for _ in 0..self.rng.random_range(0..3) {
            match self.rng.random_range(0..3) {
                0 => self.comment(),
                1 => self.pi(),
                _ => {
                    let ws = if self.chance(0.5) { "\n" } else { "  \r\n" };
                    self.out.push_str(ws);
                }
            }
        }
    }

    fn lookup(&self, prefix: Option<&str>) -> Option<&str> {
        self.scope
            .iter()
            .rev()
            .find(|(p, _)| p.as_deref() == prefix)
            .map(|(_, u)| u.as_str())
            .filter(|u| !u.is_empty())
    }

    /// Expanded namespace URI of a URI as written (the parser expands the references).
    fn expanded(uri: &str) -> String {
        uri.replace("&amp;", "&")
    }

    fn element(&mut self, depth: usize) {
        self.elements += 1;
        let mark = self.scope.len();

        // Declarations first, so the name can use them.
        let mut decls = String::new();
        let mut declared: Vec<Option<&str>> = Vec::new();
        for _ in 0..self.rng.random_range(0..3) {
            if self.chance(0.3) {
                if declared.contains(&None) {
                    continue;
                }
                declared.push(None);
                let uri = if self.chance(0.3) {
                    ""
                } else {
                    self.pick(URIS)
                };
                write!(decls, "{}xmlns=\"{uri}\"", self.space()).expect("write");
                self.scope.push((None, Self::expanded(uri)));
            } else {
                let p = self.pick(PREFIXES);
                if declared.contains(&Some(p)) {
                    continue;
                }
                declared.push(Some(p));
                // Redeclare with the same URI now and then.
                let same = self.chance(0.3);
                let current = self.lookup(Some(p)).map(str::to_string);
                let uri = match current {
                    Some(cur) if same => URIS
                        .iter()
                        .find(|u| Self::expanded(u) == cur)
                        .copied()
                        .unwrap_or("urn:a"),
                    _ => self.pick(URIS),
                };
                write!(decls, "{}xmlns:{p}=\"{uri}\"", self.space()).expect("write");
                self.scope.push((Some(p.to_string()), Self::expanded(uri)));
            }
        }

        let in_scope: Vec<String> = PREFIXES
            .iter()
            .filter(|p| self.lookup(Some(p)).is_some())
            .map(|p| p.to_string())
            .collect();
        let local = self.pick(LOCALS);
        let name = if !in_scope.is_empty() && self.chance(0.6) {
            format!(
                "{}:{local}",
                in_scope[self.rng.random_range(0..in_scope.len())]
            )
        } else {
            local.to_string()
        };

        // Attributes: unique by expanded name.
        let mut attrs = String::new();
        let mut seen: Vec<(String, String)> = Vec::new();
        if self.want_target && !self.target_placed && depth > 0 && self.chance(0.25) {
            self.target_placed = true;
            seen.push((String::new(), "Id".into()));
            write!(attrs, "{}Id=\"target\"", self.space()).expect("write");
        }
        for _ in 0..self.rng.random_range(0..5) {
            let (qname, key) = match self.rng.random_range(0..6) {
                0 => {
                    let local = self.pick(&["lang", "space", "base"]);
                    (
                        format!("xml:{local}"),
                        ("xml".to_string(), local.to_string()),
                    )
                }
                1 | 2 if !in_scope.is_empty() => {
                    let p = &in_scope[self.rng.random_range(0..in_scope.len())];
                    let local = self.pick(ATTR_LOCALS);
                    let uri = self.lookup(Some(p)).unwrap_or_default().to_string();
                    (format!("{p}:{local}"), (uri, local.to_string()))
                }
                _ => {
                    let local = self.pick(ATTR_LOCALS);
                    (local.to_string(), (String::new(), local.to_string()))
                }
            };
            if seen.contains(&key) {
                continue;
            }
            let value = if qname == "xml:space" {
                self.pick(&["preserve", "default"]).to_string()
            } else {
                self.attr_value()
            };
            seen.push(key);
            let q = if self.chance(0.2) { '\'' } else { '"' };
            let value = if q == '\'' {
                value.replace('\'', "&apos;")
            } else {
                value.replace('"', "&quot;")
            };
            write!(
                attrs,
                "{}{qname}{}={}{q}{value}{q}",
                self.space(),
                self.ws(),
                self.ws()
            )
            .expect("write");
        }

        // Attributes and declarations interleave in any order in the start tag.
        let start = if self.chance(0.5) {
            format!("{decls}{attrs}")
        } else {
            format!("{attrs}{decls}")
        };
        let ws = self.ws();
        write!(self.out, "<{name}{start}{ws}").expect("write");
        let n_children = if depth >= 5 || self.elements > 40 {
            0
        } else {
            self.rng.random_range(0..5)
        };
        if n_children == 0 && self.chance(0.5) {
            self.out.push_str("/>");
        } else {
            self.out.push('>');
            for _ in 0..n_children {
                match self.rng.random_range(0..10) {
                    0..=3 => self.element(depth + 1),
                    4..=6 => self.text(),
                    7 => self.cdata(),
                    8 => self.comment(),
                    _ => self.pi(),
                }
            }
            let ws = self.ws();
            write!(self.out, "</{name}{ws}>").expect("write");
        }
        self.scope.truncate(mark);
    }

    fn space(&mut self) -> &'static str {
        self.pick(&[" ", " ", "  ", "\n\t", "\r\n "])
    }

    fn ws(&mut self) -> &'static str {
        if self.chance(0.8) {
            ""
        } else {
            self.space()
        }
    }

    fn attr_value(&mut self) -> String {
        let mut v = String::new();
        for _ in 0..self.rng.random_range(0..5) {
            v.push_str(self.pick(ATTR_BITS));
        }
        v
    }

    fn text(&mut self) {
        let mut t = String::new();
        for _ in 0..self.rng.random_range(1..6) {
            t.push_str(self.pick(TEXT_BITS));
        }
        // `]]>` must not appear in character data (XML 1.0 §2.4), also not across two
        // adjacent text pieces.
        let mut t = t.replace("]>", "]&gt;");
        if self.out.ends_with(']') && t.starts_with('>') {
            t.replace_range(..1, "&gt;");
        }
        self.out.push_str(&t);
    }

    fn cdata(&mut self) {
        let body = self.pick(&["", "<&>", "a]]b", "]", "x\r\ny", "&amp;", "é\t", "\"'"]);
        write!(self.out, "<![CDATA[{body}]]>").expect("write");
    }

    fn comment(&mut self) {
        let body = self.pick(&["", " c ", "-x", "a-b", "\r\n", "<&>", "é 😀", " - "]);
        write!(self.out, "<!--{body}-->").expect("write");
    }

    fn pi(&mut self) {
        let target = self.pick(&["pi", "x-y", "app.1", "é"]);
        let data = self.pick(&["", " ", " data", "  a=\"1\" ", "\r\n x", " <&>", " ?x"]);
        write!(self.out, "<?{target}{data}?>").expect("write");
    }
}
