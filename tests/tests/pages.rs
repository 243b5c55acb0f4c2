//! The published pages across real processes: decider, probes, publisher
//! and edge over a real nats-server, operated with `beaconctl`.
//!
//! - Incidents and changelog entries written with `beaconctl` reach the
//!   edge's HTML, Statuspage JSON and feeds, with hostile text inert.
//! - A headless Chromium (through chromedriver's WebDriver API) loads the
//!   page from the edge, sees the status, sees a status change arrive live
//!   without a reload, takes a screenshot, and makes no request to another
//!   origin; then a page of another origin embeds `widget.js` and shows the
//!   status in its Shadow DOM.

use std::time::Duration;

use beacon_testkit::{ctl, free_port, wait_until, NatsServer};
use beacon_tests::{apply_config, get, page_config, HttpTarget, Stack, DECIDE};

fn nats_args(nats: &NatsServer) -> impl Fn(&str) -> Vec<String> {
    let url = nats.url();
    move |_role| vec!["--nats-url".to_owned(), url.clone()]
}

/// Waits until `path` on the edge answers 200 with a body `want` accepts.
async fn wait_for(stack: &Stack, path: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
    let url = format!("{}{path}", stack.edge_url);
    wait_until(what, DECIDE, || {
        let url = url.clone();
        let want = &want;
        async move {
            let (status, body) = get(&url).await?;
            (status == 200 && want(&body)).then_some(body)
        }
    })
    .await
}

const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

#[tokio::test]
async fn incidents_and_the_changelog_reach_the_edge_inert() {
    let nats = NatsServer::start();
    let target = HttpTarget::start().await;
    let stack = Stack::start("pages", nats_args(&nats)).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    apply_config(&client, &page_config("pages", "Pages", &target.url())).await;
    stack.wait_for_api_status("operational").await;

    // An incident with hostile text.
    let title = format!("Checkout errors {HOSTILE}");
    let created = ctl::run(
        &nats.url(),
        &[
            "incident",
            "create",
            "pages",
            "--title",
            &title,
            "--impact",
            "minor",
            "--component",
            "api=partial_outage",
            "-m",
            "Looking [x](javascript:alert(3))",
            "--output",
            "json",
        ],
    )
    .await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let incident: serde_json::Value = serde_json::from_slice(&created.stdout).expect("json");
    let id = incident["id"].as_str().expect("id").to_owned();
    let unresolved = wait_for(
        &stack,
        "/api/v2/incidents/unresolved.json",
        "the incident in the API",
        |b| b.contains(&id),
    )
    .await;
    let value: serde_json::Value = serde_json::from_str(&unresolved).expect("json");
    assert_eq!(
        value["incidents"][0]["name"],
        title.as_str(),
        "JSON keeps the text"
    );
    assert!(!unresolved.contains('<'), "and escapes angle brackets");
    assert_eq!(
        value["incidents"][0]["incident_updates"][0]["affected_components"][0]["code"],
        "api"
    );
    assert_ne!(
        value["incidents"][0]["created_at"],
        "1970-01-01T00:00:00.000Z"
    );
    let index = wait_for(&stack, "/", "the incident on the page", |b| b.contains(&id)).await;
    assert!(
        !index.contains("<script>alert") && !index.contains("<img src=x"),
        "escaped on the page"
    );
    let atom = wait_for(&stack, "/history.atom", "the incident in the feed", |b| {
        b.contains(&id)
    })
    .await;
    assert!(feed_rs::parser::parse(atom.as_bytes()).is_ok());
    let page = wait_for(
        &stack,
        &format!("/incidents/{id}.html"),
        "the incident page",
        |_| true,
    )
    .await;
    assert!(!page.contains("href=\"javascript:"), "no javascript: links");

    // The changelog: publish with an image, hostile markdown sanitized.
    let dir = tempfile::tempdir().expect("dir");
    let image = dir.path().join("chart.png");
    std::fs::write(&image, b"\x89PNG\r\n\x1a\nnot really a png").expect("image");
    let published = ctl::run(&nats.url(),
        &[
            "changelog", "publish", "pages", "--title", "Faster <b>pages</b>", "--category", "improvement", "--component", "api",
            "-m", "**Bold** <script>alert(1)</script> [x](javascript:alert(1)) ![chart](assets/chart.png) <img src=x onerror=alert(2)>",
            "--image", image.to_str().expect("path"), "--output", "json",
        ],
    )
    .await;
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let view: serde_json::Value = serde_json::from_slice(&published.stdout).expect("json");
    let entry = view["entry"]["entry"]
        .as_str()
        .expect("entry id")
        .to_owned();
    let html = wait_for(
        &stack,
        "/changelog.html",
        "the entry on the changelog page",
        |b| b.contains(&entry),
    )
    .await;
    assert!(html.contains("<strong>Bold</strong>"), "{html}");
    assert!(
        !html.contains("<script>alert")
            && !html.contains("onerror")
            && !html.contains("href=\"javascript:"),
        "{html}"
    );
    assert!(html.contains("Faster &lt;b&gt;pages&lt;/b&gt;"));
    assert!(html.contains("<img src=\"assets/chart.png\" alt=\"chart\">"));
    let (status, png) = get(&format!("{}/assets/chart.png", stack.edge_url))
        .await
        .expect("asset");
    assert_eq!(status, 200);
    assert!(png.starts_with("\u{fffd}PNG") || png.contains("PNG"));
    let rss = wait_for(&stack, "/changelog.rss", "the entry in the RSS feed", |b| {
        b.contains(&entry)
    })
    .await;
    let feed = feed_rs::parser::parse(rss.as_bytes()).expect("rss parses");
    assert_eq!(
        feed.entries[0].title.as_ref().expect("title").content,
        "Faster <b>pages</b>"
    );

    // A bad category is refused with the reason, exit 64.
    let bad = ctl::run(
        &nats.url(),
        &[
            "changelog",
            "publish",
            "pages",
            "--title",
            "x",
            "--category",
            "feature",
            "-m",
            "x",
        ],
    )
    .await;
    assert_eq!(
        bad.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("category"));

    // Edit, list, delete.
    let edited = ctl::run(
        &nats.url(),
        &[
            "changelog",
            "edit",
            "pages",
            &entry,
            "--title",
            "Much faster pages",
            "--revision",
            &view["revision"].to_string(),
        ],
    )
    .await;
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    wait_for(&stack, "/changelog.html", "the edited title", |b| {
        b.contains("Much faster pages")
    })
    .await;
    let stale = ctl::run(
        &nats.url(),
        &[
            "changelog",
            "edit",
            "pages",
            &entry,
            "--title",
            "stale",
            "--revision",
            &view["revision"].to_string(),
        ],
    )
    .await;
    assert_eq!(
        stale.status.code(),
        Some(75),
        "a stale revision is a conflict"
    );
    let listed = ctl::run(&nats.url(), &["changelog", "list", "pages"]).await;
    assert!(String::from_utf8_lossy(&listed.stdout).contains("Much faster pages"));
    let deleted = ctl::run(&nats.url(), &["changelog", "delete", "pages", &entry]).await;
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    wait_for(&stack, "/changelog.html", "the entry gone", |b| {
        !b.contains(&entry)
    })
    .await;
    drop(stack);
}

// ---------------------------------------------------------------------------
// The browser test.
// ---------------------------------------------------------------------------

/// A chromedriver process, killed on drop.
struct Driver {
    child: std::process::Child,
    url: String,
    _profile: tempfile::TempDir,
    profile: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let program = ["chromedriver", "/usr/bin/chromedriver"]
            .into_iter()
            .find(|p| std::process::Command::new(p).arg("--version").output().is_ok())
            .expect("chromedriver is installed (scripts/install-deps installs chromium and chromium-driver)");
        let port = free_port();
        let child = std::process::Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("profile dir");
        let path = profile.path().display().to_string();
        let driver = Driver {
            child,
            url,
            _profile: profile,
            profile: path,
        };
        let status = format!("{}/status", driver.url);
        wait_until("chromedriver to start", Duration::from_secs(20), || {
            let status = status.clone();
            async move {
                reqwest::get(&status)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            }
        })
        .await;
        driver
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let client = reqwest::Client::new();
        let mut request = client
            .request(method, format!("{}{path}", self.url))
            .timeout(Duration::from_secs(60));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("webdriver request");
        let text = response.text().await.expect("webdriver reply");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("webdriver said {text}: {e}"))
    }
}

#[tokio::test]
async fn a_browser_sees_the_page_and_a_live_change() {
    let nats = NatsServer::start();
    let mut target = HttpTarget::start().await;
    let stack = Stack::start("live", nats_args(&nats)).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    apply_config(&client, &page_config("live", "Live <Page>", &target.url())).await;
    stack.wait_for_api_status("operational").await;

    let driver = Driver::start().await;
    let session = driver
        .call(
            reqwest::Method::POST,
            "/session",
            Some(serde_json::json!({
                "capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": [
                            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            "--window-size=1000,1400", format!("--user-data-dir={}", driver.profile),
                        ]
                    },
                    "goog:loggingPrefs": {"performance": "ALL"}
                }}
            })),
        )
        .await;
    let id = session["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {session}"))
        .to_owned();
    let base = format!("/session/{id}");
    driver
        .call(
            reqwest::Method::POST,
            &format!("{base}/url"),
            Some(serde_json::json!({"url": format!("{}/", stack.edge_url)})),
        )
        .await;
    let script = |code: &str| serde_json::json!({"script": code, "args": []});
    let read = |code: &'static str| {
        let driver = &driver;
        let base = base.clone();
        async move {
            driver
                .call(
                    reqwest::Method::POST,
                    &format!("{base}/execute/sync"),
                    Some(script(code)),
                )
                .await["value"]
                .clone()
        }
    };

    // The page shows the status, and its live script is connected.
    wait_until(
        "the page to show operational, live",
        Duration::from_secs(20),
        || async {
            let status =
                read("return document.getElementById('page-status').getAttribute('data-status')")
                    .await;
            let live = read("return document.documentElement.getAttribute('data-live')").await;
            (status == "operational" && live == "sse").then_some(())
        },
    )
    .await;
    let title = read("return document.querySelector('h1').textContent").await;
    assert_eq!(title, "Live <Page>", "operator text shown as text");
    // The bars' dates come from the page's second style block, which the
    // edge's CSP must allow by its hash: today's bar knows its date.
    let today = read(
        "return getComputedStyle(document.querySelector('.bars li:last-child')).getPropertyValue('--d')",
    )
    .await;
    let is_date = |d: &str| {
        let d = d.trim().trim_matches('"');
        d.len() == 10 && d.bytes().filter(u8::is_ascii_digit).count() == 8
    };
    assert!(
        today.as_str().is_some_and(is_date),
        "the day style applies: {today}"
    );
    read("window.__same_document = 42; return 1").await;

    // The target goes down: the change arrives without a reload.
    target.down();
    wait_until("the page to show major_outage live", DECIDE, || async {
        let status =
            read("return document.getElementById('page-status').getAttribute('data-status')").await;
        (status == "major_outage").then_some(())
    })
    .await;
    assert_eq!(
        read("return window.__same_document").await,
        42,
        "updated in place, not reloaded"
    );
    let row =
        read("return document.getElementById('component-api').getAttribute('data-status')").await;
    assert_eq!(row, "major_outage");

    // A screenshot, kept next to the build for people to look at.
    let shot = driver
        .call(reqwest::Method::GET, &format!("{base}/screenshot"), None)
        .await;
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["value"].as_str().expect("screenshot"))
        .expect("base64");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = std::env::temp_dir().join("beacon-browser-test.png");
    std::fs::write(&path, &png).expect("save screenshot");
    eprintln!("screenshot: {}", path.display());

    // Every request the page made went to the edge's own origin.
    let logs = driver
        .call(
            reqwest::Method::POST,
            &format!("{base}/se/log"),
            Some(serde_json::json!({"type": "performance"})),
        )
        .await;
    let origin = stack.edge_url.clone();
    let mut urls = Vec::new();
    for entry in logs["value"].as_array().expect("performance log") {
        let message: serde_json::Value =
            serde_json::from_str(entry["message"].as_str().unwrap_or("{}")).unwrap_or_default();
        if message["message"]["method"] == "Network.requestWillBeSent" {
            if let Some(url) = message["message"]["params"]["request"]["url"].as_str() {
                urls.push(url.to_owned());
            }
        }
    }
    assert!(urls.iter().any(|u| u.ends_with("/live.js")), "{urls:?}");
    assert!(urls.iter().any(|u| u.ends_with("/events")), "{urls:?}");
    for url in &urls {
        // chrome:// and about: are the browser's own start tab, not the network.
        let network = ["http:", "https:", "ws:", "wss:", "ftp:"]
            .iter()
            .any(|s| url.starts_with(s));
        assert!(
            !network || url.starts_with(&origin),
            "request to another origin: {url}"
        );
    }
    // And the CSP blocked nothing of the page's own.
    let console = driver
        .call(
            reqwest::Method::POST,
            &format!("{base}/se/log"),
            Some(serde_json::json!({"type": "browser"})),
        )
        .await;
    let messages = console["value"].to_string();
    assert!(!messages.contains("Content Security Policy"), "{messages}");

    // The widget on another site: a page of a second origin embeds
    // widget.js from the edge and shows the status in its Shadow DOM.
    let site = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let site_url = format!("http://{}", site.local_addr().expect("addr"));
    let host_page = format!(
        "<!doctype html><html><body><p>Elsewhere</p><beacon-status></beacon-status>\
         <script src=\"{}/widget.js\"></script></body></html>",
        stack.edge_url
    );
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = site.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{host_page}",
                host_page.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    driver
        .call(
            reqwest::Method::POST,
            &format!("{base}/url"),
            Some(serde_json::json!({"url": site_url})),
        )
        .await;
    let shown = wait_until("the widget to show the status", Duration::from_secs(15), || async {
        let text = read("var w = document.querySelector('beacon-status'); return w && w.shadowRoot ? w.shadowRoot.textContent : ''").await;
        text.as_str().filter(|t| t.contains("Major System Outage")).map(str::to_owned)
    })
    .await;
    assert!(shown.contains("Live <Page>"), "{shown}");
    server.abort();

    driver.call(reqwest::Method::DELETE, &base, None).await;
    drop(stack);
}
