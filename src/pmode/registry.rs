//! Hot reload: the P-Mode set in force, swapped atomically.
//!
//! Readers take a cheap `Arc` snapshot ([`Registry::current`]) and keep it for the life of a
//! message, so a reload never changes the P-Mode of a message in flight. [`Registry::reload`]
//! validates the whole new set first and keeps the old one on any error: a typo in one file
//! must not take the gateway's agreements down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use super::diag::Diagnostics;
use super::set::{list_toml_files, PModeSet, SetContext};

/// The P-Mode set in force and where it is loaded from.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    ctx: SetContext,
    current: RwLock<Arc<PModeSet>>,
}

impl Registry {
    /// Loads `dir` once; fails if the initial set is invalid (there is nothing to fall back to).
    pub fn load(dir: &Path, ctx: SetContext, now: OffsetDateTime) -> Result<Registry, Diagnostics> {
        let set = PModeSet::load_dir(dir, &ctx, now)?;
        Ok(Registry {
            dir: dir.to_path_buf(),
            ctx,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// The set in force. Keep the `Arc` for as long as the message is processed.
    pub fn current(&self) -> Arc<PModeSet> {
        // A poisoned lock only means a writer panicked between two plain assignments; the
        // stored Arc is still a complete set.
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Validates the directory again and swaps the set in; on error logs every diagnostic,
    /// keeps the old set and returns the errors.
    pub fn reload(&self, now: OffsetDateTime) -> Result<Arc<PModeSet>, Diagnostics> {
        match PModeSet::load_dir(&self.dir, &self.ctx, now) {
            Ok(set) => {
                let set = Arc::new(set);
                match self.current.write() {
                    Ok(mut g) => *g = Arc::clone(&set),
                    Err(p) => *p.into_inner() = Arc::clone(&set),
                }
                tracing::info!(dir = %self.dir.display(), pmodes = set.len(), "P-Modes reloaded");
                Ok(set)
            }
            Err(d) => {
                for e in &d.0 {
                    tracing::error!(file = %e.file.display(), line = e.line, "P-Mode reload refused: {}", e.message);
                }
                tracing::warn!(dir = %self.dir.display(), "keeping the previous P-Mode set");
                Err(d)
            }
        }
    }

    /// A fingerprint of the directory: names and modification times of its `*.toml` files.
    fn fingerprint(&self) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
        list_toml_files(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(&p).ok();
                let mtime = m.as_ref().and_then(|m| m.modified().ok());
                let len = m.map(|m| m.len()).unwrap_or(0);
                (p, mtime, len)
            })
            .collect()
    }

    /// Starts the watcher: polls file names/mtimes/sizes every `period` (1 s in production)
    /// and listens for SIGHUP; either triggers [`Registry::reload`]. Runs until the task is
    /// aborted. The clock is read here, at the edge, and passed in.
    pub fn spawn_watcher(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        let reg = Arc::clone(self);
        tokio::spawn(async move {
            let mut last = reg.fingerprint();
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let by_signal = {
                    let sig = async {
                        match hup.as_mut() {
                            Some(h) => {
                                h.recv().await;
                            }
                            None => std::future::pending::<()>().await,
                        }
                    };
                    tokio::select! {
                        _ = tick.tick() => false,
                        _ = sig => true,
                    }
                };
                #[cfg(not(unix))]
                let by_signal = {
                    tick.tick().await;
                    false
                };
                let now_fp = reg.fingerprint();
                if by_signal || now_fp != last {
                    last = now_fp;
                    let _ = reg.reload(OffsetDateTime::now_utc());
                }
            }
        })
    }
}
