//! Handling of the one child process each server or daemon handle owns
//! (`None` while stopped).

use std::process::{Child, ExitStatus};

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
