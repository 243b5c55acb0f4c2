//! An S3-compatible bucket as a page origin, shared by the publisher (which
//! publishes to it), the edge (which mirrors from it) and `beaconctl
//! emergency` (which puts a notice in it without any daemon). The object
//! layout is the NATS object store's (`beacon_page::origin`): blobs, then
//! the manifest as the one switch. A bucket cannot be watched and listing
//! needs an XML parser, so the publisher also keeps [`INDEX`], the pages
//! the bucket holds, which an edge reads first on every poll.
//!
//! Requests are signed with `rusty-s3` (SigV4 presigned URLs) and sent with
//! `reqwest`, like every other HTTP call; the AWS SDK would bring its own
//! HTTP stack and minutes of build for four verbs.
//!
//! # Layout
//!
//! - [`S3Settings`]: where a bucket is and how to sign for it, parsed once.
//! - [`Bucket`]: the signed verbs (ensure, get, put, delete).
//! - [`index_pages`]: the page index's format.

use std::collections::BTreeSet;
use std::time::Duration;

use rusty_s3::{Credentials, S3Action, UrlStyle};

/// How long a signed request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// The object listing the pages a bucket holds: a JSON array of page ids.
pub const INDEX: &str = "index.json";

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
    /// Parses an origin URL: `http(s)://host[:port]/<bucket>` (path style).
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

/// Why a bucket request failed.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The settings cannot make a bucket (a bad endpoint).
    #[error("bucket {bucket}: {reason}")]
    Settings {
        /// The bucket.
        bucket: String,
        /// Why.
        reason: String,
    },
    /// The service did not answer.
    #[error("bucket {bucket}: {what} {key}: {reason}")]
    Unreachable {
        /// The bucket.
        bucket: String,
        /// The verb.
        what: &'static str,
        /// The object (empty for the bucket itself).
        key: String,
        /// Why.
        reason: String,
    },
    /// The service answered with an error status.
    #[error("bucket {bucket}: {what} {key} answered {status}")]
    Refused {
        /// The bucket.
        bucket: String,
        /// The verb.
        what: &'static str,
        /// The object.
        key: String,
        /// The HTTP status.
        status: u16,
    },
}

/// One bucket: signs and sends requests. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bucket {
    bucket: rusty_s3::Bucket,
    credentials: Credentials,
    http: reqwest::Client,
}

impl Bucket {
    /// A client for `settings`; every request is bounded by `timeout`.
    /// Nothing is sent yet.
    pub fn new(settings: &S3Settings, timeout: Duration) -> Result<Bucket, BucketError> {
        let settings_error = |reason: String| BucketError::Settings {
            bucket: settings.bucket.clone(),
            reason,
        };
        let bucket = rusty_s3::Bucket::new(
            settings.endpoint.clone(),
            UrlStyle::Path,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|e| settings_error(e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .build()
            .map_err(|e| settings_error(e.to_string()))?;
        Ok(Bucket {
            bucket,
            credentials: Credentials::new(&settings.access_key, &settings.secret_key),
            http,
        })
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        self.bucket.name()
    }

    fn unreachable(&self, what: &'static str, key: &str, e: &reqwest::Error) -> BucketError {
        BucketError::Unreachable {
            bucket: self.name().to_owned(),
            what,
            key: key.to_owned(),
            reason: e.to_string(),
        }
    }

    fn refused(&self, what: &'static str, key: &str, status: reqwest::StatusCode) -> BucketError {
        BucketError::Refused {
            bucket: self.name().to_owned(),
            what,
            key: key.to_owned(),
            status: status.as_u16(),
        }
    }

    /// Makes sure the bucket exists, creating it when the service says it
    /// does not.
    pub async fn ensure(&self) -> Result<(), BucketError> {
        let head = self
            .bucket
            .head_bucket(Some(&self.credentials))
            .sign(SIGNED_FOR);
        let response = self
            .http
            .head(head)
            .send()
            .await
            .map_err(|e| self.unreachable("head", "", &e))?;
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
                .map_err(|e| self.unreachable("create", "", &e))?;
            if !created.status().is_success() {
                return Err(self.refused("create", "", created.status()));
            }
        } else if !response.status().is_success() {
            return Err(self.refused("head", "", response.status()));
        }
        Ok(())
    }

    /// Stores `body` as `key`.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BucketError> {
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
            .map_err(|e| self.unreachable("put", key, &e))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.refused("put", key, response.status()))
        }
    }

    /// The bytes of `key`, or `None` when the bucket has no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BucketError> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable("get", key, &e))?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.refused("get", key, response.status()));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.unreachable("get", key, &e))?;
        Ok(Some(bytes.to_vec()))
    }

    /// Removes `key`; removing what is not there is fine.
    pub async fn delete(&self, key: &str) -> Result<(), BucketError> {
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let response = self
            .http
            .delete(url)
            .send()
            .await
            .map_err(|e| self.unreachable("delete", key, &e))?;
        if response.status().is_success() || response.status().as_u16() == 404 {
            Ok(())
        } else {
            Err(self.refused("delete", key, response.status()))
        }
    }

    /// The pages [`INDEX`] names; none when there is no index yet.
    pub async fn pages(&self) -> Result<BTreeSet<String>, BucketError> {
        match self.get(INDEX).await? {
            None => Ok(BTreeSet::new()),
            Some(bytes) => index_pages(&bytes).map_err(|reason| BucketError::Unreachable {
                bucket: self.name().to_owned(),
                what: "read",
                key: INDEX.to_owned(),
                reason,
            }),
        }
    }

    /// Adds `page` to [`INDEX`] unless it is there. Read, then written:
    /// two writers at once can drop each other's page, which each puts
    /// back the next time it checks (every publisher checks at start).
    pub async fn index_page(&self, page: &str) -> Result<BTreeSet<String>, BucketError> {
        let mut pages = self.pages().await?;
        if pages.insert(page.to_owned()) {
            let body = serde_json::to_vec(&pages).unwrap_or_default();
            self.put(INDEX, body, "application/json").await?;
        }
        Ok(pages)
    }
}

/// Parses [`INDEX`]: a JSON array of page ids.
pub fn index_pages(bytes: &[u8]) -> Result<BTreeSet<String>, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not a JSON array of page ids: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_url_is_an_endpoint_and_one_bucket() {
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

    #[test]
    fn the_index_is_a_set_of_page_ids() {
        let pages = index_pages(br#"["b","a","a"]"#).expect("valid");
        assert_eq!(pages.into_iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(index_pages(b"{}").is_err());
        assert!(index_pages(b"").is_err());
    }
}
