//! Streams, KV buckets and the object store; [`ensure`] applies them and
//! [`verify`] checks them.
//!
//! Every stream, bucket and object store records the topology version that
//! configured it ([`TOPOLOGY_VERSION`], in the stream's metadata under
//! [`VERSION_KEY`]). [`ensure`] creates what is missing, updates what an
//! older version configured, leaves alone what this version configured, and
//! never touches what a *newer* version configured: during a rolling
//! upgrade an old daemon restarting cannot downgrade the bus. [`verify`]
//! only reads, for daemons whose NATS user may not edit streams; an
//! operator applies the topology with `beaconctl bus ensure`.
//!
//! Bump [`TOPOLOGY_VERSION`] with every change to the settings below; a test
//! pins the settings to the version so a change without a bump fails.

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};

use crate::names::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The version of the settings below. Version 1 was the foundation's
/// (no version recorded); 2 adds the `leases` and `timers` buckets; 3 adds
/// the `PROBES` stream and the `overrides` bucket; 4 the `apikeys` bucket;
/// 5 adds the notifier's `notices`, `ledger` and `suppressions` buckets,
/// and makes `subscribers` a bucket whose messages may be securely erased
/// (GDPR), keeping two revisions so the older can be erased, not just
/// dropped.
pub const TOPOLOGY_VERSION: u32 = 5;

/// Stream metadata key holding the topology version that configured it.
pub const VERSION_KEY: &str = "beacon_topology_version";

/// Retention and replica settings for the whole topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// The version these settings are ([`TOPOLOGY_VERSION`] in this build).
    pub version: u32,
    /// Replicas of every stream and bucket (1 for a single server, 3 in a cluster).
    pub replicas: usize,
    /// How long probe results are kept on the bus (ClickHouse keeps history).
    pub health_max_age: Duration,
    /// How long status changes, receipts and dead letters are kept.
    pub events_max_age: Duration,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            version: TOPOLOGY_VERSION,
            replicas: 1,
            health_max_age: 7 * DAY,
            events_max_age: 365 * DAY,
        }
    }
}

impl Topology {
    /// Configuration of every stream.
    pub fn streams(&self) -> Vec<stream::Config> {
        let stream = |name: &str,
                      subject: &str,
                      max_age: Duration,
                      retention: stream::RetentionPolicy| stream::Config {
            name: name.to_owned(),
            subjects: vec![format!("{SUBJECT_ROOT}.{subject}.>")],
            retention,
            max_age,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: DEDUP_WINDOW,
            ..Default::default()
        };
        use stream::RetentionPolicy::{Limits, WorkQueue};
        vec![
            stream(STREAM_HEALTH, "health", self.health_max_age, Limits),
            stream(STREAM_STATUS, "status", self.events_max_age, Limits),
            // Incidents, maintenance and the changelog are the record of what
            // operators said: kept forever.
            stream(STREAM_INCIDENTS, "incident", Duration::ZERO, Limits),
            stream(STREAM_MAINTENANCE, "maintenance", Duration::ZERO, Limits),
            stream(STREAM_CHANGELOG, "changelog", Duration::ZERO, Limits),
            stream(STREAM_NOTIFY, "notify", 7 * DAY, WorkQueue),
            stream(STREAM_DELIVERIES, "delivery", 30 * DAY, Limits),
            stream(STREAM_DEADLETTER, "deadletter", 30 * DAY, Limits),
            stream(STREAM_PROBES, "probe", 7 * DAY, Limits),
            self.subscribers(),
        ]
    }

    /// KV `subscribers`, as the stream under it. A KV bucket made by the
    /// client forbids deleting single messages, and the server never lifts
    /// that; subscribers must be erasable (GDPR: JetStream overwrites an
    /// erased message on disk), so this bucket is a stream with exactly a
    /// bucket's settings except that. Two revisions per key, so after a
    /// change the notifier erases the older one rather than leaving the
    /// history limit to drop it unerased.
    fn subscribers(&self) -> stream::Config {
        stream::Config {
            name: format!("KV_{KV_SUBSCRIBERS}"),
            description: Some("Subscribers (notifier); messages may be erased".to_owned()),
            subjects: vec![format!("$KV.{KV_SUBSCRIBERS}.>")],
            max_messages_per_subject: 2,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            allow_direct: true,
            deny_delete: false,
            deny_purge: false,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: DEDUP_WINDOW,
            ..Default::default()
        }
    }

    /// Configuration of every KV bucket.
    pub fn buckets(&self) -> Vec<kv::Config> {
        let bucket = |name: &str, history: i64, description: &str| kv::Config {
            bucket: name.to_owned(),
            description: description.to_owned(),
            history,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        };
        let leases = kv::Config {
            // Per-key TTLs expire a dead holder's lease; the delete marker
            // it leaves is kept a minute so watchers see the expiry.
            limit_markers: Some(Duration::from_secs(60)),
            ..bucket(
                KV_LEASES,
                1,
                "Leases of singleton roles, by role and partition",
            )
        };
        vec![
            bucket(KV_STATUS, 5, "Current status of every component (decider)"),
            bucket(KV_CONFIG, 10, "Validated page configs (decider)"),
            bucket(KV_UPTIME, 1, "Daily uptime rollups (recorder)"),
            bucket(KV_TIMERS, 1, "Durable timers, by owner (decider, notifier)"),
            bucket(KV_OVERRIDES, 1, "Operators' status overrides (decider)"),
            bucket(KV_APIKEYS, 1, "HTTP API keys, hashed (api)"),
            kv::Config {
                // Threads of long-over incidents go by themselves.
                max_age: 90 * DAY,
                ..bucket(KV_NOTICES, 1, "Notice threads of the notifier's planner")
            },
            kv::Config {
                // Longer than NOTIFY keeps a batch, so every redelivery
                // finds its ledger.
                max_age: 8 * DAY,
                ..bucket(KV_LEDGER, 1, "Delivery states per batch (notifier)")
            },
            bucket(
                KV_SUPPRESSIONS,
                1,
                "Suppressed addresses, as keyed hashes (notifier)",
            ),
            leases,
        ]
    }

    /// Configuration of the object store.
    pub fn object_stores(&self) -> Vec<object_store::Config> {
        vec![object_store::Config {
            bucket: OBJECT_PAGES.to_owned(),
            description: Some("Rendered pages (publisher), mirrored by edges".to_owned()),
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }]
    }
}

/// One stream, bucket or object store of the topology.
// A handful of these exist, briefly: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Part {
    /// A stream.
    Stream(stream::Config),
    /// A KV bucket (stream `KV_<bucket>`).
    Bucket(kv::Config),
    /// An object store (stream `OBJ_<bucket>`).
    Objects(object_store::Config),
}

impl Part {
    /// `stream`, `KV bucket` or `object store`.
    pub fn what(&self) -> &'static str {
        match self {
            Part::Stream(_) => "stream",
            Part::Bucket(_) => "KV bucket",
            Part::Objects(_) => "object store",
        }
    }

    /// Its own name.
    pub fn name(&self) -> &str {
        match self {
            Part::Stream(config) => &config.name,
            Part::Bucket(config) => &config.bucket,
            Part::Objects(config) => &config.bucket,
        }
    }

    /// The stream underneath.
    pub fn stream_name(&self) -> String {
        match self {
            Part::Stream(config) => config.name.clone(),
            Part::Bucket(config) => format!("KV_{}", config.bucket),
            Part::Objects(config) => format!("OBJ_{}", config.bucket),
        }
    }
}

impl Topology {
    /// Every stream, bucket and object store, in the order they are applied.
    pub fn parts(&self) -> Vec<Part> {
        let streams = self.streams().into_iter().map(Part::Stream);
        let buckets = self.buckets().into_iter().map(Part::Bucket);
        let objects = self.object_stores().into_iter().map(Part::Objects);
        streams.chain(buckets).chain(objects).collect()
    }
}

/// What [`ensure`] did to one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It was missing and is now created.
    Created,
    /// An older version (or none) had configured it; now this one has.
    Updated,
    /// This version had configured it already.
    Unchanged,
    /// A newer version configured it; left exactly as it is.
    LeftNewer {
        /// The version it records.
        recorded: u32,
    },
}

impl Action {
    /// Label for output and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::LeftNewer { .. } => "left_newer",
        }
    }
}

/// What [`verify`] found for one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// It does not exist.
    Missing,
    /// It exists, configured by an older version (0: none recorded).
    Older {
        /// The version it records.
        recorded: u32,
    },
    /// It exists, configured by this version or a newer one.
    Current {
        /// The version it records.
        recorded: u32,
    },
}

/// One part and what happened to it or was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    /// `stream`, `KV bucket` or `object store`.
    pub what: &'static str,
    /// Its name.
    pub name: String,
    /// What happened or was found.
    pub result: T,
}

/// Why [`ensure`] or [`verify`] failed, naming the stream or bucket.
#[derive(Debug, thiserror::Error)]
#[error("cannot {operation} {what} {name}: {reason}")]
pub struct EnsureError {
    /// `read`, `create or update` or `record the version of`.
    pub operation: &'static str,
    /// `stream`, `KV bucket` or `object store`.
    pub what: &'static str,
    /// Its name.
    pub name: String,
    /// What the server said.
    pub reason: String,
}

/// The topology version `stream_name` records: `None` when it does not
/// exist, `Some(0)` when it exists without a version.
async fn recorded_version(
    js: &jetstream::Context,
    part: &Part,
) -> Result<Option<u32>, EnsureError> {
    let stream_name = part.stream_name();
    match js.get_stream(&stream_name).await {
        Ok(mut stream) => {
            let info = stream.info().await.map_err(|e| EnsureError {
                operation: "read",
                what: part.what(),
                name: part.name().to_owned(),
                reason: e.to_string(),
            })?;
            Ok(Some(
                info.config
                    .metadata
                    .get(VERSION_KEY)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ))
        }
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(inner)
                    if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(EnsureError {
            operation: "read",
            what: part.what(),
            name: part.name().to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Creates or updates one part and records `version` on its stream.
async fn apply(
    js: &jetstream::Context,
    part: &Part,
    version: u32,
    exists: bool,
) -> Result<(), EnsureError> {
    let failed = |operation: &'static str, reason: String| EnsureError {
        operation,
        what: part.what(),
        name: part.name().to_owned(),
        reason,
    };
    match part {
        Part::Stream(config) => {
            let mut config = config.clone();
            config
                .metadata
                .insert(VERSION_KEY.to_owned(), version.to_string());
            if let Err(e) = js.create_or_update_stream(config.clone()).await {
                // Some settings the server never changes in place (an old
                // KV `subscribers` forbade message deletes). An empty
                // stream is made again; one with data is left for an
                // operator, named in the error.
                let mut existing = js
                    .get_stream(&config.name)
                    .await
                    .map_err(|_| failed("create or update", e.to_string()))?;
                let messages = existing
                    .info()
                    .await
                    .map_err(|_| failed("create or update", e.to_string()))?
                    .state
                    .messages;
                if messages > 0 {
                    return Err(failed(
                        "create or update",
                        format!("{e}; it holds {messages} messages, so it is not recreated: export them, delete the stream, run ensure, import"),
                    ));
                }
                js.delete_stream(&config.name)
                    .await
                    .map_err(|e| failed("recreate", e.to_string()))?;
                js.create_stream(config)
                    .await
                    .map_err(|e| failed("recreate", e.to_string()))?;
            }
            return Ok(());
        }
        Part::Bucket(config) => {
            if let Err(e) = js.create_or_update_key_value(config.clone()).await {
                // Another process may have created the bucket and recorded
                // its version between our read and our create: the server
                // then sees our create as a different configuration of an
                // existing stream. If that version is ours or newer, the
                // work is done.
                match recorded_version(js, part).await {
                    Ok(Some(recorded)) if recorded >= version => return Ok(()),
                    _ => return Err(failed("create or update", e.to_string())),
                }
            }
        }
        // There is no update call for object stores, and creating one
        // over an existing one with other metadata fails: an existing
        // store only gets its version recorded.
        Part::Objects(_) if exists => {}
        Part::Objects(config) => {
            if let Err(e) = js.create_object_store(config.clone()).await {
                // Another process may have created it (and recorded its
                // version) a moment ago; then only the version is left to do.
                if js.get_stream(part.stream_name()).await.is_err() {
                    return Err(failed("create or update", e.to_string()));
                }
            }
        }
    }
    // Buckets and object stores are created through their own calls, which
    // know nothing of metadata: record the version on the stream after.
    let mut stream = js
        .get_stream(part.stream_name())
        .await
        .map_err(|e| failed("record the version of", e.to_string()))?;
    let mut config = stream
        .info()
        .await
        .map_err(|e| failed("record the version of", e.to_string()))?
        .config
        .clone();
    config
        .metadata
        .insert(VERSION_KEY.to_owned(), version.to_string());
    js.update_stream(config)
        .await
        .map_err(|e| failed("record the version of", e.to_string()))?;
    Ok(())
}

/// Brings every stream, bucket and object store to `topology`: creates
/// what is missing, updates what an older version configured, and leaves
/// alone what this or a newer version configured. Safe to run any number of
/// times, from any number of processes at once.
pub async fn ensure(
    js: &jetstream::Context,
    topology: &Topology,
) -> Result<Vec<Outcome<Action>>, EnsureError> {
    let mut outcomes = Vec::new();
    for part in topology.parts() {
        let action = match recorded_version(js, &part).await? {
            None => {
                apply(js, &part, topology.version, false).await?;
                Action::Created
            }
            Some(recorded) if recorded > topology.version => {
                tracing::warn!(
                    what = part.what(),
                    name = part.name(),
                    recorded,
                    ours = topology.version,
                    "A newer build configured this; leaving it as it is."
                );
                Action::LeftNewer { recorded }
            }
            Some(recorded) if recorded == topology.version => Action::Unchanged,
            Some(_) => {
                apply(js, &part, topology.version, true).await?;
                Action::Updated
            }
        };
        outcomes.push(Outcome {
            what: part.what(),
            name: part.name().to_owned(),
            result: action,
        });
    }
    Ok(outcomes)
}

/// The stream `region` writes to in its own JetStream domain while cut off
/// from the other regions (one server, the region's leaf: one replica).
pub fn regional_stream_config(region: &str) -> stream::Config {
    let mut config = stream::Config {
        name: regional_stream(region),
        description: Some(format!(
            "Writes of region {region} while it is cut off from the others; sourced by the global streams"
        )),
        subjects: vec![format!("{SUBJECT_ROOT}.regional.{region}.>")],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: 1,
        duplicate_window: DEDUP_WINDOW,
        ..Default::default()
    };
    config
        .metadata
        .insert(VERSION_KEY.to_owned(), TOPOLOGY_VERSION.to_string());
    config
}

/// How the global stream of `kind` sources `region`'s regional stream:
/// over the leaf connection (`$JS.{region}.API`), only that kind, with the
/// regional prefix taken off so the events land on their usual subjects.
pub fn regional_source(region: &str, kind: &str) -> stream::Source {
    stream::Source {
        name: regional_stream(region),
        external: Some(stream::External {
            api_prefix: format!("$JS.{region}.API"),
            delivery_prefix: None,
        }),
        subject_transforms: vec![stream::SubjectTransform {
            source: regional_filter(region, kind),
            destination: format!("{SUBJECT_ROOT}.{kind}.>"),
        }],
        ..Default::default()
    }
}

/// Puts the regional write path in place for `regions`: each region's
/// stream in its own domain (created when missing), and the global
/// INCIDENTS and MAINTENANCE streams sourcing every one of them. Sources
/// are only ever added: a region is taken out by an operator, on purpose.
pub async fn ensure_regions(
    client: &async_nats::Client,
    js: &jetstream::Context,
    regions: &[String],
) -> Result<Vec<Outcome<Action>>, EnsureError> {
    let mut outcomes = Vec::new();
    for region in regions {
        let config = regional_stream_config(region);
        let domain = jetstream::with_domain(client.clone(), region);
        let part = Part::Stream(config.clone());
        let action = match recorded_version(&domain, &part).await? {
            Some(_) => Action::Unchanged,
            None => {
                domain
                    .create_stream(config.clone())
                    .await
                    .map_err(|e| EnsureError {
                        operation: "create or update",
                        what: "stream",
                        name: format!("{} (domain {region})", config.name),
                        reason: e.to_string(),
                    })?;
                Action::Created
            }
        };
        outcomes.push(Outcome {
            what: "stream",
            name: format!("{} (domain {region})", config.name),
            result: action,
        });
    }
    for (kind, stream_name) in REGIONAL_KINDS {
        let failed = |operation: &'static str, reason: String| EnsureError {
            operation,
            what: "stream",
            name: stream_name.to_owned(),
            reason,
        };
        let mut config = js
            .get_stream(stream_name)
            .await
            .map_err(|e| failed("read", e.to_string()))?
            .info()
            .await
            .map_err(|e| failed("read", e.to_string()))?
            .config
            .clone();
        let mut sources = config.sources.clone().unwrap_or_default();
        let before = sources.len();
        for region in regions {
            let wanted = regional_source(region, kind);
            if !sources.iter().any(|s| s.name == wanted.name) {
                sources.push(wanted);
            }
        }
        let action = if sources.len() == before {
            Action::Unchanged
        } else {
            config.sources = Some(sources);
            js.update_stream(config)
                .await
                .map_err(|e| failed("add the regional sources to", e.to_string()))?;
            Action::Updated
        };
        outcomes.push(Outcome {
            what: "stream",
            name: format!("{stream_name} (regional sources)"),
            result: action,
        });
    }
    Ok(outcomes)
}

/// Reads what exists without changing anything: for daemons whose NATS
/// user may not edit streams, and for `beaconctl bus verify`.
pub async fn verify(
    js: &jetstream::Context,
    topology: &Topology,
) -> Result<Vec<Outcome<Found>>, EnsureError> {
    let mut outcomes = Vec::new();
    for part in topology.parts() {
        let found = match recorded_version(js, &part).await? {
            None => Found::Missing,
            Some(recorded) if recorded < topology.version => Found::Older { recorded },
            Some(recorded) => Found::Current { recorded },
        };
        outcomes.push(Outcome {
            what: part.what(),
            name: part.name().to_owned(),
            result: found,
        });
    }
    Ok(outcomes)
}

/// The parts of a [`verify`] report that are not ready, as one line each.
pub fn not_ready(found: &[Outcome<Found>]) -> Vec<String> {
    found
        .iter()
        .filter_map(|o| match o.result {
            Found::Missing => Some(format!("{} {} is missing", o.what, o.name)),
            Found::Older { recorded } => Some(format!(
                "{} {} is at topology version {recorded}, older than {TOPOLOGY_VERSION}",
                o.what, o.name
            )),
            Found::Current { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings and their version go together: if this fails, the topology
    /// changed. Bump [`TOPOLOGY_VERSION`] (so running servers are updated)
    /// and pin the new fingerprint here.
    #[test]
    fn the_settings_are_pinned_to_the_version() {
        let topology = Topology::default();
        let text = format!(
            "{:?}|{:?}|{:?}",
            topology.streams(),
            topology.buckets(),
            topology.object_stores()
        );
        let hash = crate::names::fnv1a(text.as_bytes());
        assert_eq!(
            (TOPOLOGY_VERSION, hash),
            (5, PINNED_FINGERPRINT),
            "the topology settings changed: bump TOPOLOGY_VERSION and pin the new fingerprint"
        );
    }

    const PINNED_FINGERPRINT: u64 = 13_838_424_404_689_535_156;

    #[test]
    fn every_part_names_its_stream() {
        let names: Vec<String> = Topology::default()
            .parts()
            .iter()
            .map(Part::stream_name)
            .collect();
        assert!(names.contains(&"HEALTH".to_owned()));
        assert!(names.contains(&"KV_leases".to_owned()));
        assert!(names.contains(&"OBJ_pages".to_owned()));
    }
}
