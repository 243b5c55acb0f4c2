//! The whole stack as real processes, with a fault proxy on every daemon's
//! connection to NATS and on the recorder's to ClickHouse, and the faults
//! of a [`Fault`](super::plan::Fault) applied to it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use beacon_testkit::proxy::FaultProxy;
use beacon_testkit::{ClickHouseServer, DaemonProcess, NatsServer};

use super::plan::{Daemon, Fault, FaultKind, Victim};
use crate::error::LoadError;
use crate::progress;

/// How long a daemon may take to report ready after a (re)start.
const READY: Duration = Duration::from_secs(60);

/// The running stack.
pub struct Stack {
    /// The NATS server (the workload and the checker connect to it directly).
    pub nats: NatsServer,
    /// The ClickHouse server (the checker queries it directly).
    pub clickhouse: ClickHouseServer,
    daemons: BTreeMap<Daemon, DaemonProcess>,
    nats_links: BTreeMap<Daemon, FaultProxy>,
    clickhouse_link: FaultProxy,
    /// Where the publisher writes; kept for its whole life.
    origin: tempfile::TempDir,
}

fn blocking<T>(what: &str, work: impl FnOnce() -> T) -> Result<T, LoadError> {
    // The test kit blocks while it waits and panics when a server cannot
    // start; both belong off the async workers, and a panic is an error.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tokio::task::block_in_place(work)
    }))
    .map_err(|_| LoadError::Unexpected(format!("{what} failed (see the log above)")))
}

impl Stack {
    /// Starts NATS and ClickHouse, one proxy per link, and every daemon;
    /// waits until every daemon is ready. `notifier_args` are the
    /// notifier's flags beyond the bus.
    pub async fn start(notifier_args: Vec<String>) -> Result<Stack, LoadError> {
        progress("Starting nats-server and clickhouse-server.");
        let nats = blocking("starting nats-server", NatsServer::start)?;
        let clickhouse = blocking("starting clickhouse-server", ClickHouseServer::start)?;
        let nats_address: SocketAddr = ([127, 0, 0, 1], nats.port()).into();
        let mut nats_links = BTreeMap::new();
        for daemon in Daemon::ALL {
            nats_links.insert(daemon, FaultProxy::start(nats_address).await);
        }
        let clickhouse_link =
            FaultProxy::start(([127, 0, 0, 1], clickhouse.http_port()).into()).await;
        let origin = tempfile::tempdir()
            .map_err(|e| LoadError::Unexpected(format!("an origin directory: {e}")))?;
        let mut stack = Stack {
            nats,
            clickhouse,
            daemons: BTreeMap::new(),
            nats_links,
            clickhouse_link,
            origin,
        };
        for daemon in Daemon::ALL {
            let mut args = vec![
                "--nats-url".to_owned(),
                stack.nats_links[&daemon].nats_url(),
            ];
            match daemon {
                Daemon::Decider => {}
                Daemon::Notifier => args.extend(notifier_args.iter().cloned()),
                Daemon::Recorder => args.extend([
                    "--clickhouse-url".to_owned(),
                    stack.clickhouse_link.http_url(),
                ]),
                Daemon::Publisher => args.extend([
                    "--origin".to_owned(),
                    stack.origin.path().display().to_string(),
                ]),
            }
            let process = blocking("spawning a daemon", || {
                DaemonProcess::spawn_with_admin(daemon.binary(), args)
            })?;
            stack.daemons.insert(daemon, process);
        }
        for (daemon, process) in &stack.daemons {
            progress(&format!("Waiting for the {} to be ready.", daemon.as_str()));
            process.wait_ready(READY).await;
        }
        Ok(stack)
    }

    /// The admin URL (`/metrics`, `/readyz`) of `daemon`.
    pub fn admin_url(&self, daemon: Daemon) -> String {
        self.daemons[&daemon].admin_url()
    }

    /// Strikes with `fault` and repairs it after its hold. A daemon killed
    /// or paused is running again afterwards; a server restarted is ready.
    pub async fn strike(&mut self, fault: &Fault) -> Result<(), LoadError> {
        match (fault.kind, fault.victim) {
            (FaultKind::Kill, Victim::Daemon(daemon)) => {
                let process = self.process(daemon)?;
                blocking("kill -9", || process.kill())?;
                tokio::time::sleep(fault.hold).await;
                blocking("restarting a daemon", || process.restart())?;
            }
            (FaultKind::Pause, Victim::Daemon(daemon)) => {
                let pid = self.process(daemon)?.pid();
                signal(pid, "-STOP");
                tokio::time::sleep(fault.hold).await;
                signal(pid, "-CONT");
            }
            (FaultKind::Cut, victim) => self.link(victim)?.cut(),
            (FaultKind::Partition, victim) => {
                let link = self.link(victim)?;
                link.refuse(true);
                link.cut();
                tokio::time::sleep(fault.hold).await;
                link.refuse(false);
            }
            (FaultKind::NatsRestart, _) => {
                let nats = &mut self.nats;
                blocking("stopping nats-server", || nats.stop())?;
                tokio::time::sleep(fault.hold).await;
                blocking("starting nats-server again", || nats.start_again())?;
            }
            (FaultKind::ClickHouseRestart, _) => {
                let clickhouse = &mut self.clickhouse;
                blocking("stopping clickhouse-server", || clickhouse.stop())?;
                tokio::time::sleep(fault.hold).await;
                blocking("starting clickhouse-server again", || {
                    clickhouse.start_again()
                })?;
            }
            (kind, victim) => {
                return Err(LoadError::Unexpected(format!(
                    "a {} fault cannot strike {victim}",
                    kind.as_str()
                )))
            }
        }
        Ok(())
    }

    fn process(&mut self, daemon: Daemon) -> Result<&mut DaemonProcess, LoadError> {
        self.daemons
            .get_mut(&daemon)
            .ok_or_else(|| LoadError::Unexpected(format!("no {} in the stack", daemon.as_str())))
    }

    fn link(&self, victim: Victim) -> Result<&FaultProxy, LoadError> {
        match victim {
            Victim::NatsLink(daemon) => self.nats_links.get(&daemon).ok_or_else(|| {
                LoadError::Unexpected(format!("no link for the {}", daemon.as_str()))
            }),
            Victim::ClickHouseLink => Ok(&self.clickhouse_link),
            other => Err(LoadError::Unexpected(format!("{other} is not a link"))),
        }
    }

    /// Daemons that are not running (none should be: every fault repairs
    /// itself, so one that is down exited by itself), and daemons whose
    /// log shows a panic.
    pub fn casualties(&mut self) -> Vec<String> {
        let mut found = Vec::new();
        for (daemon, process) in &mut self.daemons {
            if let Some(status) = process.exit_status() {
                found.push(format!(
                    "the {} exited by itself: {status}",
                    daemon.as_str()
                ));
            }
            if let Some(line) = process.logs().lines().find(|l| l.contains("panicked")) {
                found.push(format!("the {} panicked: {line}", daemon.as_str()));
            }
        }
        found
    }

    /// Every daemon's log, for `--logs`.
    pub fn logs(&self) -> BTreeMap<&'static str, String> {
        self.daemons
            .iter()
            .map(|(daemon, process)| (daemon.as_str(), process.logs()))
            .collect()
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) with `kill(1)`: the workspace forbids
/// unsafe code. A daemon that has gone away meanwhile is not an error here;
/// the end of the run finds it.
fn signal(pid: Option<u32>, signal: &str) {
    let Some(pid) = pid else {
        return;
    };
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
