//! The `regions` scenario: the three-region lab of `beacon-lab`, over
//! several rounds of losing a region (`kill -9` of everything of it, its
//! NATS servers included) and of cutting a region off from the other two,
//! with operators writing on every side. Reports, as JSON, how long each
//! singleton role took to move, how long a surviving region took to show a
//! new outage, failed page requests on the edges that stayed up (goal 0),
//! how long every region took to agree after a heal, acknowledged writes
//! missing after it (goal 0), and holes in the cut-off probe's results in
//! the cluster's history (goal 0).
//!
//! Every round waits for a state the round caused (a new holder, a new
//! outage, a write visible everywhere); a wait that runs out is counted
//! (`timeouts`, and the write as missing), never hidden.

use std::future::Future;
use std::time::{Duration, Instant};

use beacon_contract::api::{
    ApiReply, ChangeIncidentRequest, Endpoint, ListIncidentsRequest, CHANGELOG_PUBLISH,
    INCIDENT_CREATE, INCIDENT_LIST, INCIDENT_RESOLVE, INCIDENT_UPDATE,
};
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::incident::Incident;
use beacon_tests::lab::{
    ask, changelog_entry, holes, incident_update, new_incident, poll_edges, Lab, REGIONS,
};
use beacon_tests::{get, HttpTarget};
use futures::FutureExt;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cli::RegionsArgs;
use crate::error::LoadError;
use crate::lease_takeover::percentile;
use crate::progress;

/// How long any one state may take to come about before it is counted as
/// a timeout.
const WAIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);

/// p50, p95, p99 and the slowest of a set of durations, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spread {
    /// How many were measured.
    pub count: usize,
    /// Median.
    pub p50_ms: u64,
    /// 95th percentile (nearest rank).
    pub p95_ms: u64,
    /// 99th percentile (nearest rank).
    pub p99_ms: u64,
    /// Slowest.
    pub max_ms: u64,
}

impl Spread {
    /// The spread of `values`.
    pub fn of(values: &[u64]) -> Spread {
        Spread {
            count: values.len(),
            p50_ms: percentile(values, 50.0),
            p95_ms: percentile(values, 95.0),
            p99_ms: percentile(values, 99.0),
            max_ms: values.iter().copied().max().unwrap_or(0),
        }
    }
}

/// What the region-loss rounds measured.
#[derive(Debug, Serialize)]
pub struct LossReport {
    /// Rounds run.
    pub rounds: u32,
    /// From the loss until a surviving decider holds the decider lease.
    pub decider_takeover: Spread,
    /// From the loss until a surviving notifier holds the planner lease
    /// (rounds where the lost region held it).
    pub planner_takeover: Spread,
    /// From the loss (the target failing at the same moment) until every
    /// surviving edge shows the outage.
    pub new_outage_shown: Spread,
    /// From the loss until an operator's new incident, sent to a surviving
    /// region, is acknowledged.
    pub survivor_write: Spread,
    /// From the loss until the subscriber got that incident's mail.
    pub notified: Spread,
    /// From the lost region's restart until its edge shows the incident.
    pub catch_up: Spread,
    /// Requests to the surviving edges that failed during the losses.
    pub failed_page_requests: u64,
    /// Requests to the surviving edges during the losses.
    pub page_requests: u64,
}

/// What the partition rounds measured.
#[derive(Debug, Serialize)]
pub struct PartitionReport {
    /// Rounds run.
    pub rounds: u32,
    /// How long an operator write in the cut-off region took to be
    /// acknowledged (written to the region's own stream).
    pub cut_off_write: Spread,
    /// From the heal until every region shows every acknowledged write.
    pub converge_after_heal: Spread,
    /// Writes acknowledged on either side.
    pub acked_writes: u64,
    /// Of them, not shown by every region within the wait after the heal.
    pub acked_writes_missing_after_heal: u64,
    /// Requests to the cut-off region's edge that failed during the cuts.
    pub failed_page_requests: u64,
    /// Requests to the cut-off region's edge during the cuts.
    pub page_requests: u64,
    /// Stretches of a cut longer than three check intervals without a
    /// result of the cut-off region's probe in the cluster's history
    /// after the heal (goal 0: its outbox kept them).
    pub result_holes: u64,
    /// Their total length.
    pub result_hole_ms: u64,
}

/// The report.
#[derive(Debug, Serialize)]
pub struct RegionsReport {
    /// `regions`.
    pub scenario: &'static str,
    /// The lab's regions.
    pub regions: Vec<String>,
    /// The decider and planner lease TTL, the bound takeovers are held to
    /// (plus a renew interval, stream leader elections and a busy machine).
    pub lease_ttl_ms: u64,
    /// Losing a region.
    pub region_loss: LossReport,
    /// Cutting a region off.
    pub partition: PartitionReport,
    /// New incidents (of a region-loss round, or of either side of a
    /// partition) whose creation reached the subscriber as more than one
    /// notice: planned twice, by two regions or two terms (goal 0).
    pub notices_planned_twice: usize,
    /// Mails repeating a notice with its own idempotency key: the
    /// senders' at-least-once, when a delivery's ledger write or ack was
    /// lost in a loss or a cut (receivers can drop them by the key).
    pub deliveries_repeated: usize,
    /// Waits that ran out (goal 0).
    pub timeouts: u32,
}

/// The longest stretch without a result that is not a hole: the lab's
/// probe checks every second with a one-second timeout.
const RESULT_GAP_MS: u64 = 3000;

/// The lease TTL every daemon of the lab runs with (the default).
const LEASE_TTL: Duration = Duration::from_secs(3);

/// Polls `check` until it yields, or [`WAIT`] runs out; how long it took.
async fn time_until<T, F, Fut>(started: Instant, mut check: F) -> Option<(T, u64)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    loop {
        if let Some(value) = check().await {
            return Some((value, started.elapsed().as_millis() as u64));
        }
        if started.elapsed() > WAIT {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Sends `request` until the owner answers Ok (idempotency keys make every
/// retry the same write), within [`WAIT`].
async fn write<Req: Serialize>(
    client: &async_nats::Client,
    endpoint: Endpoint<Req, Incident>,
    request: &Req,
) -> Option<Incident> {
    time_until(Instant::now(), || ask(client, endpoint, request))
        .await
        .map(|(incident, _)| incident)
}

/// What every region shows and who leads, for a wait that ran out.
async fn describe(lab: &Lab, regions: &[String]) -> String {
    let mut parts = Vec::new();
    for region in regions {
        parts.push(format!(
            "{region} shows {:?}",
            lab.served_status(region).await
        ));
    }
    parts.push(format!("decider lease: {:?}", lab.leading_region().await));
    parts.push(format!("planner lease: {:?}", lab.planning_region().await));
    parts.join(", ")
}

/// Resolving ends the round's incidents, so the next round's lists are
/// short.
fn resolve(incident: &str, key: &str) -> ChangeIncidentRequest {
    ChangeIncidentRequest {
        state: None,
        ..incident_update(incident, "Resolved.", key)
    }
}

/// Whether the decider that answers `client` (its own region's, first)
/// lists incident `id`.
async fn knows(client: &async_nats::Client, id: &str) -> bool {
    let request = ListIncidentsRequest {
        page: "lab".into(),
        all: false,
    };
    let Ok(payload) = serde_json::to_vec(&request) else {
        return false;
    };
    let Ok(reply) = client
        .request(INCIDENT_LIST.subject(), payload.into())
        .await
    else {
        return false;
    };
    matches!(
        serde_json::from_slice(&reply.payload),
        Ok(ApiReply::<Vec<Incident>>::Ok { result }) if result.iter().any(|i| i.id == id)
    )
}

/// Publishes a changelog entry until the publisher answers Ok, within
/// [`WAIT`].
async fn publish_entry(client: &async_nats::Client, title: &str, key: &str) -> Option<()> {
    let request = changelog_entry(title, key);
    time_until(Instant::now(), || ask(client, CHANGELOG_PUBLISH, &request))
        .await
        .map(|_| ())
}

/// Whether `region`'s edge shows every text of `texts` (in its incidents
/// or its changelog).
async fn shows(lab: &Lab, region: &str, texts: &[String]) -> bool {
    let edge = &lab.region(region).edge_url;
    let mut body = String::new();
    for path in ["api/v2/incidents.json", "changelog.html"] {
        match get(&format!("{edge}/{path}")).await {
            Some((200, text)) => body.push_str(&text),
            _ => return false,
        }
    }
    texts.iter().all(|t| body.contains(t))
}

/// Every region's edge shows `status` for `api`.
async fn all_show(lab: &Lab, regions: &[String], status: &str) -> bool {
    for region in regions {
        if lab.served_status(region).await.as_deref() != Some(status) {
            return false;
        }
    }
    true
}

struct Tally {
    timeouts: u32,
}

impl Tally {
    fn note<T>(&mut self, what: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.timeouts += 1;
            progress(&format!("timed out waiting for {what}"));
        }
        value
    }
}

/// Runs the scenario.
pub async fn run(args: &RegionsArgs) -> Result<RegionsReport, LoadError> {
    if args.rounds == 0 {
        return Err(LoadError::Usage("--rounds must be at least 1".into()));
    }
    let regions = REGIONS.map(str::to_owned);
    progress(&format!("starting the lab: {}", regions.join(", ")));
    let mut target = HttpTarget::start().await;
    // The lab panics when it cannot start (a server that never becomes
    // healthy): that is this run's start failure, not a crash.
    let mut lab = std::panic::AssertUnwindSafe(Lab::start(regions.clone(), "lab", &target))
        .catch_unwind()
        .await
        .map_err(|panic| {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            LoadError::StartServer(format!("the lab did not start: {reason}"))
        })?;
    let mut tally = Tally { timeouts: 0 };

    let mut loss = LossRounds::default();
    let mut cut = CutRounds::default();
    let mut new_incidents = Vec::new();
    for round in 0..args.rounds {
        progress(&format!("round {}: losing a region", round + 1));
        let title = loss_round(
            &mut lab,
            &mut target,
            &regions,
            round,
            &mut loss,
            &mut tally,
        )
        .await;
        new_incidents.extend(title);
        progress(&format!("round {}: cutting a region off", round + 1));
        let titles = partition_round(&mut lab, &regions, round, &mut cut, &mut tally).await;
        new_incidents.extend(titles);
    }
    Ok(RegionsReport {
        scenario: "regions",
        regions: regions.to_vec(),
        lease_ttl_ms: LEASE_TTL.as_millis() as u64,
        region_loss: LossReport {
            rounds: args.rounds,
            decider_takeover: Spread::of(&loss.decider_takeover),
            planner_takeover: Spread::of(&loss.planner_takeover),
            new_outage_shown: Spread::of(&loss.outage_shown),
            survivor_write: Spread::of(&loss.survivor_write),
            notified: Spread::of(&loss.notified),
            catch_up: Spread::of(&loss.catch_up),
            failed_page_requests: loss.failed,
            page_requests: loss.requests,
        },
        partition: PartitionReport {
            rounds: args.rounds,
            cut_off_write: Spread::of(&cut.cut_off_write),
            converge_after_heal: Spread::of(&cut.converge),
            acked_writes: cut.acked,
            acked_writes_missing_after_heal: cut.missing,
            failed_page_requests: cut.failed,
            page_requests: cut.requests,
            result_holes: cut.holes,
            result_hole_ms: cut.hole_ms,
        },
        notices_planned_twice: new_incidents
            .iter()
            .filter(|title| lab.notices_about(&format!("{title}: investigating.")) > 1)
            .count(),
        deliveries_repeated: lab.repeated_mails(),
        timeouts: tally.timeouts,
    })
}

#[derive(Default)]
struct LossRounds {
    decider_takeover: Vec<u64>,
    planner_takeover: Vec<u64>,
    outage_shown: Vec<u64>,
    survivor_write: Vec<u64>,
    notified: Vec<u64>,
    catch_up: Vec<u64>,
    failed: u64,
    requests: u64,
}

#[derive(Default)]
struct CutRounds {
    cut_off_write: Vec<u64>,
    converge: Vec<u64>,
    acked: u64,
    missing: u64,
    failed: u64,
    requests: u64,
    holes: u64,
    hole_ms: u64,
}

/// Waits until every edge shows `api` operational and a decider leads.
async fn steady(lab: &Lab, regions: &[String], tally: &mut Tally) -> Option<String> {
    let started = Instant::now();
    let ready = time_until(started, || async {
        if !all_show(lab, regions, "operational").await {
            return None;
        }
        lab.leading_region().await
    })
    .await;
    if ready.is_none() {
        progress(&describe(lab, regions).await);
    }
    tally
        .note("every region operational and led", ready)
        .map(|(l, _)| l)
}

async fn loss_round(
    lab: &mut Lab,
    target: &mut HttpTarget,
    regions: &[String; 3],
    round: u32,
    out: &mut LossRounds,
    tally: &mut Tally,
) -> Option<String> {
    let leader = steady(lab, regions, tally).await?;
    let planner = lab.planning_region().await;
    // Odd rounds lose the region whose notifier plans, so both singleton
    // roles are taken over across the rounds.
    let lost = match (&planner, round % 2) {
        (Some(planner), 1) => planner.clone(),
        _ => leader.clone(),
    };
    let decider_lost = lost == leader;
    let survivors: Vec<String> = regions.iter().filter(|r| **r != lost).cloned().collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (failed, total, poller) = poll_edges(
        survivors
            .iter()
            .map(|r| lab.region(r).edge_url.clone())
            .collect(),
        stop.clone(),
    );
    let ctl = lab.client(&survivors[0], "ctl").await;
    let lost_at = Instant::now();
    lab.lose(&lost);
    target.down();
    let title = format!("Region {lost} lost, round {}", round + 1);
    let writing = {
        let (ctl, request) = (ctl.clone(), new_incident(&title, &format!("loss-{round}")));
        tokio::spawn(async move {
            let written = write(&ctl, INCIDENT_CREATE, &request).await;
            (written, lost_at.elapsed().as_millis() as u64)
        })
    };
    // Everything the loss should cause, watched at once from the moment of
    // the loss.
    let lab_ref = &*lab;
    let lost_ref = lost.as_str();
    let decider = async move {
        if !decider_lost {
            return Some(None);
        }
        time_until(lost_at, || async move {
            lab_ref
                .leading_region()
                .await
                .filter(|leader| leader != lost_ref)
        })
        .await
        .map(Some)
    };
    let planner_moved = async move {
        if planner.as_deref() != Some(lost_ref) {
            return Some(None);
        }
        time_until(lost_at, || async move {
            lab_ref
                .planning_region()
                .await
                .filter(|holder| holder != lost_ref)
        })
        .await
        .map(Some)
    };
    let shown = time_until(lost_at, || {
        let survivors = &survivors;
        async move {
            all_show(lab_ref, survivors, "major_outage")
                .await
                .then_some(())
        }
    });
    let notified = time_until(lost_at, || {
        let title = &title;
        async move { (lab_ref.mails_about(title) > 0).then_some(()) }
    });
    let (decider, planner_moved, shown, notified, writing) =
        tokio::join!(decider, planner_moved, shown, notified, writing);
    if let Some(Some((_, ms))) = tally.note("a surviving decider to lead", decider) {
        out.decider_takeover.push(ms);
    }
    if let Some(Some((_, ms))) = tally.note("a surviving planner", planner_moved) {
        out.planner_takeover.push(ms);
    }
    match tally.note("the survivors to show the outage", shown) {
        Some((_, ms)) => out.outage_shown.push(ms),
        None => progress(&describe(lab, regions).await),
    }
    if let Some((_, ms)) = tally.note("the incident's notification", notified) {
        out.notified.push(ms);
    }
    let written = match writing {
        Ok((Some(incident), ms)) => {
            out.survivor_write.push(ms);
            Some(incident)
        }
        _ => tally.note::<Incident>("the survivor's incident to be acknowledged", None),
    };
    stop.store(true, Ordering::SeqCst);
    let _ = poller.await;
    out.failed += failed.load(Ordering::SeqCst);
    out.requests += total.load(Ordering::SeqCst);

    let back_at = Instant::now();
    lab.bring_back(&lost).await;
    target.up().await;
    if let Some(incident) = &written {
        let caught_up = time_until(back_at, || async {
            shows(lab, &lost, std::slice::from_ref(&incident.id))
                .await
                .then_some(())
        })
        .await;
        if let Some((_, ms)) = tally.note("the lost region to catch up", caught_up) {
            out.catch_up.push(ms);
        }
        let resolved = write(&ctl, INCIDENT_RESOLVE, &resolve(&incident.id, "resolve")).await;
        tally.note("the incident to be resolved", resolved);
    }
    written.map(|_| title)
}

async fn partition_round(
    lab: &mut Lab,
    regions: &[String; 3],
    round: u32,
    out: &mut CutRounds,
    tally: &mut Tally,
) -> Vec<String> {
    let Some(cut) = steady(lab, regions, tally).await else {
        return Vec::new();
    };
    let majority: Vec<String> = regions.iter().filter(|r| **r != cut).cloned().collect();
    let cut_ctl = lab.client(&cut, "ctl").await;
    let majority_ctl = lab.client(&majority[0], "ctl").await;
    let shared_title = format!("Shared incident, round {}", round + 1);
    let Some(shared) = write(
        &majority_ctl,
        INCIDENT_CREATE,
        &new_incident(&shared_title, &format!("shared-{round}")),
    )
    .await
    else {
        tally.note::<()>("the shared incident", None);
        return Vec::new();
    };
    // Every page shows it, and the region about to be cut off knows it
    // (a region changes only what it knows).
    let everywhere = time_until(Instant::now(), || async {
        for region in regions {
            if !shows(lab, region, std::slice::from_ref(&shared.id)).await {
                return None;
            }
        }
        knows(&cut_ctl, &shared.id).await.then_some(())
    })
    .await;
    if tally
        .note("the shared incident everywhere", everywhere)
        .is_none()
    {
        return Vec::new();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (failed, total, poller) = poll_edges(vec![lab.region(&cut).edge_url.clone()], stop.clone());
    let cut_at_ms = wall_clock_ms();
    lab.partition(&cut);
    let texts = [
        format!("Written while {cut} was cut off, round {}", round + 1),
        format!("Update from {cut} while cut off, round {}", round + 1),
        format!("Written by the majority, round {}", round + 1),
        format!("Update from the majority, round {}", round + 1),
        format!("Shipped while {cut} was cut off, round {}", round + 1),
        format!("Shipped by the majority, round {}", round + 1),
    ];
    let cut_side = async {
        let started = Instant::now();
        let created = write(
            &cut_ctl,
            INCIDENT_CREATE,
            &new_incident(&texts[0], &format!("cut-{round}")),
        )
        .await;
        let created_ms = started.elapsed().as_millis() as u64;
        let started = Instant::now();
        let updated = write(
            &cut_ctl,
            INCIDENT_UPDATE,
            &incident_update(&shared.id, &texts[1], &format!("cut-update-{round}")),
        )
        .await;
        let updated_ms = started.elapsed().as_millis() as u64;
        let started = Instant::now();
        let entry = publish_entry(&cut_ctl, &texts[4], &format!("cut-entry-{round}")).await;
        let entry_ms = started.elapsed().as_millis() as u64;
        let writes = [
            (0, created.is_some(), created_ms),
            (1, updated.is_some(), updated_ms),
            (4, entry.is_some(), entry_ms),
        ];
        (created, writes)
    };
    let majority_side = async {
        let created = write(
            &majority_ctl,
            INCIDENT_CREATE,
            &new_incident(&texts[2], &format!("majority-{round}")),
        )
        .await;
        let updated = write(
            &majority_ctl,
            INCIDENT_UPDATE,
            &incident_update(&shared.id, &texts[3], &format!("majority-update-{round}")),
        )
        .await;
        let entry =
            publish_entry(&majority_ctl, &texts[5], &format!("majority-entry-{round}")).await;
        (
            created.clone(),
            [
                (2, created.is_some()),
                (3, updated.is_some()),
                (5, entry.is_some()),
            ],
        )
    };
    let ((cut_created, cut_writes), (majority_created, majority_writes)) =
        tokio::join!(cut_side, majority_side);
    let new_titles: Vec<String> = [(&cut_created, &texts[0]), (&majority_created, &texts[2])]
        .into_iter()
        .filter(|(created, _)| created.is_some())
        .map(|(_, title)| title.clone())
        .collect();
    let mut acked = Vec::new();
    for (i, ok, ms) in cut_writes {
        if ok {
            out.cut_off_write.push(ms);
            acked.push(texts[i].clone());
        } else {
            tally.note::<()>("a write in the cut-off region", None);
        }
    }
    for (i, ok) in majority_writes {
        if ok {
            acked.push(texts[i].clone());
        } else {
            tally.note::<()>("a write in the majority", None);
        }
    }
    // The cut-off side sees its own writes before the heal.
    let own: Vec<String> = acked
        .iter()
        .filter(|t| t.contains("cut off"))
        .cloned()
        .collect();
    let seen = time_until(Instant::now(), || async {
        shows(lab, &cut, &own).await.then_some(())
    })
    .await;
    tally.note("the cut-off edge to show its own writes", seen);
    stop.store(true, Ordering::SeqCst);
    let _ = poller.await;
    out.failed += failed.load(Ordering::SeqCst);
    out.requests += total.load(Ordering::SeqCst);

    let healed_at = Instant::now();
    let healed_at_ms = wall_clock_ms();
    lab.heal(&cut);
    out.acked += acked.len() as u64;
    let converged = time_until(healed_at, || async {
        for region in regions {
            if !shows(lab, region, &acked).await {
                return None;
            }
        }
        Some(())
    })
    .await;
    match tally.note("every region to show every acknowledged write", converged) {
        Some((_, ms)) => out.converge.push(ms),
        None => {
            for text in &acked {
                for region in regions {
                    if !shows(lab, region, std::slice::from_ref(text)).await {
                        out.missing += 1;
                        break;
                    }
                }
            }
        }
    }
    // The cut-off probe's results of the cut, from its outbox, in the
    // cluster's stream and in the recorders' history.
    let through = &majority[0];
    let waiting = Instant::now();
    let left = loop {
        let starts = lab.result_starts(through, &cut).await;
        let mut left = holes(&starts, cut_at_ms, healed_at_ms, RESULT_GAP_MS);
        if left.is_empty() {
            let recorded = lab.history_starts(&cut);
            left = holes(&recorded, cut_at_ms, healed_at_ms, RESULT_GAP_MS);
        }
        if left.is_empty() || waiting.elapsed() > WAIT {
            break left;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let filled = left.is_empty().then_some(());
    if tally
        .note("the cut-off probe's results of the cut", filled)
        .is_none()
    {
        out.holes += left.len() as u64;
        out.hole_ms += left.iter().map(|(from, to)| to - from).sum::<u64>();
    }
    // The round's incidents end, so the next round starts operational.
    for incident in [Some(shared), cut_created, majority_created]
        .into_iter()
        .flatten()
    {
        let key = format!("resolve-{}", incident.id);
        let resolved = write(
            &majority_ctl,
            INCIDENT_RESOLVE,
            &resolve(&incident.id, &key),
        )
        .await;
        tally.note("an incident to be resolved", resolved);
    }
    new_titles
}
