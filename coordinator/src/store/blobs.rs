//! Blob records. The bytes are in [`super::BlobFiles`]; a record names its file.

use sled::Transactional;
use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{abort, add_ref, encode, next_id, ref_count, tx_get, StagedFile, Store, StoreError};
use crate::model::{Blob, Timestamp};

/// A blob record as stored: what the API shows plus the name of its file on disk.
#[derive(Debug, Serialize, Deserialize)]
struct StoredBlob {
    #[serde(flatten)]
    blob: Blob,
    file: String,
}

/// New content for a blob: a staged upload and what the client said about it.
#[derive(Debug)]
pub struct NewBlobContent {
    /// Sanitized file name.
    pub filename: String,
    /// Media type.
    pub content_type: String,
    /// The bytes, already on disk and hashed.
    pub staged: StagedFile,
}

impl Store {
    /// Stores a new blob and returns its record.
    pub fn create_blob(&self, content: NewBlobContent) -> Result<Blob, StoreError> {
        let (size, sha256) = (content.staged.size, content.staged.sha256.clone());
        let file = self.files.commit(content.staged)?;
        let now = Timestamp::now();
        let result = (&self.meta, &self.blobs).transaction(|(meta, blobs)| {
            let blob = Blob {
                id: next_id(meta, "seq/blobs")?,
                filename: content.filename.clone(),
                size,
                sha256: sha256.clone(),
                content_type: content.content_type.clone(),
                created_at: now,
                updated_at: now,
            };
            let stored = StoredBlob {
                blob: blob.clone(),
                file: file.clone(),
            };
            blobs.insert(&blob.id.to_be_bytes(), encode(&stored))?;
            Ok(blob)
        });
        if result.is_err() {
            self.files.remove(&file);
        }
        Ok(result?)
    }

    /// Replaces the content of blob `id`; its id stays. The old file is deleted afterwards.
    pub fn replace_blob(&self, id: u64, content: NewBlobContent) -> Result<Blob, StoreError> {
        let (size, sha256) = (content.staged.size, content.staged.sha256.clone());
        let file = self.files.commit(content.staged)?;
        let result = self.blobs.transaction(|blobs| {
            let Some(mut stored) = tx_get::<StoredBlob>(blobs, "blobs", &id.to_be_bytes())? else {
                return abort(StoreError::not_found("blob", id));
            };
            let old_file = std::mem::replace(&mut stored.file, file.clone());
            stored.blob.filename = content.filename.clone();
            stored.blob.content_type = content.content_type.clone();
            stored.blob.size = size;
            stored.blob.sha256 = sha256.clone();
            stored.blob.updated_at = Timestamp::now();
            blobs.insert(&id.to_be_bytes(), encode(&stored))?;
            Ok((stored.blob, old_file))
        });
        match result {
            Ok((blob, old_file)) => {
                self.files.remove(&old_file);
                Ok(blob)
            }
            Err(e) => {
                self.files.remove(&file);
                Err(e.into())
            }
        }
    }

    /// Blob `id` and the path of its bytes.
    pub fn blob(&self, id: u64) -> Result<Option<(Blob, PathBuf)>, StoreError> {
        let stored: Option<StoredBlob> = super::get(&self.blobs, "blobs", &id.to_be_bytes())?;
        Ok(stored.map(|s| {
            let path = self.files.path(&s.file);
            (s.blob, path)
        }))
    }

    /// Deletes blob `id`, refusing while a plan or job uses it.
    pub fn delete_blob(&self, id: u64) -> Result<Blob, StoreError> {
        let stored = (&self.blobs, &self.refs).transaction(|(blobs, refs)| {
            let Some(stored) = tx_get::<StoredBlob>(blobs, "blobs", &id.to_be_bytes())? else {
                return abort(StoreError::not_found("blob", id));
            };
            let users = ref_count(refs, &format!("blob/{id}"))?;
            if users > 0 {
                return abort(StoreError::Conflict(format!(
                    "blob {id} is used by {users} plan(s) or job(s); remove it from them first"
                )));
            }
            blobs.remove(&id.to_be_bytes())?;
            Ok(stored)
        })?;
        self.files.remove(&stored.file);
        Ok(stored.blob)
    }

    /// How many blobs are stored.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    pub(super) fn referenced_blob_files(&self) -> Result<HashSet<String>, StoreError> {
        self.blobs
            .iter()
            .values()
            .map(|v| Ok(super::decode::<StoredBlob>(&v?, "blobs")?.file))
            .collect()
    }
}

/// Checks inside a transaction that every value of `files` names an existing blob, and takes
/// one reference to each.
pub(super) fn check_and_count_blob_refs(
    blobs: &sled::transaction::TransactionalTree,
    refs: &sled::transaction::TransactionalTree,
    files: &crate::model::StringMap,
    field: &str,
) -> super::TxResult<()> {
    for (role, blob_id) in files {
        let Ok(id) = blob_id.parse::<u64>() else {
            return abort(StoreError::invalid(
                format!("{field}.{role}"),
                format!("{blob_id:?} is not a blob id"),
            ));
        };
        if blobs.get(id.to_be_bytes())?.is_none() {
            return abort(StoreError::invalid(
                format!("{field}.{role}"),
                format!("blob {id} does not exist"),
            ));
        }
        add_ref(refs, &format!("blob/{id}"), 1)?;
    }
    Ok(())
}

/// Releases one reference to each blob of `files` inside a transaction.
pub(super) fn release_blob_refs(
    refs: &sled::transaction::TransactionalTree,
    files: &crate::model::StringMap,
) -> super::TxResult<()> {
    for blob_id in files.values() {
        if let Ok(id) = blob_id.parse::<u64>() {
            add_ref(refs, &format!("blob/{id}"), -1)?;
        }
    }
    Ok(())
}
