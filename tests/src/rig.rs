//! A decider with real probes on a private NATS server, and the ways a test
//! reads what it decided: the STATUS stream, KV `status`, incidents, probe
//! verdicts, and `beaconctl` run as a process.

use std::process::Output;
use std::time::Duration;

use async_nats::jetstream;
use beacon_contract::event::Envelope;
use beacon_contract::messages::{ComponentStatus, ProbeVerdict, StatusChange, StatusRecord};
use beacon_contract::names::{status_key, KV_STATUS, STREAM_PROBES, STREAM_STATUS};
use beacon_runtime::history;
use beacon_testkit::{wait_until, DaemonProcess, NatsServer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{apply_config, DECIDE, READY};

/// NATS, one or more deciders and a probe per region.
pub struct Rig {
    /// The server; tests may restart it.
    pub nats: NatsServer,
    /// A client for reading and writing the bus directly.
    pub client: async_nats::Client,
    /// JetStream on that client.
    pub js: jetstream::Context,
    /// Deciders, in start order.
    pub deciders: Vec<DaemonProcess>,
    /// Probes, by region.
    pub probes: Vec<(String, DaemonProcess)>,
}

impl Rig {
    /// Starts NATS, a decider (with `decider_args`) and a probe for each
    /// region, and waits until they are ready.
    pub async fn start(regions: &[&str], decider_args: &[&str]) -> Rig {
        let nats = NatsServer::start();
        let mut args = vec!["--nats-url".to_owned(), nats.url()];
        args.extend(decider_args.iter().map(|a| a.to_string()));
        let decider = DaemonProcess::spawn_with_admin("beacon-decider", args);
        let probes: Vec<(String, DaemonProcess)> = regions
            .iter()
            .map(|region| {
                let probe = DaemonProcess::spawn_with_admin(
                    "beacon-probe",
                    vec![
                        "--nats-url".into(),
                        nats.url(),
                        "--region".into(),
                        region.to_string(),
                    ],
                );
                (region.to_string(), probe)
            })
            .collect();
        decider.wait_ready(READY).await;
        for (_, probe) in &probes {
            probe.wait_ready(READY).await;
        }
        let client = async_nats::connect(nats.url())
            .await
            .expect("connect to NATS");
        let js = jetstream::new(client.clone());
        Rig {
            nats,
            client,
            js,
            deciders: vec![decider],
            probes,
        }
    }

    /// Applies a page config through the decider.
    pub async fn apply(&self, toml_text: &str) {
        apply_config(&self.client, toml_text).await;
    }

    /// Every STATUS event of `page`.`component`, in stream order.
    pub async fn status_events(&self, page: &str, component: &str) -> Vec<Envelope<StatusChange>> {
        let subject = beacon_contract::names::status_subject(page, component);
        history::read(&self.js, STREAM_STATUS, &subject)
            .await
            .expect("read STATUS")
            .iter()
            .map(|m| Envelope::decode(&m.payload).expect("a STATUS event"))
            .collect()
    }

    /// The stored status record of a component.
    pub async fn record(&self, page: &str, component: &str) -> Option<StatusRecord> {
        let kv = self
            .js
            .get_key_value(KV_STATUS)
            .await
            .expect("open KV status");
        let bytes = kv
            .get(status_key(page, component))
            .await
            .expect("read KV status")?;
        Some(
            Envelope::<StatusRecord>::decode(&bytes)
                .expect("a status record")
                .data,
        )
    }

    /// Waits until the component's latest STATUS event satisfies `want`
    /// and returns it.
    pub async fn wait_event(
        &self,
        what: &str,
        page: &str,
        component: &str,
        want: impl Fn(&StatusChange) -> bool,
    ) -> StatusChange {
        wait_until(what, DECIDE, || {
            let events = self.status_events(page, component);
            let want = &want;
            async move {
                events
                    .await
                    .last()
                    .map(|e| e.data.clone())
                    .filter(|e| want(e))
            }
        })
        .await
    }

    /// Waits for the component's latest STATUS event to be `status`.
    pub async fn wait_status(
        &self,
        page: &str,
        component: &str,
        status: ComponentStatus,
    ) -> StatusChange {
        self.wait_event(
            &format!("{page}/{component} to be {}", status.as_str()),
            page,
            component,
            |e| e.to == status,
        )
        .await
    }

    /// Every probe verdict published so far.
    pub async fn verdicts(&self) -> Vec<ProbeVerdict> {
        history::read(
            &self.js,
            STREAM_PROBES,
            beacon_contract::names::ALL_PROBE_VERDICTS,
        )
        .await
        .expect("read PROBES")
        .iter()
        .map(|m| {
            Envelope::<ProbeVerdict>::decode(&m.payload)
                .expect("a verdict")
                .data
        })
        .collect()
    }

    /// Runs `beaconctl --nats-url … ARGS` and returns its output.
    pub async fn ctl(&self, args: &[&str]) -> Output {
        beacon_testkit::ctl::run(&self.nats.url(), args).await
    }

    /// Runs `beaconctl … ARGS --output json`, expects success, returns the JSON.
    pub async fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let output = self.ctl(&all).await;
        assert!(
            output.status.success(),
            "beaconctl {args:?} failed ({:?}): {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("beaconctl printed JSON")
    }
}

/// A TCP service that accepts connections and never answers: a check of it
/// times out.
pub struct Blackhole {
    port: u16,
    task: JoinHandle<()>,
}

impl Blackhole {
    /// Starts it.
    pub async fn start() -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind blackhole");
        let port = listener.local_addr().expect("blackhole addr").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                // Read and never reply; keep the socket open.
                let mut buffer = [0u8; 1024];
                let _ =
                    tokio::time::timeout(Duration::from_millis(10), socket.read(&mut buffer)).await;
                held.push(socket);
            }
        });
        Blackhole { port, task }
    }

    /// An HTTP URL on it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts of a metric in a daemon's `/metrics`, by its full line prefix
/// (name and labels), e.g. `beacon_decider_results_ignored_total{reason="future"}`.
pub async fn metric(admin_url: &str, line_prefix: &str) -> f64 {
    let Some((_, body)) = crate::get(&format!("{admin_url}/metrics")).await else {
        return 0.0;
    };
    body.lines()
        .filter(|line| line.starts_with(line_prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
