//! Payload and wire files next to the database.
//!
//! Bytes are streamed to a new file while their size and SHA-256 are computed, so a 1 GB
//! payload never sits in memory. The file and then its directory are fsynced before a
//! [`FileRef`] is handed out; since only the spool can make a `FileRef`, a committed row can
//! only point at bytes that are already durable. A crash between the file sync and the commit
//! leaves an unreferenced file (harmless; see `docs/store.md`), never a row without bytes.
//!
//! Small contents (at most [`Spool::inline_max`] bytes, `[store] inline-max`) can instead stay
//! *inline*: the [`FileRef`] carries the bytes and the store writes them into the same SQLite
//! transaction as the row that refers to them, so they are durable exactly when that row is
//! (WAL commit, `synchronous=FULL`). A small message then costs no file creation and no file
//! or directory fsync — those dominated the profile of issue 8. Only the `put_*` methods
//! inline; the `write_*` methods always make a file (for callers that need a path).

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{Result, StoreError};

/// Read/write chunk: large enough for few syscalls, small enough to stay out of the way.
const CHUNK: usize = 256 * 1024;

/// Default of `[store] inline-max`: contents up to this size live in the database.
pub const DEFAULT_INLINE_MAX: u64 = 64 * 1024;

/// The stored name of inline contents (not a spool file name: those end in `.bin`).
pub(crate) const INLINE_NAME: &str = "inline";

/// Synced spooled bytes: a spool file (name relative to the spool directory) or, for small
/// contents, the bytes themselves (inline, made durable by the commit of the row); size and
/// SHA-256 either way.
#[derive(Clone, PartialEq, Eq)]
pub struct FileRef {
    name: String,
    size: u64,
    sha256: [u8; 32],
    inline: Option<bytes::Bytes>,
}

impl fmt::Debug for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FileRef({}, {} bytes, sha256 {})",
            self.name,
            self.size,
            self.sha256_hex()
        )
    }
}

impl FileRef {
    /// The bytes, when they are inline (no spool file exists for them).
    pub fn inline_bytes(&self) -> Option<&[u8]> {
        self.inline.as_deref()
    }

    /// The inline bytes as a shared buffer (a reference count, no copy).
    pub fn inline_shared(&self) -> Option<bytes::Bytes> {
        self.inline.clone()
    }

    /// Whether the bytes are inline rather than in a spool file.
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// Inline contents as loaded from the database; size and hash are checked against the
    /// bytes so a damaged row is reported instead of served.
    pub(crate) fn from_stored_inline(size: i64, sha256: &[u8], data: Vec<u8>) -> Result<Self> {
        let mut f = Self::from_stored(INLINE_NAME.to_string(), size, sha256)?;
        if data.len() as u64 != f.size {
            return Err(StoreError::Corrupt(format!(
                "inline content has {} bytes, {} recorded",
                data.len(),
                f.size
            )));
        }
        f.inline = Some(bytes::Bytes::from(data));
        Ok(f)
    }

    fn new_inline(data: Vec<u8>) -> Self {
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest::digest(&digest::SHA256, &data).as_ref());
        FileRef {
            name: INLINE_NAME.to_string(),
            size: data.len() as u64,
            sha256,
            inline: Some(bytes::Bytes::from(data)),
        }
    }

    /// File name inside the spool directory (`inline` for inline contents).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// SHA-256 of the content.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }
    /// SHA-256 as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// Rebuild from stored columns. The name is checked so that a tampered database cannot
    /// make the gateway read or delete files outside the spool.
    pub(crate) fn from_stored(name: String, size: i64, sha256: &[u8]) -> Result<Self> {
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !name.starts_with('.');
        let size =
            u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("file size {size}")))?;
        let sha256: [u8; 32] = sha256.try_into().map_err(|_| {
            StoreError::Corrupt(format!("sha256 of {name} has {} bytes", sha256.len()))
        })?;
        if !name_ok {
            return Err(StoreError::Corrupt(format!("spool file name {name:?}")));
        }
        Ok(FileRef {
            name,
            size,
            sha256,
            inline: None,
        })
    }
}

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    inline_max: u64,
}

impl Spool {
    /// Create (if needed) and sync the spool directory.
    pub(crate) fn open(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)?;
        sync_dir(&dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(Spool {
            dir,
            inline_max: DEFAULT_INLINE_MAX,
        })
    }

    /// Keep contents up to `max` bytes inline (0: never).
    pub(crate) fn set_inline_max(&mut self, max: u64) {
        self.inline_max = max;
    }

    /// Largest content the `put_*` methods keep inline.
    pub fn inline_max(&self) -> u64 {
        self.inline_max
    }

    /// The directory (for backups).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Full path of a spooled file.
    pub fn path(&self, f: &FileRef) -> PathBuf {
        self.dir.join(&f.name)
    }

    /// Stream `reader` into a new spool file, at most `max_size` bytes; returns once file and
    /// directory are synced. On any error the partial file is removed.
    pub async fn write_stream<R>(&self, reader: R, max_size: u64) -> Result<FileRef>
    where
        R: AsyncRead + Unpin + Send,
    {
        let name = format!("{}.bin", uuid::Uuid::new_v4().simple());
        let path = self.dir.join(&name);
        match self.write_new(&path, reader, max_size).await {
            Ok((size, sha256)) => Ok(FileRef {
                name,
                size,
                sha256,
                inline: None,
            }),
            Err(e) => {
                // Best effort: an orphan file is harmless, the error is what matters.
                let _ = tokio::fs::remove_file(&path).await;
                Err(e)
            }
        }
    }

    /// Blocking twin of [`Spool::write_stream`] for a `std::io::Read` (gzip/gunzip and
    /// decryption streams, run on a blocking thread). Same guarantees: at most `max_size`
    /// bytes, file and directory synced before the `FileRef` exists, partial file removed on
    /// error (a reader's error comes back as `StoreError::Io` with the reader's error inside).
    pub fn write_sync<R: std::io::Read>(&self, mut reader: R, max_size: u64) -> Result<FileRef> {
        use std::io::Write;
        let name = format!("{}.bin", uuid::Uuid::new_v4().simple());
        let path = self.dir.join(&name);
        let mut inner = || -> Result<(u64, [u8; 32])> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            let mut ctx = digest::Context::new(&digest::SHA256);
            let mut buf = vec![0u8; CHUNK];
            let mut size: u64 = 0;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                size += n as u64;
                if size > max_size {
                    return Err(StoreError::TooLarge(max_size));
                }
                ctx.update(&buf[..n]);
                file.write_all(&buf[..n])?;
            }
            file.sync_all()?;
            drop(file);
            sync_dir(&self.dir)?;
            let mut sha256 = [0u8; 32];
            sha256.copy_from_slice(ctx.finish().as_ref());
            Ok((size, sha256))
        };
        match inner() {
            Ok((size, sha256)) => Ok(FileRef {
                name,
                size,
                sha256,
                inline: None,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Spool a byte slice into a file (always a file; see [`Spool::put_bytes`]).
    pub async fn write_bytes(&self, bytes: &[u8]) -> Result<FileRef> {
        self.write_stream(bytes, u64::MAX).await
    }

    /// Spool a byte slice: inline when it is at most [`Spool::inline_max`] bytes, else a
    /// synced file.
    pub async fn put_bytes(&self, bytes: &[u8]) -> Result<FileRef> {
        if bytes.len() as u64 <= self.inline_max {
            Ok(FileRef::new_inline(bytes.to_vec()))
        } else {
            self.write_bytes(bytes).await
        }
    }

    /// [`Spool::write_stream`], but contents of at most [`Spool::inline_max`] bytes stay
    /// inline. Only the first `inline_max + 1` bytes are buffered before deciding.
    pub async fn put_stream<R>(&self, mut reader: R, max_size: u64) -> Result<FileRef>
    where
        R: AsyncRead + Unpin + Send,
    {
        let limit = self.inline_max.min(max_size);
        let mut head = Vec::new();
        (&mut reader)
            .take(limit.saturating_add(1))
            .read_to_end(&mut head)
            .await?;
        if head.len() as u64 <= limit {
            return Ok(FileRef::new_inline(head));
        }
        let rest = AsyncReadExt::chain(std::io::Cursor::new(head), reader);
        self.write_stream(rest, max_size).await
    }

    /// Blocking twin of [`Spool::put_stream`].
    pub fn put_sync<R: std::io::Read>(&self, mut reader: R, max_size: u64) -> Result<FileRef> {
        use std::io::Read;
        let limit = self.inline_max.min(max_size);
        let mut head = Vec::new();
        Read::take(&mut reader, limit.saturating_add(1)).read_to_end(&mut head)?;
        if head.len() as u64 <= limit {
            return Ok(FileRef::new_inline(head));
        }
        self.write_sync(Read::chain(std::io::Cursor::new(head), reader), max_size)
    }

    /// Open spooled content for streaming, file or inline.
    pub async fn open_reader(&self, f: &FileRef) -> Result<SpoolReader> {
        Ok(match &f.inline {
            Some(b) => SpoolReader::Inline(std::io::Cursor::new(b.clone())),
            None => SpoolReader::File(self.open_file(f).await?),
        })
    }

    /// Blocking reader over spooled content, file or inline.
    pub fn open_sync(&self, f: &FileRef) -> Result<Box<dyn std::io::Read + Send>> {
        Ok(match &f.inline {
            Some(b) => Box::new(std::io::Cursor::new(b.clone())),
            None => Box::new(std::fs::File::open(self.path(f))?),
        })
    }

    /// The whole content in memory (small contents, tests).
    pub async fn read_all(&self, f: &FileRef) -> Result<bytes::Bytes> {
        Ok(match &f.inline {
            Some(b) => b.clone(),
            None => bytes::Bytes::from(tokio::fs::read(self.path(f)).await?),
        })
    }

    /// Drop spooled content that no committed row refers to (a refused submission): removes
    /// the file; inline content has nothing on disk.
    pub async fn discard(&self, f: &FileRef) -> std::io::Result<()> {
        if f.is_inline() {
            return Ok(());
        }
        match tokio::fs::remove_file(self.path(f)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    async fn write_new<R>(
        &self,
        path: &Path,
        mut reader: R,
        max_size: u64,
    ) -> Result<(u64, [u8; 32])>
    where
        R: AsyncRead + Unpin + Send,
    {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .await?;
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut buf = vec![0u8; CHUNK];
        let mut size: u64 = 0;
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > max_size {
                return Err(StoreError::TooLarge(max_size));
            }
            ctx.update(&buf[..n]);
            file.write_all(&buf[..n]).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || sync_dir(&dir))
            .await
            .map_err(|_| StoreError::Closed)??;
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(ctx.finish().as_ref());
        Ok((size, sha256))
    }

    /// Open a spooled file for streaming.
    pub async fn open_file(&self, f: &FileRef) -> Result<tokio::fs::File> {
        Ok(tokio::fs::File::open(self.path(f)).await?)
    }

    /// Re-read a file and check size and SHA-256 (integrity checks, backups, tests).
    pub async fn verify(&self, f: &FileRef) -> Result<bool> {
        if let Some(b) = &f.inline {
            return Ok(b.len() as u64 == f.size
                && digest::digest(&digest::SHA256, b).as_ref() == f.sha256.as_slice());
        }
        let mut file = match tokio::fs::File::open(self.path(f)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            size += n as u64;
            ctx.update(&buf[..n]);
        }
        Ok(size == f.size && ctx.finish().as_ref() == f.sha256.as_slice())
    }

    /// Remove files (after the commit that dropped their rows); missing files are fine.
    pub(crate) fn remove_files(&self, names: &[String]) -> Result<u64> {
        let mut removed = 0;
        for name in names {
            match std::fs::remove_file(self.dir.join(name)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

/// fsync a directory so that a file's creation (its directory entry) survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A reader over spooled content: a spool file or inline bytes.
#[derive(Debug)]
pub enum SpoolReader {
    File(tokio::fs::File),
    Inline(std::io::Cursor<bytes::Bytes>),
}

impl AsyncRead for SpoolReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            SpoolReader::File(f) => std::pin::Pin::new(f).poll_read(cx, buf),
            SpoolReader::Inline(c) => std::pin::Pin::new(c).poll_read(cx, buf),
        }
    }
}
