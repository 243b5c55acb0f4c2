//! From rendered files to a publishable version: each file hashed (its
//! ETag), compressible ones precompressed with gzip and brotli (kept only
//! when smaller), and a [`Manifest`] naming them all. Writing it to an
//! origin directory is [`beacon_page::origin::write_version`]: a new
//! version directory, then one rename.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use base64::Engine;
use beacon_page::origin::{self, FileEntry, Manifest};

use crate::render::html::STYLE;

/// A rendered version ready to write: its manifest and every blob by hash.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// What the version holds.
    pub manifest: Manifest,
    /// Bytes of every file and variant, by SHA-256.
    pub blobs: HashMap<String, Vec<u8>>,
}

/// Files smaller than this are not worth compressing.
const MIN_COMPRESS: usize = 256;

fn compressible(path: &str) -> bool {
    matches!(
        path.rsplit_once('.').map(|(_, ext)| ext),
        Some("html" | "json" | "xml" | "atom" | "rss" | "ics" | "svg" | "js" | "css" | "txt")
    )
}

/// Compressed variants of a file, remembered by the file's hash so an
/// unchanged file is not compressed again on the next render.
#[derive(Debug, Default)]
pub struct Compressor {
    cache: HashMap<String, Variants>,
}

#[derive(Debug, Clone, Default)]
struct Variants {
    gzip: Option<Vec<u8>>,
    br: Option<Vec<u8>>,
}

fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::best(),
    );
    encoder.write_all(bytes)?;
    encoder.finish()
}

fn brotli(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() / 4);
    // Quality 9 is within a few percent of 11 on these pages at a small
    // fraction of the time, and every status change recompresses the page.
    let params = brotli::enc::BrotliEncoderParams {
        quality: 9,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut io::Cursor::new(bytes), &mut out, &params)?;
    Ok(out)
}

impl Compressor {
    fn variants(&mut self, sha: &str, bytes: &[u8]) -> Variants {
        if let Some(found) = self.cache.get(sha) {
            return found.clone();
        }
        let smaller = |v: io::Result<Vec<u8>>| v.ok().filter(|c| c.len() < bytes.len());
        let variants = Variants {
            gzip: smaller(gzip(bytes)),
            br: smaller(brotli(bytes)),
        };
        self.cache.insert(sha.to_owned(), variants.clone());
        variants
    }

    /// Builds a version of `page` from rendered `files`. Variants of files
    /// that are no longer part of the site are forgotten.
    pub fn build(
        &mut self,
        page: &str,
        version: &str,
        generated_at_ms: u64,
        hosts: Vec<String>,
        files: Vec<(String, Vec<u8>)>,
    ) -> Built {
        let mut manifest = Manifest {
            page: page.to_owned(),
            version: version.to_owned(),
            generated_at_ms,
            hosts,
            style_hashes: vec![style_hash(STYLE)],
            files: Default::default(),
        };
        for (path, bytes) in &files {
            if path.ends_with(".html") {
                for style in inline_styles(bytes) {
                    let hash = style_hash(style);
                    if !manifest.style_hashes.contains(&hash) {
                        manifest.style_hashes.push(hash);
                    }
                }
            }
        }
        let mut blobs = HashMap::with_capacity(files.len() * 2);
        let mut used = Vec::with_capacity(files.len());
        for (path, bytes) in files {
            let sha = origin::sha256_hex(&bytes);
            let mut entry = FileEntry {
                sha256: sha.clone(),
                size: bytes.len() as u64,
                gzip: None,
                br: None,
            };
            if compressible(&path) && bytes.len() >= MIN_COMPRESS {
                let variants = self.variants(&sha, &bytes);
                if let Some(gz) = variants.gzip {
                    let gz_sha = origin::sha256_hex(&gz);
                    entry.gzip = Some(gz_sha.clone());
                    blobs.insert(gz_sha, gz);
                }
                if let Some(br) = variants.br {
                    let br_sha = origin::sha256_hex(&br);
                    entry.br = Some(br_sha.clone());
                    blobs.insert(br_sha, br);
                }
                used.push(sha.clone());
            }
            blobs.insert(sha, bytes);
            manifest.files.insert(path, entry);
        }
        self.cache.retain(|sha, _| used.contains(sha));
        Built { manifest, blobs }
    }
}

/// The text of every `<style>` block of an HTML page, as the CSP hashes it.
fn inline_styles(html: &[u8]) -> Vec<&str> {
    let Ok(html) = std::str::from_utf8(html) else {
        return Vec::new();
    };
    let mut styles = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<style>") {
        let body = &rest[start + "<style>".len()..];
        let Some(end) = body.find("</style>") else {
            break;
        };
        styles.push(&body[..end]);
        rest = &body[end..];
    }
    styles
}

/// The CSP source for an inline style block: `'sha256-<base64>'` without
/// the quotes.
pub fn style_hash(style: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, style.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// The host of a page's public URL, lowercased, for routing by Host.
pub fn host_of(url: Option<&str>) -> Vec<String> {
    url.and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .into_iter()
        .collect()
}

/// Writes `built` as the new current version of its page under `origin_dir`.
pub fn publish_local(origin_dir: &Path, built: &Built) -> io::Result<()> {
    let page_dir = origin::page_dir(origin_dir, &built.manifest.page);
    origin::write_version(
        &page_dir,
        origin::VERSIONS,
        origin::CURRENT,
        &built.manifest,
        &|sha| built.blobs.get(sha).cloned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_hashed_compressed_and_written() {
        let big = "<p>status</p>".repeat(200);
        let mut compressor = Compressor::default();
        let built = compressor.build(
            "demo",
            "v1",
            1,
            vec!["status.example.com".into()],
            vec![
                ("index.html".into(), big.clone().into_bytes()),
                ("badge.svg".into(), b"<svg/>".to_vec()),
                ("assets/x.png".into(), vec![0x89; 1000]),
            ],
        );
        let index = &built.manifest.files["index.html"];
        assert!(index.gzip.is_some() && index.br.is_some());
        assert_eq!(index.sha256, origin::sha256_hex(big.as_bytes()));
        let small = &built.manifest.files["badge.svg"];
        assert!(small.gzip.is_none(), "too small to compress");
        assert!(
            built.manifest.files["assets/x.png"].gzip.is_none(),
            "not compressible"
        );
        assert_eq!(built.manifest.style_hashes, [style_hash(STYLE)]);

        let dir = tempfile::tempdir().expect("tempdir");
        publish_local(dir.path(), &built).expect("publish");
        let served = std::fs::read(dir.path().join("demo/current/index.html")).expect("read");
        assert_eq!(served, big.as_bytes());
        let gz = std::fs::read(dir.path().join("demo/current/index.html.gz")).expect("gz");
        let mut decoded = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut decoded)
            .expect("gunzip");
        assert_eq!(decoded, big);
        let br = std::fs::read(dir.path().join("demo/current/index.html.br")).expect("br");
        let mut decoded = Vec::new();
        brotli::BrotliDecompress(&mut std::io::Cursor::new(br), &mut decoded).expect("unbrotli");
        assert_eq!(decoded, big.as_bytes());
        assert_eq!(
            host_of(Some("https://Status.Example.com/x")),
            ["status.example.com"]
        );
        assert!(host_of(None).is_empty());
    }

    #[test]
    fn every_inline_style_block_of_a_page_is_allowed_by_its_hash() {
        let page = format!("<head><style>{STYLE}</style><style>.a{{--d:\"x\"}}</style></head>");
        let built = Compressor::default().build(
            "demo",
            "v1",
            0,
            vec![],
            vec![
                ("index.html".into(), page.into_bytes()),
                (
                    "other.html".into(),
                    format!("<style>{STYLE}</style>").into_bytes(),
                ),
            ],
        );
        assert_eq!(
            built.manifest.style_hashes,
            [style_hash(STYLE), style_hash(".a{--d:\"x\"}")]
        );
    }
}
