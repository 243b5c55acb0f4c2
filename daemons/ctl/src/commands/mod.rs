//! One module per subcommand. Each does its I/O and hands plain data to
//! [`crate::output`] for rendering.

pub mod apikey;
pub mod apply;
pub mod bus;
pub mod changelog;
pub mod component;
pub mod emergency;
pub mod incident;
pub mod maintenance;
pub mod sla;
pub mod status;
pub mod subscriber;
pub mod tail;
pub mod validate;

use beacon_runtime::connect::{connect_once, NatsArgs};

use crate::exit::CtlError;

/// Client name the CLI shows up as in the server's connection list.
const CLIENT_NAME: &str = "beaconctl";

/// One connection attempt: an operator at a terminal wants a prompt error,
/// not a retry loop.
async fn connect(nats: &NatsArgs) -> Result<async_nats::Client, CtlError> {
    Ok(connect_once(nats, CLIENT_NAME).await?)
}

/// Parses a word of an enum by its wire names (`major_outage`), or says
/// which words there are.
fn parse_word<T: Copy>(
    flag: &'static str,
    text: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, CtlError> {
    all.iter()
        .copied()
        .find(|v| name(*v) == text)
        .ok_or_else(|| CtlError::BadArgument {
            flag,
            reason: format!(
                "{text:?} is not one of {}",
                all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", ")
            ),
        })
}

/// Checks an id given on the command line.
fn check_id(flag: &'static str, id: &str) -> Result<(), CtlError> {
    beacon_contract::names::check_token(id).map_err(|e| CtlError::BadArgument {
        flag,
        reason: format!("{id:?} {e}"),
    })
}
