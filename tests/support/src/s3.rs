//! A real S3-compatible server: `moto_server` from PyPI (`moto[server]`,
//! installed by `scripts/install-deps`), on a free loopback port, in its
//! own temporary directory, killed on drop. It speaks S3's REST protocol,
//! signatures included, and keeps buckets in memory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{bin, child, free_port, http, logs};

/// How long the server may take to answer after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `moto_server`.
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn program() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER_BIN") {
        return PathBuf::from(path);
    }
    bin::find_on_path("moto_server")
        .expect("moto_server not found: run scripts/test (it installs moto[server] from PyPI)")
}

impl S3Server {
    /// Starts a server and waits until it answers.
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("a temp dir for moto_server");
        let port = free_port();
        let log = dir.path().join("moto.log");
        let child = Command::new(program())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(logs::append(&log))
            .stderr(logs::append(&log))
            .spawn()
            .expect("spawn moto_server");
        let mut server = S3Server {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(response) = http::request(port, "GET", "/", "", Duration::from_secs(2)) {
                if response.status == 200 {
                    return server;
                }
            }
            if let Some(status) = child::reap_if_exited(&mut server.child) {
                panic!(
                    "moto_server exited during startup with {status}\n{}",
                    server.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto_server on port {port} not ready after {READY_TIMEOUT:?}\n{}",
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What it logged.
    pub fn logs(&self) -> String {
        logs::read(&self.dir.path().join("moto.log"))
    }

    /// An object's body, read with a signed request (objects are private;
    /// moto takes any keys); `None` when it answers anything but 200.
    pub fn object(&self, bucket: &str, key: &str) -> Option<String> {
        use rusty_s3::S3Action;
        let endpoint = url::Url::parse(&self.url()).ok()?;
        let bucket = rusty_s3::Bucket::new(
            endpoint,
            rusty_s3::UrlStyle::Path,
            bucket.to_owned(),
            "us-east-1",
        )
        .ok()?;
        let credentials = rusty_s3::Credentials::new("test", "test-secret");
        let signed = bucket
            .get_object(Some(&credentials), key)
            .sign(Duration::from_secs(60));
        let path = match signed.query() {
            Some(query) => format!("{}?{query}", signed.path()),
            None => signed.path().to_owned(),
        };
        let response = http::request(self.port, "GET", &path, "", Duration::from_secs(5)).ok()?;
        (response.status == 200).then_some(response.body)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        child::kill(&mut self.child, "moto_server");
    }
}
