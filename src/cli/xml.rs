//! `as4gw xml …`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use as4gw::xml::{
    canonicalize_document, canonicalize_subtree, C14nAlgorithm, C14nOptions, Document,
};

#[derive(Subcommand)]
pub enum Command {
    /// Print the Exclusive XML Canonicalization 1.0 form of a document or of the element with an Id.
    C14n {
        /// Keep comments (xml-exc-c14n#WithComments).
        #[arg(long)]
        with_comments: bool,
        /// InclusiveNamespaces PrefixList, space separated ("#default" = default namespace).
        #[arg(long, default_value = "", conflicts_with = "inclusive")]
        inclusive_prefixes: String,
        /// Use inclusive Canonical XML 1.0 (REC-xml-c14n-20010315) instead of the exclusive form.
        #[arg(long)]
        inclusive: bool,
        /// Canonicalize only the element whose wsu:Id / Id / id / xml:id has this value.
        #[arg(long)]
        id: Option<String>,
        /// The XML file.
        file: PathBuf,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::C14n {
            with_comments,
            inclusive_prefixes,
            inclusive,
            id,
            file,
        } => {
            let mut opts = C14nOptions::with_prefix_list(&inclusive_prefixes);
            opts.with_comments = with_comments;
            if inclusive {
                opts.algorithm = C14nAlgorithm::Inclusive;
            }
            c14n(&opts, id.as_deref(), &file)
        }
    }
}

fn c14n(opts: &C14nOptions, id: Option<&str>, file: &Path) -> anyhow::Result<ExitCode> {
    use std::io::Write;

    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let doc = Document::parse(&bytes).with_context(|| format!("parsing {}", file.display()))?;
    let mut out = Vec::new();
    match id {
        None => canonicalize_document(&doc, opts, &mut out),
        Some(id) => {
            let found = doc.elements_by_id(id);
            match found.as_slice() {
                [one] => canonicalize_subtree(&doc, one.id(), opts, &mut out),
                [] => anyhow::bail!("no element with Id {id:?} in {}", file.display()),
                _ => anyhow::bail!(
                    "{} elements carry Id {id:?} in {}: ambiguous",
                    found.len(),
                    file.display()
                ),
            }
        }
    }
    std::io::stdout().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}
