//! Pure request-to-file mapping and response headers, table-tested.

/// Why a request path maps to no file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPath {
    /// A segment is `.`/`..`, empty in the middle, or has characters outside
    /// the set the publisher ever writes.
    Refused,
}

/// Maps a URL path to a file path relative to a version directory.
/// `/` and paths ending in `/` mean `index.html`.
pub fn relative_file(url_path: &str) -> Result<String, BadPath> {
    let trimmed = url_path.trim_start_matches('/');
    let mut path = trimmed.to_owned();
    if path.is_empty() || path.ends_with('/') {
        path.push_str("index.html");
    }
    for segment in path.split('/') {
        let allowed = segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if segment.is_empty() || segment == "." || segment == ".." || !allowed {
            return Err(BadPath::Refused);
        }
    }
    Ok(path)
}

/// The content type for a file name.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("atom") => "application/atom+xml",
        Some("rss") => "application/rss+xml",
        Some("ics") => "text/calendar; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// Whether an `If-None-Match` header value matches `etag`.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.trim() == "*"
        || if_none_match
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_files_or_are_refused() {
        let table: &[(&str, Result<&str, BadPath>)] = &[
            ("/", Ok("index.html")),
            ("", Ok("index.html")),
            ("/api/v2/summary.json", Ok("api/v2/summary.json")),
            ("/api/", Ok("api/index.html")),
            ("/../etc/passwd", Err(BadPath::Refused)),
            ("/api/../../x", Err(BadPath::Refused)),
            ("/a//b", Err(BadPath::Refused)),
            ("/%2e%2e/x", Err(BadPath::Refused)),
            ("/a b", Err(BadPath::Refused)),
            ("/./index.html", Err(BadPath::Refused)),
        ];
        for (input, want) in table {
            assert_eq!(
                relative_file(input).as_deref().map_err(Clone::clone),
                want.clone(),
                "{input}"
            );
        }
    }

    #[test]
    fn content_types_and_etags() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("api/v2/summary.json"), "application/json");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert!(etag_matches("\"v1\"", "\"v1\""));
        assert!(etag_matches("W/\"v1\", \"v2\"", "\"v1\""));
        assert!(etag_matches("*", "\"v1\""));
        assert!(!etag_matches("\"v2\"", "\"v1\""));
    }
}
