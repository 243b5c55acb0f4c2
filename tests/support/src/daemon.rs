//! The project's own binaries run as real child processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::child;
use crate::logs::append;
use crate::{logs, ports};

/// How long [`DaemonProcess::terminate`] waits after SIGTERM before SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(10);

/// How often exit and readiness are polled.
const POLL: Duration = Duration::from_millis(50);

/// The path of the project binary `name`, as built by cargo.
///
/// Looks in `BEACON_BIN_DIR` if set; otherwise in the directories above the
/// running test executable (tests live in `target/<profile>/deps/`, binaries
/// in `target/<profile>/`); otherwise in `CARGO_TARGET_DIR/<profile>/`.
///
/// # Panics
///
/// Panics with the expected path and the build command when the binary is
/// missing.
pub fn binary(name: &str) -> PathBuf {
    let file_name = format!("{name}{}", std::env::consts::EXE_SUFFIX);

    if let Some(dir) = std::env::var_os("BEACON_BIN_DIR") {
        let path = PathBuf::from(dir).join(&file_name);
        return existing_binary(name, path);
    }

    let exe = std::env::current_exe().expect("locate the running test executable");
    // Three levels cover deps/ -> <profile>/ -> target/; going further
    // would risk matching an unrelated file higher up.
    for dir in exe.ancestors().skip(1).take(3) {
        let path = dir.join(&file_name);
        if path.is_file() {
            return path;
        }
    }

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let expected = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join(profile).join(&file_name),
        None => {
            // The profile directory next to deps/.
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .unwrap_or_else(|| Path::new("target"));
            profile_dir.join(&file_name)
        }
    };
    existing_binary(name, expected)
}

fn existing_binary(name: &str, path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "binary {name} not found at {}: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// The child and, once it has been reaped, its exit status.
struct ProcState {
    child: Option<Child>,
    exited: Option<ExitStatus>,
}

impl ProcState {
    /// Reaps the child if it has exited; returns the exit status if so.
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if let Some(status) = child::reap_if_exited(&mut self.child) {
            self.exited = Some(status);
        }
        self.exited
    }

    /// Kills and reaps the child if it is still running.
    fn kill(&mut self) {
        if let Some(status) = child::kill(&mut self.child, "a killed daemon") {
            self.exited = Some(status);
        }
    }
}

/// One of the project's daemons running as a real process.
///
/// stdout and stderr go to a log file in the process's own temp dir; the
/// command line is kept so [`DaemonProcess::restart`] can run it again.
/// Dropping it kills the process, and prints the log if the test is
/// panicking.
pub struct DaemonProcess {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    /// Extra environment variables (secrets a daemon reads only from its
    /// environment).
    envs: Vec<(String, String)>,
    dir: TempDir,
    admin_url: Option<String>,
    // A mutex rather than `&mut self` so `wait_ready(&self)` can notice
    // that the child died; it is never held across an await.
    state: Mutex<ProcState>,
}

impl DaemonProcess {
    /// Spawns the project binary `name` (see [`binary`]) with `args`.
    pub fn spawn(name: &str, args: Vec<String>) -> DaemonProcess {
        Self::spawn_program(name, binary(name), args, None)
    }

    /// Like [`DaemonProcess::spawn`], but appends
    /// `--admin-addr 127.0.0.1:PORT` with a free port, so
    /// [`DaemonProcess::admin_url`] and [`DaemonProcess::wait_ready`] work.
    pub fn spawn_with_admin(name: &str, args: Vec<String>) -> DaemonProcess {
        Self::spawn_program(name, binary(name), args, Some(ports::free_port()))
    }

    /// Like [`DaemonProcess::spawn_with_admin`], with `envs` added to the
    /// process's environment (every start).
    pub fn spawn_with_admin_env(
        name: &str,
        args: Vec<String>,
        envs: &[(&str, &str)],
    ) -> DaemonProcess {
        let envs = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::spawn_program_with(name, binary(name), args, Some(ports::free_port()), envs)
    }

    pub(crate) fn spawn_program(
        name: &str,
        program: PathBuf,
        args: Vec<String>,
        admin_port: Option<u16>,
    ) -> DaemonProcess {
        Self::spawn_program_with(name, program, args, admin_port, Vec::new())
    }

    fn spawn_program_with(
        name: &str,
        program: PathBuf,
        mut args: Vec<String>,
        admin_port: Option<u16>,
        envs: Vec<(String, String)>,
    ) -> DaemonProcess {
        let dir = tempfile::Builder::new()
            .prefix(&format!("beacon-{name}-"))
            .tempdir()
            .expect("create a temp dir for a daemon");
        let admin_url = admin_port.map(|port| {
            args.push("--admin-addr".to_string());
            args.push(format!("127.0.0.1:{port}"));
            format!("http://127.0.0.1:{port}")
        });
        let daemon = DaemonProcess {
            name: name.to_string(),
            program,
            args,
            envs,
            dir,
            admin_url,
            state: Mutex::new(ProcState {
                child: None,
                exited: None,
            }),
        };
        let child = daemon.spawn_child();
        daemon.state().child = Some(child);
        daemon
    }

    fn spawn_child(&self) -> Child {
        let log_path = self.log_path();
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(self.dir.path())
            .env("BEACON_LOG_FORMAT", "text")
            // Plain text in the log file: escape codes make it hard to read
            // in a panic message.
            .env("NO_COLOR", "1")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(append(&log_path))
            .stderr(append(&log_path));
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        child::prepare(&mut command)
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {} ({}): {err}", self.name, self.program.display()))
    }

    fn state(&self) -> MutexGuard<'_, ProcState> {
        // A poisoned lock only means another thread panicked while holding
        // it; the process state itself is still meaningful.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.name))
    }

    /// The name the daemon was spawned with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command-line arguments, including any `--admin-addr` added.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The daemon's own temp dir, which is also its working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, if the process is running.
    pub fn pid(&self) -> Option<u32> {
        self.state().child.as_ref().map(Child::id)
    }

    /// The admin endpoint base URL, `http://127.0.0.1:PORT`.
    ///
    /// # Panics
    ///
    /// Panics if the daemon was not started with
    /// [`DaemonProcess::spawn_with_admin`].
    pub fn admin_url(&self) -> String {
        self.admin_url.clone().unwrap_or_else(|| {
            panic!(
                "{} was spawned without --admin-addr; use DaemonProcess::spawn_with_admin",
                self.name
            )
        })
    }

    /// Everything the daemon has written to stdout and stderr, across
    /// restarts.
    pub fn logs(&self) -> String {
        logs::read(&self.log_path())
    }

    /// Polls `GET {admin_url}/readyz` until it answers 200.
    ///
    /// # Panics
    ///
    /// Panics with the daemon's log if it exits first or is not ready
    /// within `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) {
        let url = format!("{}/readyz", self.admin_url());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("build an HTTP client");
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.state().poll_exit();
            if let Some(status) = exited {
                panic!(
                    "{} exited with {status} before it was ready\n==== logs of {} ====\n{}",
                    self.name,
                    self.name,
                    self.logs()
                );
            }
            let last = match client.get(&url).send().await {
                Ok(response) if response.status() == reqwest::StatusCode::OK => return,
                Ok(response) => format!("status {}", response.status()),
                Err(err) => format!("error {err}"),
            };
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {url} to answer 200 (last: {last})\n==== logs of {} ====\n{}",
                    self.name,
                    self.logs()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Kills the process with SIGKILL and reaps it. Does nothing if it has
    /// already exited.
    pub fn kill(&mut self) {
        self.state().kill();
    }

    /// Asks the process to shut down with SIGTERM, waits up to 10 s for it
    /// to exit, then kills it. Returns how it exited.
    pub fn terminate(&mut self) -> ExitStatus {
        let Some(pid) = self.pid() else {
            return self
                .exit_status()
                .expect("a daemon that is not running has exited");
        };
        // `kill(1)` rather than libc: the workspace forbids unsafe code. It
        // fails only if the process is already gone, which the wait below
        // observes either way, so its own exit status does not matter.
        let _kill_status = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run kill -TERM");
        let deadline = Instant::now() + TERMINATE_GRACE;
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "{} did not exit within {TERMINATE_GRACE:?} of SIGTERM; killing it",
                    self.name
                );
                let mut state = self.state();
                state.kill();
                return state.exited.expect("killed daemon has an exit status");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Kills the process if it is running and starts it again with the same
    /// command line (and admin port), appending to the same log.
    /// Call [`DaemonProcess::wait_ready`] afterwards if needed.
    pub fn restart(&mut self) {
        self.kill();
        let mut log = append(&self.log_path());
        // A marker so the log shows where one run ends and the next begins.
        let _ = std::io::Write::write_all(
            &mut log,
            format!("==== restarting {} ====\n", self.name).as_bytes(),
        );
        let child = self.spawn_child();
        let mut state = self.state();
        state.child = Some(child);
        state.exited = None;
    }

    /// How the process exited, or `None` while it is still running.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.state().poll_exit()
    }

    /// Waits for the process to exit on its own and returns how it exited.
    ///
    /// # Panics
    ///
    /// Panics with the daemon's log if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {} to exit\n==== logs of {} ====\n{}",
                    self.name,
                    self.name,
                    self.logs()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        self.state().kill();
        if std::thread::panicking() {
            eprintln!("==== logs of {} ====\n{}", self.name, self.logs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{binary, DaemonProcess};
    use std::io::{Read, Write};
    use std::path::PathBuf;
    use std::time::Duration;

    /// A stand-in daemon: a shell script that logs, and exits cleanly on
    /// SIGTERM. `sleep` runs in the foreground so the trap fires between
    /// naps.
    fn shell(script: &str, admin_port: Option<u16>) -> DaemonProcess {
        DaemonProcess::spawn_program(
            "fake",
            PathBuf::from("/bin/sh"),
            vec!["-c".to_string(), script.to_string()],
            admin_port,
        )
    }

    const LOOPING: &str = r#"trap 'echo got term; exit 0' TERM; echo "started RUST_LOG=$RUST_LOG fmt=$BEACON_LOG_FORMAT"; while true; do sleep 0.05; done"#;

    #[test]
    #[should_panic(expected = "run `cargo build --workspace --bins` first")]
    fn missing_binary_names_the_build_command() {
        binary("beacon-no-such-binary");
    }

    #[test]
    fn terminate_sends_sigterm_and_logs_are_captured() {
        let mut daemon = shell(LOOPING, None);
        daemon.wait_logs_contain("started");
        assert!(daemon.exit_status().is_none());
        let status = daemon.terminate();
        assert!(status.success(), "{status}");
        let logs = daemon.logs();
        assert!(logs.contains("fmt=text"), "{logs}");
        assert!(logs.contains("got term"), "{logs}");
    }

    #[test]
    fn kill_and_restart_reuse_the_command_line() {
        let mut daemon = shell(LOOPING, None);
        daemon.wait_logs_contain("started");
        daemon.kill();
        let status = daemon.exit_status().expect("killed daemon has exited");
        assert!(!status.success());
        daemon.restart();
        assert!(daemon.exit_status().is_none());
        // The marker is written before the respawn, so wait for the second
        // run's own line: only then is its SIGTERM trap installed.
        daemon.wait_logs_contain("==== restarting fake ====\nstarted");
        let status = daemon.terminate();
        assert!(status.success(), "{status}");
        assert_eq!(daemon.logs().matches("started").count(), 2);
    }

    #[test]
    fn wait_exit_returns_the_status() {
        let mut daemon = shell("exit 3", None);
        let status = daemon.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(3));
    }

    #[test]
    fn spawn_with_admin_appends_the_admin_address() {
        let daemon = shell(LOOPING, Some(crate::free_port()));
        let url = daemon.admin_url();
        let addr = url.trim_start_matches("http://");
        assert_eq!(
            daemon.args()[daemon.args().len() - 2..],
            ["--admin-addr", addr]
        );
    }

    #[tokio::test]
    #[should_panic(expected = "exited with exit status: 7 before it was ready")]
    async fn wait_ready_panics_when_the_daemon_dies() {
        let daemon = shell("echo dying; exit 7", Some(crate::free_port()));
        daemon.wait_ready(Duration::from_secs(10)).await;
    }

    #[tokio::test]
    async fn wait_ready_returns_once_readyz_answers_200() {
        // The test plays the daemon's admin server; the child just idles.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let daemon = shell(LOOPING, Some(port));
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let read = stream.read(&mut request).unwrap();
            let request = String::from_utf8_lossy(&request[..read]).into_owned();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .unwrap();
            request
        });
        daemon.wait_ready(Duration::from_secs(10)).await;
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /readyz "), "{request}");
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 300ms waiting for")]
    async fn wait_ready_times_out_with_the_url() {
        let daemon = shell(LOOPING, Some(crate::free_port()));
        daemon.wait_ready(Duration::from_millis(300)).await;
    }

    impl DaemonProcess {
        fn wait_logs_contain(&self, needle: &str) {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !self.logs().contains(needle) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "log never contained {needle:?}: {}",
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
