//! Live updates: Server-Sent Events at `events` of every page. Each page
//! has a watch channel holding its latest `status` event (built from the
//! version's `live.json`); a client gets the current one at once and every
//! later one as its page changes. A watch keeps only the latest value, so
//! a slow client skips to the newest state instead of queueing old ones,
//! and 10,000 clients cost one value and 10,000 wakers.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use hyper::body::Frame;
use prometheus::IntGauge;
use tokio::sync::watch;

use crate::site::Version;

/// How often an idle stream carries a comment, so proxies and the client
/// notice a dead connection.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// One frame of an event stream.
pub type FrameStream =
    Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, std::convert::Infallible>> + Send>>;

/// The latest event of every page.
pub struct Hub {
    pages: Mutex<HashMap<String, watch::Sender<Bytes>>>,
    clients: IntGauge,
}

/// The `status` event for a version: its `live.json`, on one line.
pub fn event_for(version: &Version) -> Bytes {
    let data = version
        .files
        .get("live.json")
        .and_then(|f| serde_json::from_slice::<serde_json::Value>(&f.identity.body).ok())
        .map(|v| v.to_string())
        .unwrap_or_else(|| "{}".to_owned());
    Bytes::from(format!(
        "id: {}\nevent: status\ndata: {data}\n\n",
        version.id
    ))
}

/// Decrements the client gauge when a stream ends, however it ends.
struct ClientGuard(IntGauge);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Hub {
    /// An empty hub counting clients in `clients`.
    pub fn new(clients: IntGauge) -> Self {
        Self {
            pages: Mutex::new(HashMap::new()),
            clients,
        }
    }

    /// Publishes a page's new version to its clients.
    pub fn publish(&self, page: &str, version: &Version) {
        let event = event_for(version);
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        match pages.get(page) {
            Some(sender) => {
                sender.send_replace(event);
            }
            None => {
                pages.insert(page.to_owned(), watch::channel(event).0);
            }
        }
    }

    /// Clients connected now.
    pub fn clients(&self) -> i64 {
        self.clients.get()
    }

    /// An event stream for `page`: the current event, then each new one,
    /// with heartbeats in between; `None` when the page has no event yet.
    pub fn subscribe(self: &Arc<Self>, page: &str) -> Option<FrameStream> {
        let receiver = {
            let pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
            pages.get(page)?.subscribe()
        };
        self.clients.inc();
        let guard = ClientGuard(self.clients.clone());
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let state = (receiver, true, heartbeat, guard);
        let stream = futures::stream::unfold(
            state,
            |(mut receiver, first, mut heartbeat, guard)| async move {
                if first {
                    // Reconnecting clients wait 2 s; the first event is now.
                    let current = receiver.borrow_and_update().clone();
                    let mut frame = b"retry: 2000\n\n".to_vec();
                    frame.extend_from_slice(&current);
                    heartbeat.reset();
                    return Some((
                        Ok(Frame::data(Bytes::from(frame))),
                        (receiver, false, heartbeat, guard),
                    ));
                }
                let frame = tokio::select! {
                    changed = receiver.changed() => match changed {
                        Ok(()) => receiver.borrow_and_update().clone(),
                        Err(_) => return None,
                    },
                    _ = heartbeat.tick() => Bytes::from_static(b": keep-alive\n\n"),
                };
                Some((Ok(Frame::data(frame)), (receiver, false, heartbeat, guard)))
            },
        );
        Some(Box::pin(stream))
    }
}
