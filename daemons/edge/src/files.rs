//! Pure request handling decisions, table-tested: which page and file a
//! request means, which requests go to the HTTP API, content types,
//! validator matching and content-encoding negotiation.

/// Why a request path maps to no file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPath {
    /// A segment is `.`/`..`, empty in the middle, percent-encoded, or has
    /// characters outside the set the publisher ever writes.
    Refused,
}

/// Maps a URL path to a file path relative to a version directory.
/// `/` and paths ending in `/` mean `index.html`. Percent-encoding is
/// refused rather than decoded: the publisher never writes a name that
/// needs it, and a decoded `%2e%2e` must never become `..`.
pub fn relative_file(url_path: &str) -> Result<String, BadPath> {
    // Exactly one leading slash: `//x` is not `/x`.
    let trimmed = url_path.strip_prefix('/').unwrap_or(url_path);
    let mut path = trimmed.to_owned();
    if path.is_empty() || path.ends_with('/') {
        path.push_str("index.html");
    }
    if beacon_page::origin::is_safe_relative(&path) {
        Ok(path)
    } else {
        Err(BadPath::Refused)
    }
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
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => "application/octet-stream",
    }
}

/// Whether an `If-None-Match` header value matches `etag` (weak
/// comparison, as RFC 9110 asks for `If-None-Match`).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.trim() == "*"
        || if_none_match
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag.trim_start_matches("W/"))
}

/// A representation the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Brotli.
    Br,
    /// Gzip.
    Gzip,
    /// As is.
    Identity,
}

/// The best encoding `accept_encoding` allows among those available:
/// brotli, then gzip, then identity. A coding with `q=0` is refused.
pub fn negotiate(accept_encoding: Option<&str>, has_br: bool, has_gzip: bool) -> Encoding {
    let Some(header) = accept_encoding else {
        return Encoding::Identity;
    };
    let accepts = |name: &str| {
        header.split(',').any(|part| {
            let mut pieces = part.split(';');
            let coding = pieces.next().unwrap_or("").trim();
            let refused = pieces.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            !refused && (coding.eq_ignore_ascii_case(name) || coding == "*")
        })
    };
    if has_br && accepts("br") {
        Encoding::Br
    } else if has_gzip && accepts("gzip") {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// The host part of a `Host` header, lowercased, without a port.
pub fn host_name(host: &str) -> String {
    let host = host.trim();
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    without_port.to_ascii_lowercase()
}

/// What a request is for, decided from the host, the path and which pages
/// exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `path` (relative, e.g. `api/v2/summary.json` or `events`) of `page`.
    Page {
        /// Page id.
        page: String,
        /// Path within the page, as sent (not yet mapped to a file).
        path: String,
    },
    /// `/{page}` without the slash: redirect so relative links resolve.
    AddSlash(String),
    /// Nothing here.
    NotFound,
}

/// Routes a request: a custom domain (`host_page`) serves its page at the
/// root; otherwise a path of the default page that exists serves that page,
/// then `/{page}/…` serves a page by path, and anything else falls to the
/// default page (where it is most likely a 404).
pub fn route(
    host_page: Option<&str>,
    default_page: Option<&str>,
    path: &str,
    default_has: impl Fn(&str) -> bool,
    page_exists: impl Fn(&str) -> bool,
) -> Route {
    let page_path = |page: &str, rest: &str| Route::Page {
        page: page.to_owned(),
        path: rest.to_owned(),
    };
    if let Some(page) = host_page {
        return page_path(page, path);
    }
    if let Some(page) = default_page {
        if default_has(path) {
            return page_path(page, path);
        }
    }
    let trimmed = path.trim_start_matches('/');
    let (first, rest) = match trimmed.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (trimmed, None),
    };
    if !first.is_empty() && page_exists(first) {
        return match rest {
            None => Route::AddSlash(format!("/{first}/")),
            Some(rest) => page_path(first, &format!("/{rest}")),
        };
    }
    match default_page {
        Some(page) => page_path(page, path),
        None => Route::NotFound,
    }
}

/// A request the edge hands to the HTTP API (`--api-url`): public sign-up
/// and the links subscribers are mailed. Nothing else is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// `POST /api/v2/subscribers.json`.
    SignUp,
    /// `GET|POST /api/v2/subscribers/confirm`.
    Confirm,
    /// `GET|POST /api/v2/subscribers/unsubscribe`.
    Unsubscribe,
}

impl Forward {
    /// The path on the HTTP API.
    pub fn api_path(self) -> &'static str {
        match self {
            Forward::SignUp => "/api/v2/subscribers.json",
            Forward::Confirm => "/api/v2/subscribers/confirm",
            Forward::Unsubscribe => "/api/v2/subscribers/unsubscribe",
        }
    }

    /// The methods it takes, as an `Allow` header says them.
    pub fn allow(self) -> &'static str {
        match self {
            Forward::SignUp => "POST",
            Forward::Confirm | Forward::Unsubscribe => "GET, POST",
        }
    }

    /// Whether it takes `method`.
    pub fn takes(self, method: &str) -> bool {
        match self {
            Forward::SignUp => method == "POST",
            Forward::Confirm | Forward::Unsubscribe => method == "GET" || method == "POST",
        }
    }
}

/// Whether a path within a page (as [`route`] gives it) is one the HTTP API
/// answers.
pub fn forwarded(page_path: &str) -> Option<Forward> {
    [Forward::SignUp, Forward::Confirm, Forward::Unsubscribe]
        .into_iter()
        .find(|f| f.api_path() == page_path)
}

/// The file behind `/api/v1/status/{page}`, in every page's version.
pub const STATUS_V1_FILE: &str = "api/v1/status.json";

/// The page of a `/api/v1/status/{page}` request, if it is one.
pub fn status_v1_page(path: &str) -> Option<&str> {
    let page = path.strip_prefix("/api/v1/status/")?;
    beacon_contract::names::check_token(page)
        .ok()
        .map(|()| page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sign_up_and_its_links_are_forwarded() {
        assert_eq!(forwarded("/api/v2/subscribers.json"), Some(Forward::SignUp));
        assert_eq!(
            forwarded("/api/v2/subscribers/confirm"),
            Some(Forward::Confirm)
        );
        assert_eq!(
            forwarded("/api/v2/subscribers/unsubscribe"),
            Some(Forward::Unsubscribe)
        );
        for other in [
            "/api/v2/subscribers",
            "/api/v2/subscribers/",
            "/api/v2/subscribers/x",
            "/api/v1/incidents",
            "/openapi.json",
            "/api/v2/summary.json",
        ] {
            assert_eq!(forwarded(other), None, "{other}");
        }
        assert!(Forward::SignUp.takes("POST") && !Forward::SignUp.takes("GET"));
        assert!(Forward::Confirm.takes("GET") && !Forward::Confirm.takes("PUT"));
        assert_eq!(status_v1_page("/api/v1/status/demo"), Some("demo"));
        assert_eq!(status_v1_page("/api/v1/status/../x"), None);
        assert_eq!(status_v1_page("/api/v1/status/"), None);
        assert_eq!(status_v1_page("/demo/api/v1/status/demo"), None);
    }

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
            ("//index.html", Err(BadPath::Refused)),
            ("/%2e%2e/x", Err(BadPath::Refused)),
            ("/..%2fetc", Err(BadPath::Refused)),
            ("/a b", Err(BadPath::Refused)),
            ("/./index.html", Err(BadPath::Refused)),
            ("/a\\..\\b", Err(BadPath::Refused)),
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

    #[test]
    fn encodings_are_negotiated() {
        use Encoding::*;
        let table: &[(Option<&str>, bool, bool, Encoding)] = &[
            (None, true, true, Identity),
            (Some("gzip, deflate, br"), true, true, Br),
            (Some("gzip"), true, true, Gzip),
            (Some("br;q=0, gzip"), true, true, Gzip),
            (Some("br"), false, true, Identity),
            (Some("*"), true, true, Br),
            (Some("identity"), true, true, Identity),
            (Some("GZIP"), false, true, Gzip),
        ];
        for (header, br, gz, want) in table {
            assert_eq!(negotiate(*header, *br, *gz), *want, "{header:?}");
        }
    }

    #[test]
    fn requests_route_by_host_then_path() {
        let exists = |p: &str| p == "demo" || p == "other";
        let default_has = |p: &str| p == "/" || p == "/api/v2/summary.json";
        let page = |page: &str, path: &str| Route::Page {
            page: page.into(),
            path: path.into(),
        };
        let table: &[(Option<&str>, Option<&str>, &str, Route)] = &[
            (Some("custom"), Some("demo"), "/", page("custom", "/")),
            (None, Some("demo"), "/", page("demo", "/")),
            (
                None,
                Some("demo"),
                "/api/v2/summary.json",
                page("demo", "/api/v2/summary.json"),
            ),
            (
                None,
                Some("demo"),
                "/other/live.json",
                page("other", "/live.json"),
            ),
            (
                None,
                Some("demo"),
                "/other",
                Route::AddSlash("/other/".into()),
            ),
            (None, Some("demo"), "/nope.html", page("demo", "/nope.html")),
            (None, None, "/nope.html", Route::NotFound),
            (None, None, "/other/", page("other", "/")),
        ];
        for (host, default, path, want) in table {
            assert_eq!(
                &route(*host, *default, path, default_has, exists),
                want,
                "{path}"
            );
        }
        assert_eq!(host_name("Status.Example.com:8080"), "status.example.com");
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("localhost"), "localhost");
    }
}
