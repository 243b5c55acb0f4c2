//! The decider across real processes: real NATS, real probes per region,
//! real targets, `beaconctl` as operators run it. Each test waits for a
//! state its feature causes.

use std::collections::HashSet;
use std::time::Duration;

use beacon_contract::api::ApiReply;
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::{wall_clock_ms, HlcClock};
use beacon_contract::messages::{
    ComponentStatus, Evidence, HealthResult, Outcome, RegionState, StatusChange, StatusRecord,
    StatusSource,
};
use beacon_contract::names::{health_subject, status_key, KV_STATUS};
use beacon_page::config::api::{ApplyConfigRequest, ApplyConfigResult};
use beacon_runtime::publish::publish;
use beacon_testkit::{wait_until, DaemonProcess};
use beacon_tests::rig::{metric, Blackhole, Rig};
use beacon_tests::{HttpTarget, DECIDE, READY};

/// A page whose component `api` has one HTTP check per region, each of its
/// own target, so a test can fail one region at a time.
fn per_region_page(page: &str, targets: &[(&str, String)], extra: &str) -> String {
    let regions: Vec<String> = targets.iter().map(|(r, _)| format!("\"{r}\"")).collect();
    let mut text = format!(
        r#"
[page]
id = "{page}"
name = "Decider test"

[defaults]
regions = [{}]
interval = "1s"
timeout = "1s"
failure_threshold = 2
recovery_threshold = 2

[[components]]
id = "api"
name = "API"
{extra}
"#,
        regions.join(", ")
    );
    for (region, url) in targets {
        text.push_str(&format!(
            "\n[[components.checks]]\nid = \"{region}\"\ntype = \"http\"\nurl = \"{url}\"\nregions = [\"{region}\"]\n"
        ));
    }
    text
}

/// Every STATUS event of a component forms one chain: each starts where the
/// one before ended, and no event appears twice.
fn assert_chain(events: &[Envelope<StatusChange>]) {
    let mut ids = HashSet::new();
    for (i, event) in events.iter().enumerate() {
        assert!(ids.insert(event.id), "event {} appears twice", event.id);
        if i > 0 {
            assert_eq!(
                event.data.from,
                Some(events[i - 1].data.to),
                "event {i} does not start where event {} ended: {:#?}",
                i - 1,
                events
                    .iter()
                    .map(|e| (e.data.from, e.data.to))
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[tokio::test]
async fn a_quorum_of_two_regions_makes_a_major_outage_and_one_a_partial() {
    let rig = Rig::start(&["eu", "us", "ap"], &[]).await;
    let mut eu = HttpTarget::start().await;
    let mut us = HttpTarget::start().await;
    let ap = HttpTarget::start().await;
    rig.apply(&per_region_page(
        "quorum",
        &[("eu", eu.url()), ("us", us.url()), ("ap", ap.url())],
        "quorum = 2",
    ))
    .await;
    rig.wait_status("quorum", "api", ComponentStatus::Operational)
        .await;

    eu.down();
    let partial = rig
        .wait_status("quorum", "api", ComponentStatus::PartialOutage)
        .await;
    assert!(
        partial
            .evidence
            .rule
            .starts_with("below quorum: 1 of 3 regions down (quorum 2)"),
        "{}",
        partial.evidence.rule
    );

    us.down();
    let major = rig
        .wait_status("quorum", "api", ComponentStatus::MajorOutage)
        .await;
    assert!(
        major
            .evidence
            .rule
            .starts_with("quorum: 2 of 3 regions down (quorum 2)"),
        "{}",
        major.evidence.rule
    );
    let down: Vec<&str> = major
        .evidence
        .regions
        .iter()
        .filter(|r| r.state == RegionState::Down)
        .map(|r| r.region.as_str())
        .collect();
    assert_eq!(down, ["eu", "us"]);
    for region in major
        .evidence
        .regions
        .iter()
        .filter(|r| r.state == RegionState::Down)
    {
        assert!(
            region.samples.len() >= 2,
            "sample results name the evidence: {region:?}"
        );
        assert!(region.last_error.is_some());
    }
    assert!(major.evidence.trigger.is_some());
    assert!(major.at_ms > 0);

    eu.up().await;
    us.up().await;
    rig.wait_status("quorum", "api", ComponentStatus::Operational)
        .await;
    assert_chain(&rig.status_events("quorum", "api").await);
}

#[tokio::test]
async fn a_region_whose_probe_stops_goes_stale_and_stops_counting() {
    let mut rig = Rig::start(&["eu", "us", "ap"], &[]).await;
    let eu = HttpTarget::start().await;
    let us = HttpTarget::start().await;
    let mut ap = HttpTarget::start().await;
    rig.apply(&per_region_page(
        "stale",
        &[("eu", eu.url()), ("us", us.url()), ("ap", ap.url())],
        "",
    ))
    .await;
    rig.wait_status("stale", "api", ComponentStatus::Operational)
        .await;
    ap.down();
    rig.wait_status("stale", "api", ComponentStatus::PartialOutage)
        .await;

    // The ap probe dies: three intervals later ap is left out, and what the
    // regions that still report say is the status.
    let probe = rig
        .probes
        .iter_mut()
        .find(|(r, _)| r == "ap")
        .expect("ap probe");
    probe.1.kill();
    let back = rig
        .wait_status("stale", "api", ComponentStatus::Operational)
        .await;
    let ap_evidence = back
        .evidence
        .regions
        .iter()
        .find(|r| r.region == "ap")
        .expect("ap");
    assert_eq!(ap_evidence.state, RegionState::Stale);
    assert!(
        back.evidence.rule.contains("left out: ap stale"),
        "{}",
        back.evidence.rule
    );
    assert!(
        back.evidence.trigger.is_none(),
        "time decided it, not a result"
    );
}

#[tokio::test]
async fn a_probe_that_fails_every_check_is_suspect_and_pages_no_one() {
    let rig = Rig::start(&["eu", "us"], &["--suspect-min-checks", "10"]).await;
    let healthy = HttpTarget::start().await;
    let blackhole = Blackhole::start().await;
    let mut text = String::from(
        r#"
[page]
id = "suspect"
name = "Suspect probe"
[defaults]
interval = "1s"
timeout = "1s"
failure_threshold = 2
recovery_threshold = 2
"#,
    );
    // Every check of region eu points at an address that never answers.
    for n in 0..12 {
        text.push_str(&format!(
            "\n[[components]]\nid = \"c{n}\"\nname = \"C{n}\"\n\
             [[components.checks]]\nid = \"eu\"\ntype = \"http\"\nurl = \"{}\"\nregions = [\"eu\"]\n\
             [[components.checks]]\nid = \"us\"\ntype = \"http\"\nurl = \"{}\"\nregions = [\"us\"]\n",
            blackhole.url(),
            healthy.url()
        ));
    }
    rig.apply(&text).await;

    let verdict = wait_until("a verdict that eu is suspect", DECIDE, || {
        let verdicts = rig.verdicts();
        async move {
            verdicts
                .await
                .into_iter()
                .find(|v| v.region == "eu" && v.suspect)
        }
    })
    .await;
    assert!(verdict.failing >= 10 && verdict.checks >= 10, "{verdict:?}");
    assert!(
        verdict.reason.contains("other regions pass"),
        "{}",
        verdict.reason
    );
    for n in 0..12 {
        let component = format!("c{n}");
        let change = rig
            .wait_status("suspect", &component, ComponentStatus::Operational)
            .await;
        let eu = change
            .evidence
            .regions
            .iter()
            .find(|r| r.region == "eu")
            .expect("eu");
        assert_eq!(eu.state, RegionState::Suspect);
    }
    // Never an outage, never an incident.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in 0..12 {
        let events = rig.status_events("suspect", &format!("c{n}")).await;
        assert!(
            events
                .iter()
                .all(|e| e.data.to == ComponentStatus::Operational),
            "c{n}: {:?}",
            events.iter().map(|e| e.data.to).collect::<Vec<_>>()
        );
    }
    let incidents = rig
        .ctl_json(&["incident", "list", "suspect", "--all"])
        .await;
    assert_eq!(incidents.as_array().map(Vec::len), Some(0), "{incidents}");
    let suspects = metric(
        &rig.deciders[0].admin_url(),
        "beacon_decider_suspect_regions",
    )
    .await;
    assert_eq!(suspects, 1.0);
}

#[tokio::test]
async fn a_maintenance_window_opens_and_closes_at_its_times() {
    let rig = Rig::start(&["eu", "us"], &[]).await;
    let mut eu = HttpTarget::start().await;
    let mut us = HttpTarget::start().await;
    rig.apply(&per_region_page(
        "mnt",
        &[("eu", eu.url()), ("us", us.url())],
        "",
    ))
    .await;
    rig.wait_status("mnt", "api", ComponentStatus::Operational)
        .await;

    let window = rig
        .ctl_json(&[
            "maintenance",
            "schedule",
            "mnt",
            "--title",
            "Database upgrade",
            "--start",
            "+3s",
            "--duration",
            "6s",
            "--component",
            "api",
            "--remind-before",
            "2s",
        ])
        .await;
    let id = window["state"]["maintenance"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert_eq!(window["state"]["phase"], "scheduled");

    // It starts by itself; the component shows under maintenance, and the
    // target failing meanwhile proposes nothing.
    let started = rig
        .wait_status("mnt", "api", ComponentStatus::UnderMaintenance)
        .await;
    assert_eq!(started.source, StatusSource::Maintenance);
    eu.down();
    us.down();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = rig.record("mnt", "api").await.expect("a record");
    assert_eq!(during.status, ComponentStatus::UnderMaintenance);
    assert_eq!(
        during.automatic,
        Some(ComponentStatus::MajorOutage),
        "automation kept deciding"
    );

    // It ends by itself; automation is back, and now the outage is real.
    let after = rig
        .wait_status("mnt", "api", ComponentStatus::MajorOutage)
        .await;
    assert_eq!(after.source, StatusSource::Automatic);
    assert!(
        after.proposal.is_some(),
        "after the window an outage proposes an incident"
    );
    let all = rig.ctl_json(&["maintenance", "list", "mnt", "--all"]).await;
    let ours = all
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|w| w["state"]["maintenance"] == id.as_str())
        })
        .expect("the window is listed");
    assert_eq!(ours["state"]["phase"], "completed");
    assert_eq!(ours["reminded"], true);
    eu.up().await;
    us.up().await;
    rig.wait_status("mnt", "api", ComponentStatus::Operational)
        .await;
    assert_chain(&rig.status_events("mnt", "api").await);
}

#[tokio::test]
async fn an_override_wins_until_it_expires_and_clear_hands_back() {
    let rig = Rig::start(&["eu", "us"], &[]).await;
    let eu = HttpTarget::start().await;
    let us = HttpTarget::start().await;
    rig.apply(&per_region_page(
        "ovr",
        &[("eu", eu.url()), ("us", us.url())],
        "",
    ))
    .await;
    rig.wait_status("ovr", "api", ComponentStatus::Operational)
        .await;

    let view = rig
        .ctl_json(&[
            "component",
            "set",
            "ovr",
            "api",
            "partial_outage",
            "--for",
            "4s",
            "--reason",
            "upstream provider",
        ])
        .await;
    assert_eq!(view["override"]["status"], "partial_outage");
    let set = rig
        .wait_status("ovr", "api", ComponentStatus::PartialOutage)
        .await;
    assert_eq!(set.source, StatusSource::Override);
    assert!(
        set.evidence.rule.contains("override by tester"),
        "{}",
        set.evidence.rule
    );
    assert!(
        set.proposal.is_none(),
        "an operator's status proposes nothing"
    );
    let expired = rig
        .wait_status("ovr", "api", ComponentStatus::Operational)
        .await;
    assert_eq!(expired.source, StatusSource::Automatic);

    rig.ctl_json(&["component", "set", "ovr", "api", "major_outage"])
        .await;
    rig.wait_status("ovr", "api", ComponentStatus::MajorOutage)
        .await;
    let explained = rig.ctl(&["component", "explain", "ovr", "api"]).await;
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(
        text.contains("override: major_outage by tester until cleared"),
        "{text}"
    );
    rig.ctl_json(&["component", "clear", "ovr", "api"]).await;
    let cleared = rig
        .wait_status("ovr", "api", ComponentStatus::Operational)
        .await;
    assert_eq!(cleared.source, StatusSource::Automatic);

    // Bad requests say why and change nothing.
    let unknown = rig
        .ctl(&["component", "set", "ovr", "nope", "major_outage"])
        .await;
    assert_eq!(unknown.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no component \"nope\""));
    let bad_status = rig.ctl(&["component", "set", "ovr", "api", "down"]).await;
    assert_eq!(bad_status.status.code(), Some(64));
    let events = rig.status_events("ovr", "api").await;
    assert_eq!(
        events.last().map(|e| e.data.to),
        Some(ComponentStatus::Operational)
    );
    assert_chain(&events);
}

#[tokio::test]
async fn a_proposal_follows_a_worsening_outage_and_confirming_it_never_understates_it() {
    let rig = Rig::start(&["eu", "us"], &[]).await;
    let mut eu = HttpTarget::start().await;
    let mut us = HttpTarget::start().await;
    rig.apply(&per_region_page(
        "worse",
        &[("eu", eu.url()), ("us", us.url())],
        "",
    ))
    .await;
    rig.wait_status("worse", "api", ComponentStatus::Operational)
        .await;

    // One region down first: a partial outage, proposed as one.
    eu.down();
    rig.wait_status("worse", "api", ComponentStatus::PartialOutage)
        .await;
    let proposal = |status: &'static str| {
        let rig = &rig;
        move || async move {
            let list = rig.ctl_json(&["incident", "list", "worse"]).await;
            list.as_array().and_then(|l| {
                l.iter()
                    .find(|i| {
                        i["lifecycle"] == "proposed" && i["components"][0]["status"] == status
                    })
                    .cloned()
            })
        }
    };
    let partial = wait_until(
        "a partial-outage proposal",
        DECIDE,
        proposal("partial_outage"),
    )
    .await;
    let id = partial["id"].as_str().expect("id").to_owned();

    // Then every region: the proposal, still unconfirmed, follows.
    us.down();
    rig.wait_status("worse", "api", ComponentStatus::MajorOutage)
        .await;
    let major = wait_until("the proposal to follow", DECIDE, proposal("major_outage")).await;
    assert_eq!(major["id"], id.as_str(), "the same proposal, revised");
    assert!(
        major["title"]
            .as_str()
            .is_some_and(|t| t.ends_with(": major outage")),
        "{major}"
    );

    // Confirmed as a new user would, without naming a status: the page
    // keeps showing the major outage every region sees.
    rig.ctl_json(&[
        "incident",
        "confirm",
        "worse",
        &id,
        "-m",
        "We are on it",
        "--impact",
        "major",
    ])
    .await;
    wait_until("the incident to show the outage", DECIDE, || async {
        rig.record("worse", "api").await.filter(|r| {
            r.source == beacon_contract::messages::StatusSource::Incident
                && r.status == ComponentStatus::MajorOutage
        })
    })
    .await;
    let record = rig.record("worse", "api").await.expect("a record");
    assert_eq!(record.status, ComponentStatus::MajorOutage, "{record:?}");
}

#[tokio::test]
async fn incidents_are_proposed_confirmed_resolved_and_dismissed_from_the_cli() {
    let rig = Rig::start(&["eu", "us"], &[]).await;
    let mut eu = HttpTarget::start().await;
    let mut us = HttpTarget::start().await;
    rig.apply(&per_region_page(
        "inc",
        &[("eu", eu.url()), ("us", us.url())],
        "",
    ))
    .await;
    rig.wait_status("inc", "api", ComponentStatus::Operational)
        .await;

    eu.down();
    us.down();
    rig.wait_status("inc", "api", ComponentStatus::MajorOutage)
        .await;
    let listed = wait_until("a proposed incident", DECIDE, || async {
        let list = rig.ctl_json(&["incident", "list", "inc"]).await;
        list.as_array()
            .and_then(|l| l.iter().find(|i| i["lifecycle"] == "proposed").cloned())
    })
    .await;
    let id = listed["id"].as_str().expect("id").to_owned();
    assert_eq!(listed["components"][0]["component"], "api");
    assert!(listed["evidence"]["rule"]
        .as_str()
        .is_some_and(|r| r.contains("regions down")));

    // A proposal cannot take updates before it is confirmed.
    let early = rig
        .ctl(&["incident", "update", "inc", &id, "-m", "early"])
        .await;
    assert_eq!(
        early.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    assert!(String::from_utf8_lossy(&early.stderr).contains("confirm it first"));

    let confirmed = rig
        .ctl_json(&[
            "incident",
            "confirm",
            "inc",
            &id,
            "-m",
            "We are on it",
            "--title",
            "API down",
        ])
        .await;
    assert_eq!(confirmed["lifecycle"], "open");
    assert_eq!(confirmed["title"], "API down");
    // An edit corrects the impact without a timeline entry.
    let updates_before = confirmed["updates"].as_array().map_or(0, Vec::len);
    let edited = rig
        .ctl_json(&["incident", "edit", "inc", &id, "--impact", "critical"])
        .await;
    assert_eq!(edited["impact"], "critical");
    assert_eq!(
        edited["updates"].as_array().map_or(0, Vec::len),
        updates_before
    );
    let revision = edited["revision"].as_u64().expect("revision");

    // A stale revision is refused with the current state (exit 75).
    let stale = rig
        .ctl(&[
            "incident",
            "update",
            "inc",
            &id,
            "-m",
            "x",
            "--revision",
            &(revision - 1).to_string(),
        ])
        .await;
    assert_eq!(
        stale.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    assert!(String::from_utf8_lossy(&stale.stderr).contains("current state"));

    let updated = rig
        .ctl_json(&[
            "incident",
            "update",
            "inc",
            &id,
            "--state",
            "identified",
            "-m",
            "Cause found",
            "--revision",
            &revision.to_string(),
        ])
        .await;
    assert_eq!(updated["state"], "identified");
    let resolved = rig
        .ctl_json(&["incident", "resolve", "inc", &id, "-m", "Fixed"])
        .await;
    assert_eq!(resolved["state"], "resolved");
    let timeline: Vec<&str> = resolved["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|u| u["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(timeline.last(), Some(&"resolved"));
    assert!(timeline.contains(&"identified"));

    // A resolved incident takes no more updates.
    let late = rig
        .ctl(&["incident", "update", "inc", &id, "-m", "again"])
        .await;
    assert_eq!(late.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&late.stderr).contains("is resolved"));
    let postmortem = rig
        .ctl_json(&["incident", "postmortem", "inc", &id, "-m", "What happened"])
        .await;
    assert_eq!(postmortem["postmortem"], "What happened");

    // Recover, fail again: a new proposal, dismissed this time.
    eu.up().await;
    us.up().await;
    rig.wait_status("inc", "api", ComponentStatus::Operational)
        .await;
    eu.down();
    us.down();
    rig.wait_status("inc", "api", ComponentStatus::MajorOutage)
        .await;
    let second = wait_until("a second proposal", DECIDE, || async {
        let list = rig.ctl_json(&["incident", "list", "inc"]).await;
        list.as_array().and_then(|l| {
            l.iter()
                .find(|i| i["lifecycle"] == "proposed" && i["id"] != id.as_str())
                .cloned()
        })
    })
    .await;
    let second_id = second["id"].as_str().expect("id").to_owned();
    let dismissed = rig
        .ctl_json(&[
            "incident",
            "dismiss",
            "inc",
            &second_id,
            "-m",
            "planned test",
        ])
        .await;
    assert_eq!(dismissed["lifecycle"], "dismissed");
    assert_eq!(dismissed["dismissal_reason"], "planned test");
    let open = rig.ctl_json(&["incident", "list", "inc"]).await;
    assert_eq!(open.as_array().map(Vec::len), Some(0), "{open}");

    // An operator's own incident sets the status it names.
    let created = rig
        .ctl_json(&[
            "incident",
            "create",
            "inc",
            "--title",
            "Slow checkout",
            "--impact",
            "minor",
            "--component",
            "api=degraded_performance",
            "-m",
            "Looking",
        ])
        .await;
    let created_id = created["id"].as_str().expect("id").to_owned();
    let set = rig
        .wait_status("inc", "api", ComponentStatus::DegradedPerformance)
        .await;
    assert_eq!(set.source, StatusSource::Incident);
    rig.ctl_json(&["incident", "resolve", "inc", &created_id])
        .await;
    let back = rig
        .wait_status("inc", "api", ComponentStatus::MajorOutage)
        .await;
    assert_eq!(back.source, StatusSource::Automatic);
    assert_chain(&rig.status_events("inc", "api").await);
}

/// A rig whose page `page` reached `operational`, then had its probes and
/// its decider killed, so the test can leave a crash's state on the bus;
/// the targets stay up with it.
async fn stopped_at_operational(page: &str) -> (Rig, [HttpTarget; 2]) {
    let mut rig = Rig::start(&["eu", "us"], &[]).await;
    let eu = HttpTarget::start().await;
    let us = HttpTarget::start().await;
    rig.apply(&per_region_page(
        page,
        &[("eu", eu.url()), ("us", us.url())],
        "",
    ))
    .await;
    rig.wait_status(page, "api", ComponentStatus::Operational)
        .await;
    for (_, probe) in &mut rig.probes {
        probe.kill();
    }
    rig.deciders[0].kill();
    (rig, [eu, us])
}

/// A major-outage record of `page`'s `api` made by change `change`.
fn outage(page: &str, change: EventId) -> StatusRecord {
    let mut record = StatusRecord::new(
        page,
        "api",
        ComponentStatus::MajorOutage,
        wall_clock_ms(),
        change,
        Evidence {
            rule: "quorum: 2 of 2 regions down (quorum majority)".into(),
            trigger: None,
            regions: vec![],
        },
    );
    record.from = Some(ComponentStatus::Operational);
    record
}

/// Writes `record` over what KV `status` holds for its component, as the
/// decider's commit would; returns the record it replaced.
async fn store_over(rig: &Rig, record: &StatusRecord) -> StatusRecord {
    let kv = rig.js.get_key_value(KV_STATUS).await.expect("KV status");
    let key = status_key(&record.page, &record.component);
    let entry = kv.entry(&key).await.expect("read").expect("a record");
    let before: Envelope<StatusRecord> = Envelope::decode(&entry.value).expect("record");
    kv.update(
        &key,
        Envelope::new(&HlcClock::new(), "global", record.clone())
            .encode()
            .expect("encode")
            .into(),
        entry.revision,
    )
    .await
    .expect("write the record");
    before.data
}

#[tokio::test]
async fn a_stored_change_whose_event_was_lost_is_published_once_on_load() {
    let (mut rig, _targets) = stopped_at_operational("lost").await;

    // The state a crash between the KV write and the STATUS publish leaves:
    // a new record, no event.
    let change = EventId::new();
    let before = store_over(&rig, &outage("lost", change)).await;
    assert_ne!(before.change, change);

    rig.deciders[0].restart();
    rig.deciders[0].wait_ready(READY).await;
    let repaired = wait_until("the lost event to be published", DECIDE, || async {
        let events = rig.status_events("lost", "api").await;
        events.iter().any(|e| e.id == change).then_some(events)
    })
    .await;
    assert_eq!(repaired.iter().filter(|e| e.id == change).count(), 1);
    assert_chain(&repaired);
    let republished = metric(
        &rig.deciders[0].admin_url(),
        "beacon_decider_republished_changes_total",
    )
    .await;
    assert_eq!(republished, 1.0);
}

#[tokio::test]
async fn a_proposal_lost_after_its_status_event_was_published_is_made_on_load() {
    let (mut rig, _targets) = stopped_at_operational("unproposed").await;

    // The state a crash between the STATUS publish and the proposal
    // leaves: the record and its event, no incident.
    let change = EventId::new();
    let proposal = EventId::new().to_string().to_ascii_lowercase();
    let mut record = outage("unproposed", change);
    record.proposal = Some(proposal.clone());
    store_over(&rig, &record).await;
    let clock = HlcClock::new();
    publish(
        &rig.js,
        &beacon_contract::names::status_subject("unproposed", "api"),
        &Envelope::with_id(change, clock.now(), "global", record.change_event()),
    )
    .await
    .expect("publish the change");

    rig.deciders[0].restart();
    rig.deciders[0].wait_ready(READY).await;
    let made = wait_until("the lost proposal to be made", DECIDE, || async {
        let list = rig.ctl_json(&["incident", "list", "unproposed"]).await;
        list.as_array()
            .and_then(|l| l.iter().find(|i| i["id"] == proposal.as_str()).cloned())
    })
    .await;
    assert_eq!(made["lifecycle"], "proposed");
    // The event was there: nothing was published again.
    let events = rig.status_events("unproposed", "api").await;
    assert_eq!(events.iter().filter(|e| e.id == change).count(), 1);
}

#[tokio::test]
async fn a_status_change_made_while_status_is_away_is_published_once_it_returns() {
    let rig = Rig::start(&["eu", "us"], &[]).await;
    let mut eu = HttpTarget::start().await;
    let mut us = HttpTarget::start().await;
    rig.apply(&per_region_page(
        "away",
        &[("eu", eu.url()), ("us", us.url())],
        "",
    ))
    .await;
    rig.wait_status("away", "api", ComponentStatus::Operational)
        .await;

    // STATUS is gone: the record can be written, its event cannot.
    rig.js.delete_stream("STATUS").await.expect("delete STATUS");
    eu.down();
    us.down();
    let stored = wait_until("KV to hold an outage", DECIDE, || async {
        rig.record("away", "api")
            .await
            .filter(|r| r.status != ComponentStatus::Operational)
    })
    .await;
    // While STATUS is away nothing more is stored: the decider cannot know
    // what the subject holds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rig.record("away", "api").await.map(|r| r.change),
        Some(stored.change)
    );
    let ensured = rig.ctl(&["bus", "ensure"]).await;
    assert!(
        ensured.status.success(),
        "{}",
        String::from_utf8_lossy(&ensured.stderr)
    );

    // The retry finishes the stored change (its event, once) and goes on.
    rig.wait_status("away", "api", ComponentStatus::MajorOutage)
        .await;
    let events = rig.status_events("away", "api").await;
    assert_eq!(
        events.iter().filter(|e| e.id == stored.change).count(),
        1,
        "{events:#?}"
    );
    assert_eq!(
        events[0].id, stored.change,
        "the stored change is the new stream's first event"
    );
    eu.up().await;
    us.up().await;
    rig.wait_status("away", "api", ComponentStatus::Operational)
        .await;
    assert_chain(&rig.status_events("away", "api").await);
}

#[tokio::test]
async fn two_deciders_lose_and_double_no_status_event_across_kill_9() {
    let mut rig = Rig::start(&["eu", "us"], &[]).await;
    let standby = DaemonProcess::spawn_with_admin(
        "beacon-decider",
        vec!["--nats-url".into(), rig.nats.url()],
    );
    standby.wait_ready(READY).await;
    rig.deciders.push(standby);
    let mut eu = HttpTarget::start().await;
    let mut us = HttpTarget::start().await;
    rig.apply(&per_region_page(
        "ha",
        &[("eu", eu.url()), ("us", us.url())],
        "flap_transitions = 1000",
    ))
    .await;
    rig.wait_status("ha", "api", ComponentStatus::Operational)
        .await;

    let leader = wait_until("one decider to lead", READY, || async {
        let mut holders = Vec::new();
        for (i, decider) in rig.deciders.iter().enumerate() {
            if metric(&decider.admin_url(), "beacon_decider_lease_holder{").await >= 1.0 {
                holders.push(i);
            }
        }
        (holders.len() == 1).then(|| holders[0])
    })
    .await;

    // Flip the target while the leader dies in the middle.
    for round in 0..6 {
        if round % 2 == 0 {
            eu.down();
            us.down();
            if round == 2 {
                rig.deciders[leader].kill();
            }
            rig.wait_status("ha", "api", ComponentStatus::MajorOutage)
                .await;
        } else {
            eu.up().await;
            us.up().await;
            rig.wait_status("ha", "api", ComponentStatus::Operational)
                .await;
        }
    }
    let events = rig.status_events("ha", "api").await;
    assert_chain(&events);
    let record = rig.record("ha", "api").await.expect("record");
    let last = events.last().expect("events");
    assert_eq!(
        (last.id, last.data.to),
        (record.change, record.status),
        "KV and STATUS agree"
    );
    let outages = events
        .iter()
        .filter(|e| e.data.to == ComponentStatus::MajorOutage)
        .count();
    assert_eq!(
        outages,
        3,
        "three outages, each once: {:?}",
        events.iter().map(|e| e.data.to).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_restarted_decider_makes_no_spurious_transition() {
    let mut rig = Rig::start(&["eu", "us"], &[]).await;
    let mut eu = HttpTarget::start().await;
    let us = HttpTarget::start().await;
    rig.apply(&per_region_page(
        "restart",
        &[("eu", eu.url()), ("us", us.url())],
        "",
    ))
    .await;
    rig.wait_status("restart", "api", ComponentStatus::Operational)
        .await;
    eu.down();
    rig.wait_status("restart", "api", ComponentStatus::PartialOutage)
        .await;
    let before = rig.status_events("restart", "api").await.len();

    rig.deciders[0].kill();
    rig.deciders[0].restart();
    rig.deciders[0].wait_ready(READY).await;
    wait_until("the new term to decide", DECIDE, || async {
        (metric(&rig.deciders[0].admin_url(), "beacon_decider_results_total").await >= 10.0)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rig.status_events("restart", "api").await;
    assert_eq!(
        after.len(),
        before,
        "no event after the restart: {:?}",
        after.iter().map(|e| e.data.to).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn bad_results_are_counted_and_change_nothing() {
    let rig = Rig::start(&["eu", "us"], &[]).await;
    let eu = HttpTarget::start().await;
    let us = HttpTarget::start().await;
    rig.apply(&per_region_page(
        "bad",
        &[("eu", eu.url()), ("us", us.url())],
        "",
    ))
    .await;
    rig.wait_status("bad", "api", ComponentStatus::Operational)
        .await;
    let before = rig.status_events("bad", "api").await.len();

    let clock = HlcClock::new();
    let down = |component: &str, check: &str, region: &str, at: u64| HealthResult {
        latency_ms: 1,
        error: Some("forged".into()),
        ..HealthResult::new("bad", component, check, region, Outcome::Down, at)
    };
    let now = wall_clock_ms();
    let forged = [
        (down("api", "eu", "eu", now + 3_600_000), "future"),
        (down("api", "eu", "eu", now - 3_600_000), "too_old"),
        (down("ghost", "eu", "eu", now), "unknown_component"),
        (down("api", "ghost", "eu", now), "unknown_check"),
    ];
    for _ in 0..3 {
        for (result, _) in &forged {
            let subject = health_subject(&result.page, &result.component, &result.region);
            publish(
                &rig.js,
                &subject,
                &Envelope::new(&clock, "eu", result.clone()),
            )
            .await
            .expect("publish");
        }
        let mut other_page = down("api", "eu", "eu", now);
        other_page.page = "nopage".into();
        publish(
            &rig.js,
            &health_subject("nopage", "api", "eu"),
            &Envelope::new(&clock, "eu", other_page),
        )
        .await
        .expect("publish");
    }
    let admin = rig.deciders[0].admin_url();
    for (_, reason) in &forged {
        let line = format!("beacon_decider_results_ignored_total{{reason=\"{reason}\"}}");
        wait_until(&format!("results counted as {reason}"), DECIDE, || async {
            (metric(&admin, &line).await >= 3.0).then_some(())
        })
        .await;
    }
    wait_until("results for an unknown page counted", DECIDE, || async {
        (metric(
            &admin,
            "beacon_decider_results_ignored_total{reason=\"unknown_page\"}",
        )
        .await
            >= 3.0)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = rig.status_events("bad", "api").await;
    assert_eq!(events.len(), before, "forged results changed nothing");
    assert_eq!(
        events.last().map(|e| e.data.to),
        Some(ComponentStatus::Operational)
    );

    // Bad API requests get a clear error and change nothing.
    let end_before_start = rig
        .ctl(&[
            "maintenance",
            "schedule",
            "bad",
            "--title",
            "x",
            "--start",
            "+1h",
            "--end",
            "+30m",
            "--component",
            "api",
        ])
        .await;
    assert_eq!(end_before_start.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&end_before_start.stderr)
        .contains("ends_at: must be after the start"));
    let bad_rule = rig
        .ctl(&[
            "maintenance",
            "schedule",
            "bad",
            "--title",
            "x",
            "--start",
            "+1h",
            "--duration",
            "1h",
            "--component",
            "api",
            "--recurrence",
            "every day",
        ])
        .await;
    assert_eq!(bad_rule.status.code(), Some(64));
    let no_incident = rig.ctl(&["incident", "resolve", "bad", "nope"]).await;
    assert_eq!(no_incident.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&no_incident.stderr).contains("has no incident"));
    let windows = rig.ctl_json(&["maintenance", "list", "bad", "--all"]).await;
    assert_eq!(windows.as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn config_apply_is_compare_and_set() {
    let rig = Rig::start(&["eu"], &[]).await;
    let target = HttpTarget::start().await;
    let text = |name: &str| {
        per_region_page("cas", &[("eu", target.url())], "").replace("Decider test", name)
    };
    let request = |name: &str, expected: Option<u64>| {
        serde_json::to_vec(&ApplyConfigRequest {
            config: beacon_page::config::parse_toml(&text(name)).expect("parses"),
            expected_revision: expected,
        })
        .expect("encode")
    };
    let apply = |body: Vec<u8>| {
        let client = rig.client.clone();
        async move {
            let reply = client
                .request(
                    beacon_page::config::api::CONFIG_APPLY.subject(),
                    body.into(),
                )
                .await
                .expect("a reply");
            serde_json::from_slice::<ApiReply<ApplyConfigResult>>(&reply.payload)
                .expect("a reply body")
        }
    };
    let first = match apply(request("One", Some(0))).await {
        ApiReply::Ok { result } => result,
        other => panic!("first apply: {other:?}"),
    };
    // Based on a revision that is gone: refused with the current one.
    match apply(request("Two", Some(first.revision + 7))).await {
        ApiReply::Conflict {
            current: Some(current),
            ..
        } => assert_eq!(current.revision, first.revision),
        other => panic!("stale apply: {other:?}"),
    }
    // Concurrent applies of different configs: each one wins or is told it
    // conflicted; none is lost silently.
    let replies = futures::future::join_all(
        (0..8).map(|n| apply(request(&format!("Racer {n}"), Some(first.revision)))),
    )
    .await;
    let won: Vec<&ApplyConfigResult> = replies
        .iter()
        .filter_map(|r| match r {
            ApiReply::Ok { result } => Some(result),
            ApiReply::Conflict { .. } => None,
            other => panic!("unexpected reply: {other:?}"),
        })
        .collect();
    assert_eq!(won.len(), 1, "exactly one racer wins: {replies:?}");
}

/// Deciders leading partition `partition`, per their lease metrics.
async fn partition_holders(rig: &Rig, partition: u32) -> Vec<usize> {
    let mut holders = Vec::new();
    for (i, decider) in rig.deciders.iter().enumerate() {
        let Some((_, body)) = beacon_tests::get(&format!("{}/metrics", decider.admin_url())).await
        else {
            continue;
        };
        let holds = body.lines().any(|line| {
            line.starts_with("beacon_decider_lease_holder{")
                && line.contains(&format!("partition=\"{partition}\""))
                && line.ends_with(" 1")
        });
        if holds {
            holders.push(i);
        }
    }
    holders
}

#[tokio::test]
async fn pages_in_two_partitions_are_led_by_one_decider_each_and_survive_a_kill() {
    // Pages `alpha` and `gamma` hash into partitions 1 and 0 of 2.
    let mut rig = Rig::start(&["eu"], &["--partitions", "2"]).await;
    let second = DaemonProcess::spawn_with_admin(
        "beacon-decider",
        vec![
            "--nats-url".into(),
            rig.nats.url(),
            "--partitions".into(),
            "2".into(),
        ],
    );
    second.wait_ready(READY).await;
    rig.deciders.push(second);
    let mut alpha = HttpTarget::start().await;
    let mut gamma = HttpTarget::start().await;
    rig.apply(&per_region_page("alpha", &[("eu", alpha.url())], ""))
        .await;
    rig.apply(&per_region_page("gamma", &[("eu", gamma.url())], ""))
        .await;
    rig.wait_status("alpha", "api", ComponentStatus::Operational)
        .await;
    rig.wait_status("gamma", "api", ComponentStatus::Operational)
        .await;
    for partition in 0..2 {
        let holders = wait_until(
            &format!("one holder of partition {partition}"),
            READY,
            || async {
                let holders = partition_holders(&rig, partition).await;
                (holders.len() == 1).then_some(holders)
            },
        )
        .await;
        assert_eq!(holders.len(), 1);
    }

    // Whichever decider dies, the other leads both partitions and decides
    // both pages.
    rig.deciders[0].kill();
    for partition in 0..2 {
        wait_until(
            &format!("decider 1 to lead partition {partition}"),
            DECIDE,
            || async { (partition_holders(&rig, partition).await == [1]).then_some(()) },
        )
        .await;
    }
    alpha.down();
    gamma.down();
    rig.wait_status("alpha", "api", ComponentStatus::MajorOutage)
        .await;
    rig.wait_status("gamma", "api", ComponentStatus::MajorOutage)
        .await;
    for page in ["alpha", "gamma"] {
        assert_chain(&rig.status_events(page, "api").await);
    }
}

#[tokio::test]
async fn a_probe_whose_canary_fails_is_suspect_at_once() {
    let rig = Rig::start(&["eu", "us"], &[]).await;
    let mut eu = HttpTarget::start().await;
    let us = HttpTarget::start().await;
    rig.apply(&per_region_page(
        "canary",
        &[("eu", eu.url()), ("us", us.url())],
        "",
    ))
    .await;
    rig.wait_status("canary", "api", ComponentStatus::Operational)
        .await;

    // eu's probe says its canary fails: its results stop counting, so its
    // failures are no outage.
    let clock = HlcClock::new();
    let heartbeat = |failing: bool| {
        Envelope::new(
            &clock,
            "eu",
            beacon_contract::messages::ProbeHeartbeat {
                region: "eu".into(),
                probe: "test".into(),
                at_ms: wall_clock_ms(),
                interval_ms: 1_000,
                checks: 1,
                canary: Some(beacon_contract::messages::CanaryResult {
                    outcome: if failing { Outcome::Down } else { Outcome::Up },
                    error: failing.then(|| "canary unreachable".to_owned()),
                }),
            },
        )
    };
    // The probe keeps saying so, as a probe does every interval.
    let failing = {
        let js = rig.js.clone();
        let first = heartbeat(true);
        tokio::spawn(async move {
            let clock = HlcClock::new();
            let mut beat = first;
            loop {
                publish(
                    &js,
                    &beacon_contract::names::probe_heartbeat_subject("eu"),
                    &beat,
                )
                .await
                .expect("publish");
                tokio::time::sleep(Duration::from_millis(500)).await;
                beat = Envelope::new(&clock, "eu", beat.data.clone());
            }
        })
    };
    let verdict = wait_until("eu to be suspect", DECIDE, || async {
        rig.verdicts()
            .await
            .into_iter()
            .find(|v| v.region == "eu" && v.suspect)
    })
    .await;
    assert!(verdict.reason.contains("canary"), "{}", verdict.reason);
    eu.down();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let events = rig.status_events("canary", "api").await;
    assert_eq!(
        events.last().map(|e| e.data.to),
        Some(ComponentStatus::Operational),
        "a suspect region pages no one"
    );

    // The canary passes again: eu counts again, and its failure is real.
    failing.abort();
    publish(
        &rig.js,
        &beacon_contract::names::probe_heartbeat_subject("eu"),
        &heartbeat(false),
    )
    .await
    .expect("publish");
    let partial = rig
        .wait_status("canary", "api", ComponentStatus::PartialOutage)
        .await;
    let eu_state = partial
        .evidence
        .regions
        .iter()
        .find(|r| r.region == "eu")
        .map(|r| r.state);
    assert_eq!(eu_state, Some(RegionState::Down));
}
