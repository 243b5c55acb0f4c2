//! Publishing to an S3-compatible bucket, the kind of store CDNs and
//! edges in other clouds read from. The layout is the object store's, so
//! an edge can mirror from either: a version's files as content-addressed
//! blobs (`{page}/blobs/{sha256}`, uploaded once), then the manifest
//! (`{page}/manifest`) as the one switch. Requests are signed with
//! `rusty-s3` (SigV4 presigned URLs) and sent with `reqwest`.
//!
//! Old blobs are left in the bucket (space, not correctness; a lifecycle
//! rule on `*/blobs/` removes them).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::follow::referenced_blobs;
use crate::site::Built;

/// How long a signed request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// Where a bucket is and how to sign for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The service's endpoint, e.g. `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: url::Url,
    /// The bucket.
    pub bucket: String,
    /// The region signed for.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl S3Settings {
    /// Parses `--s3-origin`: `http(s)://host[:port]/<bucket>` (path style).
    pub fn parse(
        text: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Result<S3Settings, String> {
        let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!("{text:?} must be an http(s) URL with a host"));
        }
        let bucket = url.path().trim_matches('/').to_owned();
        if bucket.is_empty() || bucket.contains('/') {
            return Err(format!(
                "{text:?} must name exactly one bucket as its path: https://host/bucket"
            ));
        }
        if access_key.is_empty() || secret_key.is_empty() {
            return Err(format!(
                "{text:?} needs BEACON_S3_ACCESS_KEY and BEACON_S3_SECRET_KEY"
            ));
        }
        let mut endpoint = url.clone();
        endpoint.set_path("/");
        Ok(S3Settings {
            endpoint,
            bucket,
            region: region.to_owned(),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
        })
    }
}

/// A bucket as an origin.
pub struct S3Origin {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    /// Per page, the blob names of its version the bucket has now: the
    /// next version uploads only what is not among them.
    uploaded: HashMap<String, HashSet<String>>,
    /// Whether the bucket is known to exist.
    ensured: bool,
}

impl S3Origin {
    /// An origin for `settings`; nothing is sent yet.
    pub fn new(settings: &S3Settings) -> Result<S3Origin, String> {
        let bucket = Bucket::new(
            settings.endpoint.clone(),
            UrlStyle::Path,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|e| format!("bucket {}: {e}", settings.bucket))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(S3Origin {
            bucket,
            credentials: Credentials::new(&settings.access_key, &settings.secret_key),
            http,
            uploaded: HashMap::new(),
            ensured: false,
        })
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        self.bucket.name()
    }

    /// Makes sure the bucket exists, creating it when the service says it
    /// does not.
    pub async fn ensure_bucket(&mut self) -> Result<(), String> {
        if self.ensured {
            return Ok(());
        }
        let head = self
            .bucket
            .head_bucket(Some(&self.credentials))
            .sign(SIGNED_FOR);
        let response = self
            .http
            .head(head)
            .send()
            .await
            .map_err(|e| format!("bucket {}: {e}", self.name()))?;
        if response.status().as_u16() == 404 {
            let create = self
                .bucket
                .create_bucket(&self.credentials)
                .sign(SIGNED_FOR);
            // An empty body, said so: servers refuse a PUT without a
            // length, and the client leaves it out for an empty body.
            let created = self
                .http
                .put(create)
                .header("Content-Length", "0")
                .send()
                .await
                .map_err(|e| format!("bucket {}: {e}", self.name()))?;
            if !created.status().is_success() {
                return Err(format!(
                    "bucket {}: creating it answered {}",
                    self.name(),
                    created.status()
                ));
            }
        } else if !response.status().is_success() {
            return Err(format!(
                "bucket {}: answered {}",
                self.name(),
                response.status()
            ));
        }
        self.ensured = true;
        Ok(())
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), String> {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let response = self
            .http
            .put(url)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("cannot store {key} in {}: {e}", self.name()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "cannot store {key} in {}: {}",
                self.name(),
                response.status()
            ))
        }
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
            self.put(name, bytes.clone(), "application/octet-stream")
                .await?;
        }
        let manifest = serde_json::to_vec(&built.manifest).map_err(|e| e.to_string())?;
        let key = beacon_page::origin::manifest_object(page);
        self.put(&key, manifest, "application/json").await?;
        self.uploaded.insert(page.clone(), names);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_origin_is_an_endpoint_and_one_bucket() {
        let settings =
            S3Settings::parse("http://127.0.0.1:9000/pages", "us-east-1", "k", "s").expect("valid");
        assert_eq!(settings.bucket, "pages");
        assert_eq!(settings.endpoint.as_str(), "http://127.0.0.1:9000/");
        for bad in [
            "ftp://host/pages",
            "http://host/",
            "http://host/a/b",
            "not a url",
        ] {
            assert!(S3Settings::parse(bad, "r", "k", "s").is_err(), "{bad}");
        }
        let no_keys = S3Settings::parse("http://host/pages", "r", "", "").expect_err("keys");
        assert!(no_keys.contains("BEACON_S3_ACCESS_KEY"), "{no_keys}");
    }
}
