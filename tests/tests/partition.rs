//! A region cut off from the other two (every route between them closed
//! and refused, everything of the region still running): its edge keeps
//! serving, its operators keep writing and see their writes on their own
//! page, the other two carry on, and after the heal every region shows
//! every acknowledged write of both sides: incidents, updates, maintenance
//! and changelog entries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon_contract::api::{
    ChangelogView, Endpoint, ScheduleMaintenanceRequest, CHANGELOG_PUBLISH, INCIDENT_CREATE,
    INCIDENT_UPDATE, MAINTENANCE_SCHEDULE,
};
use beacon_contract::maintenance::Window;
use beacon_testkit::wait_until;
use beacon_tests::get;
use beacon_tests::lab::{
    ask, changelog_entry, holes, incident_update, new_incident, poll_edges, Lab, REGIONS,
};
use beacon_tests::HttpTarget;

/// How long a lab may take to settle: stream leaders elected again after a
/// cut or a heal, the decider lease running out, a busy 2-core machine.
const SETTLE: Duration = Duration::from_secs(90);

/// The longest stretch without a result that is not a hole: the probe
/// checks every second with a one-second timeout.
const RESULT_GAP_MS: u64 = 3000;

/// One write an operator saw acknowledged: where, when, the incident or
/// window, and the text that must show in every region after the heal.
#[derive(Debug, Clone)]
struct Acked {
    region: String,
    incident: String,
    text: String,
    at: Instant,
}

/// Sends `request` to `endpoint` through `client` until the owner answers
/// Ok (idempotency keys make every retry the same write).
async fn write<Req: serde::Serialize, Res: serde::de::DeserializeOwned + std::fmt::Debug>(
    client: &async_nats::Client,
    endpoint: Endpoint<Req, Res>,
    request: &Req,
    what: &str,
) -> Res {
    wait_until(what, SETTLE, || ask(client, endpoint, request)).await
}

fn maintenance(title: &str, key: &str) -> ScheduleMaintenanceRequest {
    let now = beacon_contract::hlc::wall_clock_ms();
    ScheduleMaintenanceRequest {
        page: "lab".into(),
        title: title.into(),
        body: format!("{title}: planned."),
        starts_at_ms: now + 24 * 3600 * 1000,
        ends_at_ms: now + 25 * 3600 * 1000,
        components: vec!["api".into()],
        recurrence: None,
        remind_before_ms: None,
        verify_ms: None,
        actor: "lab".into(),
        idempotency_key: Some(key.into()),
    }
}

/// Whether `region`'s edge shows every write of `acked` (its incidents,
/// its scheduled maintenance and its changelog).
async fn shows_all(lab: &Lab, region: &str, acked: &[Acked]) -> bool {
    let edge = &lab.region(region).edge_url;
    let mut body = String::new();
    for path in [
        "api/v2/incidents.json",
        "api/v2/scheduled-maintenances.json",
        "changelog.html",
    ] {
        let Some((200, text)) = get(&format!("{edge}/{path}")).await else {
            return false;
        };
        body.push_str(&text);
    }
    acked
        .iter()
        .all(|w| body.contains(&w.incident) && body.contains(&w.text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_region_keeps_serving_and_writing_and_converges_after_the_heal() {
    let target = HttpTarget::start().await;
    let regions = REGIONS.map(str::to_owned);
    let mut lab = Lab::start(regions.clone(), "lab", &target).await;
    for region in &regions {
        wait_until(&format!("{region}'s edge to serve api"), SETTLE, || {
            let lab = &lab;
            async move {
                (lab.served_status(region).await.as_deref() == Some("operational")).then_some(())
            }
        })
        .await;
    }
    // The region that leads deciding is the one cut off: the others must
    // also take its lease over.
    let cut = wait_until("a decider to lead", SETTLE, || {
        let lab = &lab;
        async move { lab.leading_region().await }
    })
    .await;
    let majority: Vec<String> = regions.iter().filter(|r| **r != cut).cloned().collect();
    let cut_ctl = lab.client(&cut, "ctl").await;
    let majority_ctl = lab.client(&majority[0], "ctl").await;

    // An incident everyone knows before the cut.
    let mut acked = Vec::new();
    let before = write(
        &majority_ctl,
        INCIDENT_CREATE,
        &new_incident("Known everywhere", "before"),
        "the incident before the cut",
    )
    .await;
    acked.push(Acked {
        region: majority[0].clone(),
        incident: before.id.clone(),
        text: "Known everywhere".into(),
        at: Instant::now(),
    });
    for region in &regions {
        wait_until(
            &format!("{region} to show the first incident"),
            SETTLE,
            || {
                let (lab, acked) = (&lab, &acked);
                async move { shows_all(lab, region, acked).await.then_some(()) }
            },
        )
        .await;
    }

    // The cut. The cut-off edge is polled throughout: it must never fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (failed, total, poller) = poll_edges(vec![lab.region(&cut).edge_url.clone()], stop.clone());
    let cut_at = Instant::now();
    let cut_at_ms = beacon_contract::hlc::wall_clock_ms();
    lab.partition(&cut);

    // Both sides write at once: a new incident each, and an update each to
    // the incident known before the cut.
    let cut_side = async {
        let created = write(
            &cut_ctl,
            INCIDENT_CREATE,
            &new_incident("Written while cut off", "cut-create"),
            "the cut-off region's incident",
        )
        .await;
        let created_at = Instant::now();
        write(
            &cut_ctl,
            INCIDENT_UPDATE,
            &incident_update(&before.id, "Update from the cut-off region", "cut-update"),
            "the cut-off region's update",
        )
        .await;
        let updated_at = Instant::now();
        let window: Window = write(
            &cut_ctl,
            MAINTENANCE_SCHEDULE,
            &maintenance("Maintenance planned while cut off", "cut-maintenance"),
            "the cut-off region's maintenance",
        )
        .await;
        let window_at = Instant::now();
        let entry: ChangelogView = write(
            &cut_ctl,
            CHANGELOG_PUBLISH,
            &changelog_entry("Shipped while cut off", "cut-changelog"),
            "the cut-off region's changelog entry",
        )
        .await;
        (
            created,
            created_at,
            updated_at,
            window,
            window_at,
            entry,
            Instant::now(),
        )
    };
    let majority_side = async {
        let created = write(
            &majority_ctl,
            INCIDENT_CREATE,
            &new_incident("Written by the majority", "majority-create"),
            "the majority's incident",
        )
        .await;
        let created_at = Instant::now();
        write(
            &majority_ctl,
            INCIDENT_UPDATE,
            &incident_update(&before.id, "Update from the majority", "majority-update"),
            "the majority's update",
        )
        .await;
        let updated_at = Instant::now();
        let entry: ChangelogView = write(
            &majority_ctl,
            CHANGELOG_PUBLISH,
            &changelog_entry("Shipped by the majority", "majority-changelog"),
            "the majority's changelog entry",
        )
        .await;
        (created, created_at, updated_at, entry, Instant::now())
    };
    let (
        (
            cut_created,
            cut_created_at,
            cut_updated_at,
            cut_window,
            cut_window_at,
            cut_entry,
            cut_entry_at,
        ),
        (maj_created, maj_created_at, maj_updated_at, maj_entry, maj_entry_at),
    ) = tokio::join!(cut_side, majority_side);
    let cut_writes = vec![
        Acked {
            region: cut.clone(),
            incident: cut_created.id.clone(),
            text: "Written while cut off".into(),
            at: cut_created_at,
        },
        Acked {
            region: cut.clone(),
            incident: before.id.clone(),
            text: "Update from the cut-off region".into(),
            at: cut_updated_at,
        },
        Acked {
            region: cut.clone(),
            incident: cut_window.state.maintenance.clone(),
            text: "Maintenance planned while cut off".into(),
            at: cut_window_at,
        },
        Acked {
            region: cut.clone(),
            incident: cut_entry.entry.entry.clone(),
            text: "Shipped while cut off".into(),
            at: cut_entry_at,
        },
    ];
    let majority_writes = vec![
        Acked {
            region: majority[0].clone(),
            incident: maj_created.id.clone(),
            text: "Written by the majority".into(),
            at: maj_created_at,
        },
        Acked {
            region: majority[0].clone(),
            incident: before.id.clone(),
            text: "Update from the majority".into(),
            at: maj_updated_at,
        },
        Acked {
            region: majority[0].clone(),
            incident: maj_entry.entry.entry.clone(),
            text: "Shipped by the majority".into(),
            at: maj_entry_at,
        },
    ];

    // Each side sees its own writes on its own pages while the cut lasts.
    wait_until(
        "the cut-off edge to show its region's writes",
        SETTLE,
        || {
            let (lab, writes, cut) = (&lab, &cut_writes, &cut);
            async move { shows_all(lab, cut, writes).await.then_some(()) }
        },
    )
    .await;
    for region in &majority {
        wait_until(
            &format!("{region} to show the majority's writes"),
            SETTLE,
            || {
                let (lab, writes) = (&lab, &majority_writes);
                async move { shows_all(lab, region, writes).await.then_some(()) }
            },
        )
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    poller.await.expect("the poller");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests to the cut-off edge failed, of {}",
        total.load(Ordering::SeqCst)
    );

    // The heal: every region converges to every acknowledged write.
    acked.extend(cut_writes);
    acked.extend(majority_writes);
    let healed_at = Instant::now();
    let healed_at_ms = beacon_contract::hlc::wall_clock_ms();
    lab.heal(&cut);
    for region in &regions {
        wait_until(
            &format!("{region} to show every acknowledged write"),
            SETTLE,
            || {
                let (lab, acked) = (&lab, &acked);
                async move { shows_all(lab, region, acked).await.then_some(()) }
            },
        )
        .await;
        eprintln!(
            "{region} showed every acknowledged write {:.1} s after the heal",
            healed_at.elapsed().as_secs_f64()
        );
    }
    let converged = healed_at.elapsed();
    // Every new incident is notified (updates close together are held
    // and the flush brings the newest state, so not every update has a
    // mail of its own), by the one region that plans, and no notice twice:
    // the cut-off region could not plan (its planner's lease and the
    // NOTIFY stream are the cluster's).
    for write in acked
        .iter()
        .filter(|w| w.text.starts_with("Written") || w.text.starts_with("Known"))
    {
        wait_until(
            &format!("a notification of {:?}", write.text),
            SETTLE,
            || {
                let lab = &lab;
                async move { (lab.mails_about(&write.text) > 0).then_some(()) }
            },
        )
        .await;
    }
    // Planned once: each new incident of either side is one notice (one
    // idempotency key). A delivery repeated with the same key is the
    // senders' at-least-once (a worker whose ledger write or ack failed in
    // the cut), reported here; receivers can drop it by the key.
    for title in ["Written while cut off", "Written by the majority"] {
        assert_eq!(lab.notices_about(title), 1, "notices of {title:?}");
    }
    for (key, first, again) in lab.repeats() {
        eprintln!(
            "delivered again with the same key {key}: first at +{:.1} s, again at +{:.1} s after the cut",
            first.saturating_duration_since(cut_at).as_secs_f64(),
            again.saturating_duration_since(cut_at).as_secs_f64()
        );
    }
    // The cut-off region's probe kept checking; its results waited in its
    // outbox and are in the cluster's stream now, and in the recorders'
    // history, without a hole.
    let through = majority[0].clone();
    wait_until("the cut-off probe's results of the cut", SETTLE, || {
        let (lab, through, cut) = (&lab, &through, &cut);
        async move {
            let starts = lab.result_starts(through, cut).await;
            holes(&starts, cut_at_ms, healed_at_ms, RESULT_GAP_MS)
                .is_empty()
                .then_some(())
        }
    })
    .await;
    wait_until(
        "the cut-off probe's results of the cut in ClickHouse",
        SETTLE,
        || {
            let (lab, cut) = (&lab, &cut);
            async move {
                let starts = lab.history_starts(cut);
                holes(&starts, cut_at_ms, healed_at_ms, RESULT_GAP_MS)
                    .is_empty()
                    .then_some(())
            }
        },
    )
    .await;
    for write in &acked {
        eprintln!(
            "acked in {} at +{:.1} s: {} {:?}",
            write.region,
            write.at.saturating_duration_since(cut_at).as_secs_f64(),
            write.incident,
            write.text
        );
    }
    eprintln!(
        "region {cut} cut off for {:.1} s; {} requests to its edge, none failed; every region showed all {} acknowledged writes {:.1} s after the heal",
        healed_at.duration_since(cut_at).as_secs_f64(),
        total.load(Ordering::SeqCst),
        acked.len(),
        converged.as_secs_f64()
    );
}
