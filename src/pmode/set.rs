//! Loading a directory of P-Mode files into one validated [`PModeSet`].
//!
//! Each file is checked on its own (shape, then semantics and profile) and then the set as a
//! whole (unique ids, no two legs that would match the same inbound message, backends that
//! exist). All problems of all files are collected: the operator fixes them in one go.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;

use super::diag::{from_toml_error, Diagnostic, Diagnostics, Locator};
use super::model::{PMode, RawPMode, RawPModeFile};

/// The P-Modes in force: an immutable snapshot, shared with `Arc` by messages in flight.
#[derive(Debug, Default, Clone)]
pub struct PModeSet {
    pmodes: Vec<Arc<PMode>>,
}

/// What the set checks need from the gateway configuration.
#[derive(Debug, Clone, Default)]
pub struct SetContext {
    /// Names of the configured backends; `None` skips the backend check (P-Modes alone).
    pub backends: Option<Vec<String>>,
}

/// The fields that select a P-Mode leg (digest §2.3): the same key inbound matching uses, so
/// the ambiguity check and the matcher cannot disagree on what "the same messages" means.
pub(crate) type SelectionKey = super::matching::MessageKey;

impl PModeSet {
    /// An already validated list (tests, programmatic use). Set-level checks are not re-run.
    pub fn from_pmodes(pmodes: Vec<PMode>) -> Self {
        PModeSet {
            pmodes: pmodes.into_iter().map(Arc::new).collect(),
        }
    }

    pub fn pmodes(&self) -> &[Arc<PMode>] {
        &self.pmodes
    }

    pub fn get(&self, id: &str) -> Option<&Arc<PMode>> {
        self.pmodes.iter().find(|p| p.id == id)
    }

    pub fn len(&self) -> usize {
        self.pmodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pmodes.is_empty()
    }

    /// Loads every `*.toml` file directly in `dir` (sorted by name; subdirectories are not
    /// read, so examples can live next to the live set) and validates the set at `now`.
    pub fn load_dir(
        dir: &Path,
        ctx: &SetContext,
        now: OffsetDateTime,
    ) -> Result<PModeSet, Diagnostics> {
        let files = list_toml_files(dir).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: dir.to_path_buf(),
                line: 1,
                message: format!("cannot read P-Mode directory: {e}"),
            }])
        })?;
        Self::load_files(&files, ctx, now)
    }

    /// Loads and validates the given files as one set.
    pub fn load_files(
        files: &[PathBuf],
        ctx: &SetContext,
        now: OffsetDateTime,
    ) -> Result<PModeSet, Diagnostics> {
        let mut diags = Vec::new();
        let mut loaded: Vec<(PMode, Locator)> = Vec::new();
        for f in files {
            match load_file(f, now) {
                Ok(p) => loaded.push(p),
                Err(mut d) => diags.append(&mut d),
            }
        }
        check_set(&loaded, ctx, &mut diags);
        if diags.is_empty() {
            Ok(PModeSet {
                pmodes: loaded.into_iter().map(|(p, _)| Arc::new(p)).collect(),
            })
        } else {
            Err(Diagnostics(diags))
        }
    }
}

/// `*.toml` files directly in `dir`, sorted.
pub fn list_toml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_file() && p.extension().is_some_and(|x| x == "toml") {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads one P-Mode file (shape and per-file checks).
pub fn load_file(file: &Path, now: OffsetDateTime) -> Result<(PMode, Locator), Vec<Diagnostic>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            message: format!("cannot read: {e}"),
        }]
    })?;
    let raw: RawPMode =
        toml::from_str(&text).map_err(|e| vec![from_toml_error(file, &text, &e)])?;
    let locator = Locator::new(&text);
    let pmode = PMode::try_from(RawPModeFile {
        raw,
        file,
        locator: &locator,
        now,
    })?;
    Ok((pmode, locator))
}

pub(crate) fn selection_keys(p: &PMode) -> impl Iterator<Item = (usize, SelectionKey)> + '_ {
    p.legs.iter().enumerate().map(move |(i, leg)| {
        let (s, r) = p.sender_receiver(leg);
        (
            i,
            SelectionKey {
                from: s.party_id.clone(),
                from_role: s.role.clone(),
                to: r.party_id.clone(),
                to_role: r.role.clone(),
                service: p.service.clone(),
                action: leg.action.clone(),
                agreement: p.agreement.clone(),
            },
        )
    })
}

fn check_set(loaded: &[(PMode, Locator)], ctx: &SetContext, diags: &mut Vec<Diagnostic>) {
    let mut ids: HashMap<&str, &Path> = HashMap::new();
    let mut keys: HashMap<SelectionKey, (&PMode, usize)> = HashMap::new();
    for (p, loc) in loaded {
        let at = |path: &str, message: String| Diagnostic {
            file: p.file.clone(),
            line: loc.line(path),
            message,
        };
        if let Some(first) = ids.get(p.id.as_str()) {
            diags.push(at(
                "id",
                format!(
                    "duplicate P-Mode id {:?} (also in {})",
                    p.id,
                    first.display()
                ),
            ));
        } else {
            ids.insert(&p.id, &p.file);
        }
        for (i, key) in selection_keys(p) {
            if let Some((other, j)) = keys.get(&key) {
                diags.push(at(
                    &format!("leg.{i}.action"),
                    format!(
                        "leg {:?} of P-Mode {:?} matches the same messages as leg {:?} of P-Mode {:?} ({}): From/To party and role, service, action and agreement must differ (digest §2.3)",
                        p.legs[i].name,
                        p.id,
                        other.legs[*j].name,
                        other.id,
                        other.file.display()
                    ),
                ));
            } else {
                keys.insert(key, (p, i));
            }
        }
        if let (Some(b), Some(names)) = (&p.backend, &ctx.backends) {
            if !names.iter().any(|n| n == b) {
                diags.push(at(
                    "backend",
                    format!(
                        "backend {b:?} is not configured (known: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
}
