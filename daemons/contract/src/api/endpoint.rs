//! A bus API endpoint declared once: its subject, the daemon that owns it,
//! and the types of its request and reply.
//!
//! The server (`beacon_runtime::service::Router`), every client (beaconctl,
//! the api daemon) and the schema generator read the same constant, so a
//! client cannot send a request of the wrong type or expect the wrong reply,
//! and no subject is spelled anywhere else.

use std::fmt;
use std::marker::PhantomData;

use crate::names::api::GROUP;

/// An endpoint under [`GROUP`] taking `Req` and answering
/// [`ApiReply<Res>`](super::ApiReply).
pub struct Endpoint<Req, Res> {
    subject: &'static str,
    owner: &'static str,
    types: PhantomData<fn(Req) -> Res>,
}

impl<Req, Res> Endpoint<Req, Res> {
    /// Declares the endpoint `subject` (which must start with
    /// `beacon.api.`), served by `owner` (a daemon's name, for messages).
    pub const fn new(subject: &'static str, owner: &'static str) -> Self {
        Self {
            subject,
            owner,
            types: PhantomData,
        }
    }

    /// The request subject, e.g. `beacon.api.component.set`.
    pub const fn subject(&self) -> &'static str {
        self.subject
    }

    /// The subject within [`GROUP`], e.g. `component.set`: the service
    /// endpoint's name and the `endpoint` label of its metrics.
    pub fn name(&self) -> &'static str {
        self.subject
            .strip_prefix(GROUP)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(self.subject)
    }

    /// The daemon that answers.
    pub const fn owner(&self) -> &'static str {
        self.owner
    }
}

// By hand: derived impls would require `Req` and `Res` to be `Clone`,
// `Copy` and `Debug` themselves, and an endpoint is only a name.
impl<Req, Res> Clone for Endpoint<Req, Res> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req, Res> Copy for Endpoint<Req, Res> {}

impl<Req, Res> fmt::Debug for Endpoint<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("subject", &self.subject)
            .field("owner", &self.owner)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_the_subject_within_the_group() {
        let endpoint: Endpoint<(), ()> = Endpoint::new("beacon.api.component.set", "decider");
        assert_eq!(endpoint.name(), "component.set");
        assert_eq!(endpoint.subject(), "beacon.api.component.set");
        assert_eq!(endpoint.owner(), "decider");
    }
}
