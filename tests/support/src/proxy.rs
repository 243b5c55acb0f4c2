//! A TCP proxy that tests put between a daemon and a server (NATS,
//! ClickHouse, or two NATS servers) to inject faults on command: added
//! latency, a stall (bytes held, connections kept), refusing new
//! connections, and cutting every open one.
//!
//! Faults apply to both directions and to connections already open. The
//! proxy listens on a free loopback port until it is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to traffic right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Faults {
    /// Added to every chunk forwarded, in each direction.
    pub latency: Duration,
    /// Bytes are held (not forwarded, not dropped) until this is cleared.
    pub stalled: bool,
    /// New connections are closed at once.
    pub refusing: bool,
    /// Bumped by [`FaultProxy::cut`]: connections opened before are closed.
    pub cuts: u64,
}

/// A running proxy; see the module doc.
pub struct FaultProxy {
    address: SocketAddr,
    faults: Arc<watch::Sender<Faults>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `target` on a free loopback port.
    ///
    /// # Panics
    ///
    /// Panics if no loopback port can be bound.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let address = listener.local_addr().expect("proxy address");
        let (faults, _) = watch::channel(Faults::default());
        let faults = Arc::new(faults);
        let task = tokio::spawn(accept(listener, target, faults.clone()));
        FaultProxy {
            address,
            faults,
            task,
        }
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `nats://` URL of the proxy, for a NATS client or daemon.
    pub fn nats_url(&self) -> String {
        format!("nats://{}", self.address)
    }

    /// `http://` URL of the proxy, for a ClickHouse client or daemon.
    pub fn http_url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        *self.faults.borrow()
    }

    /// Adds `latency` to every chunk in each direction (zero: none).
    pub fn set_latency(&self, latency: Duration) {
        self.faults.send_modify(|f| f.latency = latency);
    }

    /// Holds every byte until [`FaultProxy::resume`]; connections stay open.
    pub fn stall(&self) {
        self.faults.send_modify(|f| f.stalled = true);
    }

    /// Forwards again what a stall held, and everything after.
    pub fn resume(&self) {
        self.faults.send_modify(|f| f.stalled = false);
    }

    /// Closes new connections at once (`true`) or accepts them again.
    pub fn refuse(&self, refusing: bool) {
        self.faults.send_modify(|f| f.refusing = refusing);
    }

    /// Closes every connection open now; later ones are not affected.
    pub fn cut(&self) {
        self.faults.send_modify(|f| f.cuts += 1);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Open connections end with their generation: one more cut.
        self.faults.send_modify(|f| f.cuts += 1);
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, faults: Arc<watch::Sender<Faults>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let now = *faults.borrow();
        if now.refusing {
            drop(client);
            continue;
        }
        let faults = faults.subscribe();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let generation = now.cuts;
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let up = pipe(client_read, server_write, faults.clone(), generation);
            let down = pipe(server_read, client_write, faults, generation);
            // Either direction ending (a cut, a close) ends both.
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
        });
    }
}

/// Forwards `from` to `to` under the faults in force, until either side
/// closes or the connection's generation is cut.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut faults: watch::Receiver<Faults>,
    generation: u64,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = cut(&mut faults, generation) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Hold the bytes while stalled; a cut still ends the connection.
        loop {
            let now = *faults.borrow_and_update();
            if now.cuts != generation {
                return;
            }
            if !now.stalled {
                if !now.latency.is_zero() {
                    tokio::time::sleep(now.latency).await;
                }
                break;
            }
            if faults.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// Resolves once the connection of `generation` is cut.
async fn cut(faults: &mut watch::Receiver<Faults>, generation: u64) {
    loop {
        if faults.borrow_and_update().cuts != generation {
            return;
        }
        if faults.changed().await.is_err() {
            // The proxy is gone: treat it as a cut.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    async fn round_trip(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
        stream.write_all(b"ping").await.ok()?;
        let mut answer = [0u8; 4];
        tokio::time::timeout(within, stream.read_exact(&mut answer))
            .await
            .ok()?
            .ok()?;
        Some(answer.to_vec())
    }

    #[tokio::test]
    async fn it_forwards_stalls_resumes_cuts_and_refuses() {
        let proxy = FaultProxy::start(echo().await).await;
        let mut stream = TcpStream::connect(proxy.address()).await.expect("connect");
        let quick = Duration::from_secs(5);
        assert_eq!(
            round_trip(&mut stream, quick).await.as_deref(),
            Some(&b"ping"[..])
        );

        // A stall holds the bytes; a resume delivers them.
        proxy.stall();
        assert!(round_trip(&mut stream, Duration::from_millis(300))
            .await
            .is_none());
        proxy.resume();
        let mut held = [0u8; 4];
        tokio::time::timeout(quick, stream.read_exact(&mut held))
            .await
            .expect("delivered after the resume")
            .expect("read");
        assert_eq!(&held, b"ping");

        // Latency delays without losing anything.
        proxy.set_latency(Duration::from_millis(200));
        let started = std::time::Instant::now();
        assert!(round_trip(&mut stream, quick).await.is_some());
        assert!(started.elapsed() >= Duration::from_millis(400));
        proxy.set_latency(Duration::ZERO);

        // A cut closes what is open; a new connection works.
        proxy.cut();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(quick, stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the cut closed the connection");
        let mut again = TcpStream::connect(proxy.address()).await.expect("connect");
        assert!(round_trip(&mut again, quick).await.is_some());

        // Refusing closes new connections at once.
        proxy.refuse(true);
        let mut refused = TcpStream::connect(proxy.address()).await.expect("connect");
        assert!(round_trip(&mut refused, Duration::from_millis(500))
            .await
            .is_none());
        proxy.refuse(false);
        let mut accepted = TcpStream::connect(proxy.address()).await.expect("connect");
        assert!(round_trip(&mut accepted, quick).await.is_some());
    }
}
