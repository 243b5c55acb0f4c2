//! Publishing to an S3-compatible bucket, the kind of store CDNs and
//! edges in other clouds read from. The layout is the object store's, so
//! an edge can mirror from either: a version's files as content-addressed
//! blobs (`{page}/blobs/{sha256}`, uploaded once), then the manifest
//! (`{page}/manifest`) as the one switch, then the page in the bucket's
//! index (`beacon_bucket::INDEX`) so an edge polling the bucket finds it.
//!
//! Old blobs are left in the bucket (space, not correctness; a lifecycle
//! rule on `*/blobs/` removes them).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

pub use beacon_bucket::S3Settings;
use beacon_bucket::{Bucket, BucketError};

use crate::follow::referenced_blobs;
use crate::site::Built;

/// The longest one request may take; the origin's own timeout is
/// usually shorter and applies to a whole publish.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A bucket as an origin.
pub struct S3Origin {
    bucket: Bucket,
    /// Per page, the blob names of its version the bucket has now: the
    /// next version uploads only what is not among them.
    uploaded: HashMap<String, HashSet<String>>,
    /// Whether the bucket is known to exist.
    ensured: bool,
    /// Pages known to be in the bucket's index.
    indexed: HashSet<String>,
}

impl S3Origin {
    /// An origin for `settings`; nothing is sent yet.
    pub fn new(settings: &S3Settings) -> Result<S3Origin, BucketError> {
        Ok(S3Origin {
            bucket: Bucket::new(settings, REQUEST_TIMEOUT)?,
            uploaded: HashMap::new(),
            ensured: false,
            indexed: HashSet::new(),
        })
    }

    /// Makes sure the bucket exists, creating it when the service says it
    /// does not.
    pub async fn ensure_bucket(&mut self) -> Result<(), String> {
        if !self.ensured {
            self.bucket.ensure().await.map_err(|e| e.to_string())?;
            self.ensured = true;
        }
        Ok(())
    }

    /// Uploads what is missing of `built`, then switches its page's
    /// manifest to it.
    pub async fn publish(&mut self, built: &Built) -> Result<(), String> {
        self.ensure_bucket().await?;
        let page = &built.manifest.page;
        let names = referenced_blobs(&built.manifest);
        let before = self.uploaded.remove(page).unwrap_or_default();
        for name in &names {
            if before.contains(name) {
                continue;
            }
            let Some(sha) = name.rsplit('/').next() else {
                continue;
            };
            let Some(bytes) = built.blobs.get(sha) else {
                return Err(format!("no bytes for {name}"));
            };
            self.bucket
                .put(name, bytes.clone(), "application/octet-stream")
                .await
                .map_err(|e| e.to_string())?;
        }
        let manifest = serde_json::to_vec(&built.manifest).map_err(|e| e.to_string())?;
        let key = beacon_page::origin::manifest_object(page);
        self.bucket
            .put(&key, manifest, "application/json")
            .await
            .map_err(|e| e.to_string())?;
        self.uploaded.insert(page.clone(), names);
        if !self.indexed.contains(page) {
            let pages = self
                .bucket
                .index_page(page)
                .await
                .map_err(|e| e.to_string())?;
            self.indexed.extend(pages);
        }
        Ok(())
    }
}
