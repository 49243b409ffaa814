//! Payload and wire files next to the database.
//!
//! Bytes are streamed to a new file while their size and SHA-256 are computed, so a 1 GB
//! payload never sits in memory. The file and then its directory are fsynced before a
//! [`FileRef`] is handed out; since only the spool can make a `FileRef`, a committed row can
//! only point at bytes that are already durable. A crash between the file sync and the commit
//! leaves an unreferenced file (harmless; see `docs/store.md`), never a row without bytes.

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{Result, StoreError};

/// Read/write chunk: large enough for few syscalls, small enough to stay out of the way.
const CHUNK: usize = 256 * 1024;

/// A synced spool file: name (relative to the spool directory), size and SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct FileRef {
    name: String,
    size: u64,
    sha256: [u8; 32],
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
    /// File name inside the spool directory.
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
        Ok(FileRef { name, size, sha256 })
    }
}

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Create (if needed) and sync the spool directory.
    pub(crate) fn open(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)?;
        sync_dir(&dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(Spool { dir })
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
            Ok((size, sha256)) => Ok(FileRef { name, size, sha256 }),
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
            Ok((size, sha256)) => Ok(FileRef { name, size, sha256 }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Spool a byte slice (wire bytes, small payloads).
    pub async fn write_bytes(&self, bytes: &[u8]) -> Result<FileRef> {
        self.write_stream(bytes, u64::MAX).await
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
