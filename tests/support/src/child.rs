//! Handling of the one child process each server or daemon handle owns
//! (`None` while stopped), and the one stop / start-again / restart that
//! `nats-server` and `clickhouse-server` share ([`Restartable`]).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether children start in process groups of their own.
static OWN_GROUPS: AtomicBool = AtomicBool::new(false);

/// From now on, every server and daemon starts in a process group of its
/// own, so a Ctrl-C at the terminal reaches only this process, which then
/// stops them in order (daemons first, NATS last). For the demo; tests
/// leave it off, so an interrupted test run takes its children with it.
pub fn own_process_groups() {
    OWN_GROUPS.store(true, Ordering::SeqCst);
}

/// Applies [`own_process_groups`] to a command about to be spawned.
pub(crate) fn prepare(command: &mut Command) -> &mut Command {
    if OWN_GROUPS.load(Ordering::SeqCst) {
        command.process_group(0);
    }
    command
}

/// A server the tests can kill and start again on the same ports and data.
pub(crate) trait Restartable {
    /// The program's name, for messages.
    const PROGRAM: &'static str;

    /// The slot of the running process.
    fn slot(&mut self) -> &mut Option<Child>;

    /// The port that names this server in messages.
    fn port(&self) -> u16;

    /// Starts the process on the same ports and data directory.
    fn spawn(&self) -> Child;

    /// Waits until the started process answers.
    fn wait_ready(&mut self);

    /// Whether the process is running (started and not stopped).
    fn running(&mut self) -> bool {
        is_running(self.slot())
    }

    /// Kills the process (SIGKILL), so clients see the server as
    /// unreachable. Does nothing if it is not running.
    fn kill_now(&mut self) {
        kill(self.slot(), Self::PROGRAM);
    }

    /// Starts the process again after [`Restartable::kill_now`] and waits
    /// until it is ready. Panics if it is already running.
    fn start_once_more(&mut self) {
        let port = self.port();
        assert!(
            self.slot().is_none(),
            "{} on port {port} is already running",
            Self::PROGRAM
        );
        let child = self.spawn();
        *self.slot() = Some(child);
        self.wait_ready();
    }
}

/// Whether the child is started and still running.
pub(crate) fn is_running(child: &mut Option<Child>) -> bool {
    match child.as_mut() {
        Some(child) => matches!(child.try_wait(), Ok(None)),
        None => false,
    }
}

/// Reaps the child if it has exited, clearing the slot; its exit status if so.
pub(crate) fn reap_if_exited(child: &mut Option<Child>) -> Option<ExitStatus> {
    let status = child.as_mut().and_then(|c| c.try_wait().ok().flatten())?;
    *child = None;
    Some(status)
}

/// Kills (SIGKILL) and reaps the child if it is running; its exit status if so.
pub(crate) fn kill(child: &mut Option<Child>, what: &str) -> Option<ExitStatus> {
    let mut child = child.take()?;
    // An error here means the process already exited, which is the state we
    // want anyway; `wait` still reaps it.
    let _ = child.kill();
    Some(
        child
            .wait()
            .unwrap_or_else(|e| panic!("wait for {what} to exit: {e}")),
    )
}
