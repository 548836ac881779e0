//! Blob bytes on disk.
//!
//! An upload is written to a temporary file in `blobs/tmp/`, hashed as it streams, synced, and
//! then renamed to a random name in `blobs/`; only after that does a record point at it. A crash
//! at any moment leaves either the old state or a file no record names, which
//! [`BlobFiles::sweep`] removes at the next start. Names on disk never come from the client, so
//! a hostile filename cannot escape the directory.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// The blob directory.
#[derive(Debug, Clone)]
pub struct BlobFiles {
    dir: PathBuf,
    tmp: PathBuf,
}

/// An upload that has been fully written and hashed but not yet given to a record. Dropping it
/// deletes the temporary file.
#[derive(Debug)]
pub struct StagedFile {
    path: tempfile::TempPath,
    /// Bytes written.
    pub size: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
}

/// Why staging an upload stopped.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The upload is larger than allowed.
    #[error("larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The client's stream failed.
    #[error("reading the upload: {0}")]
    Source(String),
    /// The disk failed.
    #[error("writing the upload: {0}")]
    Io(#[from] io::Error),
}

impl BlobFiles {
    /// Opens the blob directory, creating it and its `tmp/` if needed, and empties `tmp/`.
    pub fn open(dir: &Path) -> io::Result<BlobFiles> {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        Ok(BlobFiles {
            dir: dir.to_owned(),
            tmp,
        })
    }

    /// Where the blob file `name` lives.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Streams `chunks` into a temporary file, hashing as it goes, and refuses more than `limit`
    /// bytes. Memory use is one chunk, whatever the size.
    pub async fn stage<S, E>(&self, mut chunks: S, limit: u64) -> Result<StagedFile, StageError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt;
        let temp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&self.tmp)?;
        let (file, path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| StageError::Source(e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(StageError::TooLarge { limit });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok(StagedFile {
            path,
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Moves a staged upload to its final random name and returns that name.
    pub fn commit(&self, staged: StagedFile) -> io::Result<String> {
        let mut random = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut random);
        let name = hex::encode(random);
        staged
            .path
            .persist(self.dir.join(&name))
            .map_err(|e| e.error)?;
        // Make the rename itself durable before a record points at it.
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(name)
    }

    /// Deletes the blob file `name`. A file that is already gone is not an error.
    pub fn remove(&self, name: &str) {
        match std::fs::remove_file(self.path(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = name, error = %e, "could not delete blob file"),
        }
    }

    /// Deletes every file that is not in `referenced` and every leftover temporary file.
    pub fn sweep(&self, referenced: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for dir in [&self.dir, &self.tmp] {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if !entry.file_type()?.is_file() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if dir == &self.tmp || !referenced.contains(&name) {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        parts: &[&'static [u8]],
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, String>> + Unpin {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(bytes::Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn staging_hashes_and_commit_names_randomly() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(dir.path()).unwrap();
        let staged = files
            .stage(chunks(&[b"hello ", b"blob\n"]), 100)
            .await
            .unwrap();
        assert_eq!(staged.size, 11);
        assert_eq!(staged.sha256, hex::encode(Sha256::digest(b"hello blob\n")));
        let name = files.commit(staged).unwrap();
        assert_eq!(std::fs::read(files.path(&name)).unwrap(), b"hello blob\n");
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn oversized_upload_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(dir.path()).unwrap();
        let err = files
            .stage(chunks(&[b"0123456789", b"x"]), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, StageError::TooLarge { limit: 10 }));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn sweep_removes_unreferenced_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(dir.path()).unwrap();
        let keep = files
            .commit(files.stage(chunks(&[b"a"]), 10).await.unwrap())
            .unwrap();
        let orphan = files
            .commit(files.stage(chunks(&[b"b"]), 10).await.unwrap())
            .unwrap();
        std::fs::write(dir.path().join("tmp/upload-leftover"), b"partial").unwrap();
        let removed = files.sweep(&HashSet::from([keep.clone()])).unwrap();
        assert_eq!(removed, 2);
        assert!(files.path(&keep).exists());
        assert!(!files.path(&orphan).exists());
    }
}
