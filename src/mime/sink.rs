//! Ready-made consumers of a [`MimeReader`]: everything in memory, or payloads spooled to files.

use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

use super::reader::{MimeReader, Part, PartHeaders, RootPart};
use super::MimeError;

/// A payload part held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedPart {
    pub headers: PartHeaders,
    pub body: Bytes,
}

/// A whole message in memory (tests, small messages): root plus payloads in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedMessage {
    pub root: RootPart,
    pub payloads: Vec<CollectedPart>,
}

impl CollectedMessage {
    /// The payload part with this Content-ID (without angle brackets, as in `cid:` URIs).
    pub fn payload(&self, content_id: &str) -> Option<&CollectedPart> {
        self.payloads
            .iter()
            .find(|p| p.headers.content_id.as_deref() == Some(content_id))
    }
}

/// Reads the whole message into memory. Bounded only by the reader's [`super::MimeLimits`], so
/// use it where those are small or the input is trusted.
pub async fn collect(reader: &mut MimeReader<'_>) -> Result<CollectedMessage, MimeError> {
    let mut root = None;
    let mut payloads = Vec::new();
    while let Some(part) = reader.next_part().await? {
        match part {
            Part::Root(r) => root = Some(r),
            Part::Payload(mut p) => {
                let mut body = BytesMut::new();
                while let Some(chunk) = p.chunk().await? {
                    body.extend_from_slice(&chunk);
                }
                payloads.push(CollectedPart {
                    headers: p.headers,
                    body: body.freeze(),
                });
            }
        }
    }
    // next_part only ends cleanly once the root has been seen.
    let root = root.ok_or(MimeError::NoParts)?;
    Ok(CollectedMessage { root, payloads })
}

/// A payload part written to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledPart {
    pub headers: PartHeaders,
    /// `dir/part-NNNN.bin`, `NNNN` the wire index of the part.
    pub path: PathBuf,
    /// Decoded size in bytes.
    pub size: u64,
    /// SHA-256 of the decoded content.
    pub sha256: [u8; 32],
    /// The content, when [`spool_scratch`] kept the part in memory (then `path` was never
    /// created).
    pub data: Option<Bytes>,
}

/// The root in memory and every payload in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledMessage {
    pub root: RootPart,
    pub payloads: Vec<SpooledPart>,
}

fn spool_err(path: &Path, e: std::io::Error) -> MimeError {
    MimeError::Spool {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Streams every payload part into its own new file under `dir` (created if missing), hashing on
/// the way, and syncs each file and then the directory before returning, so the caller may record
/// the files as durable (architecture: payload files are synced before the row that points to them).
///
/// On any error the files written so far are removed. Existing files are never overwritten.
pub async fn spool_to_dir(
    reader: &mut MimeReader<'_>,
    dir: &Path,
) -> Result<SpooledMessage, MimeError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| spool_err(dir, e))?;
    let mut written: Vec<SpooledPart> = Vec::new();
    let mut current: Option<PathBuf> = None;
    let result = spool_inner(reader, dir, &mut written, &mut current).await;
    match result {
        Ok(root) => {
            sync_dir(dir).await?;
            Ok(SpooledMessage {
                root,
                payloads: written,
            })
        }
        Err(e) => {
            for p in written.iter().map(|w| &w.path).chain(current.as_ref()) {
                // Best effort: the error being returned is the one that matters.
                let _ = tokio::fs::remove_file(p).await;
            }
            Err(e)
        }
    }
}

async fn spool_inner(
    reader: &mut MimeReader<'_>,
    dir: &Path,
    written: &mut Vec<SpooledPart>,
    current: &mut Option<PathBuf>,
) -> Result<RootPart, MimeError> {
    let mut root = None;
    while let Some(part) = reader.next_part().await? {
        let mut p = match part {
            Part::Root(r) => {
                root = Some(r);
                continue;
            }
            Part::Payload(p) => p,
        };
        let path = dir.join(format!("part-{:04}.bin", p.headers.index));
        *current = Some(path.clone());
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| spool_err(&path, e))?;
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut size = 0u64;
        while let Some(chunk) = p.chunk().await? {
            ctx.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| spool_err(&path, e))?;
        }
        file.flush().await.map_err(|e| spool_err(&path, e))?;
        file.sync_all().await.map_err(|e| spool_err(&path, e))?;
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(ctx.finish().as_ref());
        *current = None;
        written.push(SpooledPart {
            headers: p.headers,
            path,
            size,
            sha256,
            data: None,
        });
    }
    root.ok_or(MimeError::NoParts)
}

/// Like [`spool_to_dir`] for a *scratch* copy that the caller copies elsewhere (durably) or
/// drops: parts of at most `memory_max` decoded bytes stay in memory (`data`), larger ones go to
/// files under `dir` (created only then) without any fsync — syncing bytes that are deleted a
/// moment later cost the inbound path three fsyncs per message (issue 8).
///
/// On any error the files written so far are removed.
pub async fn spool_scratch(
    reader: &mut MimeReader<'_>,
    dir: &Path,
    memory_max: u64,
) -> Result<SpooledMessage, MimeError> {
    let mut written: Vec<SpooledPart> = Vec::new();
    let mut current: Option<PathBuf> = None;
    let result = scratch_inner(reader, dir, memory_max, &mut written, &mut current).await;
    match result {
        Ok(root) => Ok(SpooledMessage {
            root,
            payloads: written,
        }),
        Err(e) => {
            let files = written.iter().filter(|w| w.data.is_none()).map(|w| &w.path);
            for p in files.chain(current.as_ref()) {
                let _ = tokio::fs::remove_file(p).await;
            }
            Err(e)
        }
    }
}

async fn scratch_inner(
    reader: &mut MimeReader<'_>,
    dir: &Path,
    memory_max: u64,
    written: &mut Vec<SpooledPart>,
    current: &mut Option<PathBuf>,
) -> Result<RootPart, MimeError> {
    let mut root = None;
    while let Some(part) = reader.next_part().await? {
        let mut p = match part {
            Part::Root(r) => {
                root = Some(r);
                continue;
            }
            Part::Payload(p) => p,
        };
        let path = dir.join(format!("part-{:04}.bin", p.headers.index));
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut size = 0u64;
        let mut mem = BytesMut::new();
        let mut file: Option<tokio::fs::File> = None;
        while let Some(chunk) = p.chunk().await? {
            ctx.update(&chunk);
            size += chunk.len() as u64;
            if file.is_none() && size > memory_max {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| spool_err(dir, e))?;
                *current = Some(path.clone());
                let mut f = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .await
                    .map_err(|e| spool_err(&path, e))?;
                f.write_all(&mem).await.map_err(|e| spool_err(&path, e))?;
                mem = BytesMut::new();
                file = Some(f);
            }
            match file.as_mut() {
                Some(f) => f.write_all(&chunk).await.map_err(|e| spool_err(&path, e))?,
                None => mem.extend_from_slice(&chunk),
            }
        }
        let data = match file {
            Some(mut f) => {
                f.flush().await.map_err(|e| spool_err(&path, e))?;
                None
            }
            None => Some(mem.freeze()),
        };
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(ctx.finish().as_ref());
        *current = None;
        written.push(SpooledPart {
            headers: p.headers,
            path,
            size,
            sha256,
            data,
        });
    }
    root.ok_or(MimeError::NoParts)
}

/// Makes the new directory entries durable (POSIX: fsync on the directory).
async fn sync_dir(dir: &Path) -> Result<(), MimeError> {
    let d = tokio::fs::File::open(dir)
        .await
        .map_err(|e| spool_err(dir, e))?;
    d.sync_all().await.map_err(|e| spool_err(dir, e))
}
