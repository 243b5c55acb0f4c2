//! A real `clickhouse-server`, on free ports, with a generated minimal config.
//!
//! The config is written for the Debian package (ClickHouse 18.16) and kept
//! to settings that current releases still accept: the `<yandex>` root
//! element, explicit `listen_host`, and every directory under the temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::child::{self, Restartable};
use crate::logs::append;
use crate::{bin, http, logs, ports};

/// How long a start may take before the harness gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How often readiness is probed.
const READY_POLL: Duration = Duration::from_millis(50);

/// How long one query may take over HTTP.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Log lines shown in panic messages; the information-level log of a
/// whole test is long and the end is what explains a failure.
const LOG_TAIL_LINES: usize = 80;

/// A running `clickhouse-server` owned by a test.
///
/// Ports and the data directory are fixed for the life of the value, so
/// [`ClickHouseServer::restart`] and [`ClickHouseServer::stop`] +
/// [`ClickHouseServer::start_again`] bring back the same server with its
/// tables. Dropping it kills the process.
pub struct ClickHouseServer {
    dir: TempDir,
    http_port: u16,
    tcp_port: u16,
    /// `<remote_servers>` of a cluster this server is a shard of, if any.
    remote_servers: String,
    child: Option<Child>,
}

impl ClickHouseServer {
    /// Writes a config into a fresh temp dir, starts the server and waits
    /// until `/ping` answers `Ok.`.
    pub fn start() -> ClickHouseServer {
        Self::start_on(ports::free_port(), ports::free_port(), String::new())
    }

    /// Starts `count` servers that are the shards (one replica each) of a
    /// cluster named `cluster`: every server's config lists them all in
    /// `<remote_servers>`, so a `Distributed` table on any of them reaches
    /// every shard.
    pub fn start_shards(cluster: &str, count: usize) -> Vec<ClickHouseServer> {
        let ports: Vec<(u16, u16)> = (0..count)
            .map(|_| (ports::free_port(), ports::free_port()))
            .collect();
        let shards: String = ports
            .iter()
            .map(|(_, tcp)| {
                format!(
                    "<shard><replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard>"
                )
            })
            .collect();
        let remote_servers =
            format!("<remote_servers><{cluster}>{shards}</{cluster}></remote_servers>");
        ports
            .into_iter()
            .map(|(http, tcp)| Self::start_on(http, tcp, remote_servers.clone()))
            .collect()
    }

    fn start_on(http_port: u16, tcp_port: u16, remote_servers: String) -> ClickHouseServer {
        let dir = tempfile::Builder::new()
            .prefix("beacon-clickhouse-")
            .tempdir()
            .expect("create a temp dir for clickhouse-server");
        let mut server = ClickHouseServer {
            dir,
            http_port,
            tcp_port,
            remote_servers,
            child: None,
        };
        std::fs::write(server.config_path(), server.config_xml())
            .expect("write clickhouse config.xml");
        std::fs::write(server.dir.path().join("users.xml"), USERS_XML)
            .expect("write clickhouse users.xml");
        server.start_again();
        server
    }

    /// The HTTP interface base URL, `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The HTTP interface port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The native protocol port.
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    /// The data directory (`<path>` in the config), kept across restarts.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's main log, its error log and anything it printed to
    /// stdout or stderr, each cut to its last lines.
    pub fn logs(&self) -> String {
        format!(
            "---- {} ----\n{}\n---- {} ----\n{}\n---- {} ----\n{}",
            self.log_path().display(),
            logs::tail(&self.log_path(), LOG_TAIL_LINES),
            self.err_log_path().display(),
            logs::tail(&self.err_log_path(), LOG_TAIL_LINES),
            self.console_path().display(),
            logs::tail(&self.console_path(), LOG_TAIL_LINES),
        )
    }

    /// Whether the process is running (started and not stopped).
    pub fn is_running(&mut self) -> bool {
        self.running()
    }

    /// Kills the server and starts it again on the same ports with the same
    /// data directory, then waits until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Kills the server (SIGKILL) so clients see ClickHouse as unreachable.
    /// Does nothing if it is not running.
    pub fn stop(&mut self) {
        self.kill_now();
    }

    /// Starts the server again after [`ClickHouseServer::stop`], on the same
    /// ports and data directory, and waits until it is ready.
    ///
    /// # Panics
    ///
    /// Panics if the server is already running, or does not answer `/ping`
    /// within 60 s.
    pub fn start_again(&mut self) {
        self.start_once_more();
    }

    /// Runs `sql` over the HTTP interface and returns the response body
    /// (for `SELECT`s, tab-separated rows with a trailing newline).
    ///
    /// # Panics
    ///
    /// Panics with the server's error text when the status is not 200, or
    /// when the server cannot be reached.
    pub fn query(&self, sql: &str) -> String {
        match self.try_query(sql) {
            Ok(body) => body,
            Err(err) => panic!("ClickHouse query failed: {sql}\n{err}"),
        }
    }

    /// Runs `sql` over the HTTP interface: `Ok(body)` for status 200,
    /// `Err` with the status and error text otherwise (or the I/O error when
    /// the server cannot be reached).
    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        match http::request(self.http_port, "POST", "/", sql, QUERY_TIMEOUT) {
            Ok(response) if response.status == 200 => Ok(response.body),
            Ok(response) => Err(format!("status {}: {}", response.status, response.body)),
            Err(err) => Err(format!("request to {} failed: {err}", self.http_url())),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.xml")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("clickhouse-server.log")
    }

    fn err_log_path(&self) -> PathBuf {
        self.dir.path().join("clickhouse-server.err.log")
    }

    fn console_path(&self) -> PathBuf {
        self.dir.path().join("console.log")
    }

    /// The server config. Directory paths end in `/` because ClickHouse
    /// concatenates file names onto them. No interserver port is set, so
    /// none is opened; replication is not used in tests.
    fn config_xml(&self) -> String {
        let data = dir_path(&self.data_dir());
        format!(
            r#"<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>{log}</log>
        <errorlog>{err_log}</errorlog>
        <size>100M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <max_connections>256</max_connections>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>536870912</mark_cache_size>
    <path>{data}</path>
    <tmp_path>{data}tmp/</tmp_path>
    <user_files_path>{data}user_files/</user_files_path>
    <format_schema_path>{data}format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    {remote_servers}
</yandex>
"#,
            log = xml_escape(&self.log_path().display().to_string()),
            err_log = xml_escape(&self.err_log_path().display().to_string()),
            http_port = self.http_port,
            tcp_port = self.tcp_port,
            data = xml_escape(&data),
            remote_servers = self.remote_servers,
        )
    }

    /// Polls `GET /ping` until the body is `Ok.`.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child::reap_if_exited(&mut self.child) {
                panic!(
                    "clickhouse-server exited during startup with {status}\n{}",
                    self.logs()
                );
            }
            let ping = http::request(self.http_port, "GET", "/ping", "", Duration::from_secs(1));
            if matches!(ping, Ok(ref response) if response.status == 200 && response.body.trim() == "Ok.")
            {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "clickhouse-server on port {} not ready after {READY_TIMEOUT:?} (last ping: {ping:?})\n{}",
                    self.http_port,
                    self.logs()
                );
            }
            std::thread::sleep(READY_POLL);
        }
    }
}

impl Restartable for ClickHouseServer {
    const PROGRAM: &'static str = "clickhouse-server";

    fn slot(&mut self) -> &mut Option<Child> {
        &mut self.child
    }

    fn port(&self) -> u16 {
        self.http_port
    }

    fn spawn(&self) -> Child {
        let (program, leading_args) = clickhouse_server_command();
        let console = self.console_path();
        let mut command = Command::new(program);
        child::prepare(&mut command)
            .args(leading_args)
            .arg(format!("--config-file={}", self.config_path().display()))
            // Run from the temp dir: some versions resolve relative paths
            // and write stray files relative to the working directory.
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(append(&console))
            .stderr(append(&console))
            .spawn()
            .expect("spawn clickhouse-server")
    }

    fn wait_ready(&mut self) {
        ClickHouseServer::wait_ready(self);
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "==== logs of clickhouse-server on port {} ====\n{}",
                self.http_port,
                self.logs()
            );
        }
    }
}

/// The `default` user with an empty password, reachable from anywhere,
/// using the `default` profile and quota. Empty `<profiles>`/`<quotas>`
/// entries are enough: every setting keeps its built-in default.
const USERS_XML: &str = r#"<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>::/0</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
        </default>
    </quotas>
</yandex>
"#;

/// The program and leading arguments that run the server:
/// `CLICKHOUSE_SERVER_BIN` if set, else Debian's `/usr/sbin/clickhouse-server`,
/// else `clickhouse-server` on `PATH`, else the single `clickhouse` binary of
/// current releases with its `server` subcommand.
fn clickhouse_server_command() -> (PathBuf, Vec<&'static str>) {
    let candidate = std::env::var_os("CLICKHOUSE_SERVER_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            let debian = PathBuf::from("/usr/sbin/clickhouse-server");
            debian.is_file().then_some(debian)
        })
        .or_else(|| bin::find_on_path("clickhouse-server"))
        .or_else(|| bin::find_on_path("clickhouse"))
        .expect(
            "clickhouse-server not found: install it (apt-get install clickhouse-server) \
             or set CLICKHOUSE_SERVER_BIN",
        );
    let is_multitool = candidate
        .file_name()
        .is_some_and(|name| name == "clickhouse");
    let leading_args = if is_multitool { vec!["server"] } else { vec![] };
    (candidate, leading_args)
}

/// `path` as a string ending in `/`.
fn dir_path(path: &Path) -> String {
    let mut text = path.display().to_string();
    if !text.ends_with('/') {
        text.push('/');
    }
    text
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::ClickHouseServer;
    use std::net::TcpStream;

    #[test]
    fn answers_queries_and_tables_survive_restart() {
        let mut server = ClickHouseServer::start();
        assert_eq!(server.query("SELECT 1"), "1\n");

        server.query("CREATE TABLE kept (id UInt32, name String) ENGINE = MergeTree ORDER BY id");
        server.query("INSERT INTO kept VALUES (1, 'one'), (2, 'two')");

        let (http_port, tcp_port) = (server.http_port(), server.tcp_port());
        server.restart();
        assert_eq!(
            (server.http_port(), server.tcp_port()),
            (http_port, tcp_port)
        );
        assert_eq!(
            server.query("SELECT id, name FROM kept ORDER BY id"),
            "1\tone\n2\ttwo\n"
        );
        TcpStream::connect(("127.0.0.1", server.tcp_port())).unwrap();
    }

    #[test]
    fn query_error_carries_the_server_message() {
        let server = ClickHouseServer::start();
        let err = server.try_query("SELECT no_such_column").unwrap_err();
        assert!(err.contains("no_such_column"), "{err}");
        let panicked = std::panic::catch_unwind(|| server.query("SELECT * FROM missing_table"));
        assert!(panicked.is_err());
    }

    #[test]
    fn stop_makes_it_unreachable_and_start_again_brings_it_back() {
        let mut server = ClickHouseServer::start();
        server.query("CREATE TABLE t (x UInt8) ENGINE = TinyLog");
        server.stop();
        assert!(!server.is_running());
        assert!(server.try_query("SELECT 1").is_err());
        server.start_again();
        assert!(server.is_running());
        assert_eq!(server.query("EXISTS TABLE t"), "1\n");
    }

    #[test]
    fn shards_reach_each_other_through_a_distributed_table() {
        let shards = ClickHouseServer::start_shards("pair", 2);
        for shard in &shards {
            shard.query("CREATE TABLE t (x UInt32) ENGINE = MergeTree ORDER BY x");
            shard.query("CREATE TABLE t_all AS t ENGINE = Distributed(pair, default, t, x)");
        }
        shards[0].query("INSERT INTO t VALUES (1)");
        shards[1].query("INSERT INTO t VALUES (2), (3)");
        assert_eq!(shards[0].query("SELECT count() FROM t_all"), "3\n");
        assert_eq!(shards[1].query("SELECT sum(x) FROM t_all"), "6\n");
    }

    #[test]
    fn two_servers_run_side_by_side() {
        let first = ClickHouseServer::start();
        let second = ClickHouseServer::start();
        assert_ne!(first.http_port(), second.http_port());
        first.query("CREATE TABLE only_in_first (x UInt8) ENGINE = TinyLog");
        assert_eq!(first.query("EXISTS TABLE only_in_first"), "1\n");
        assert_eq!(second.query("EXISTS TABLE only_in_first"), "0\n");
    }
}
