//! One module per subcommand. Each does its I/O and hands plain data to
//! [`crate::output`] for rendering.

pub mod apply;
pub mod bus;
pub mod sla;
pub mod status;
pub mod tail;
pub mod validate;

use beacon_core::connect::{connect_once, NatsArgs};

use crate::exit::CtlError;

/// Client name the CLI shows up as in the server's connection list.
const CLIENT_NAME: &str = "beaconctl";

/// One connection attempt: an operator at a terminal wants a prompt error,
/// not a retry loop.
async fn connect(nats: &NatsArgs) -> Result<async_nats::Client, CtlError> {
    Ok(connect_once(nats, CLIENT_NAME).await?)
}
