//! The planner across a real process: batching windows, what notifies and
//! what does not, component filters, dedup across a subscriber's
//! endpoints, maintenance, and the changelog digest.

mod common;

use std::time::Duration;

use beacon_contract::api::NewSubscriber;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::{
    ChangelogEntry, ComponentStatus, DedupMode, DeliveryOutcome, Evidence, Impact,
    IncidentLifecycle, IncidentState, InhibitReason, Inhibition, MaintenanceAction,
    MaintenanceEvent, MaintenancePhase, StatusChange, StatusSource, SubscriberChannel,
};
use beacon_contract::names::{changelog_subject, maintenance_subject, status_subject};
use beacon_testkit::receivers::smtp::SmtpSink;
use beacon_testkit::receivers::web::WebSink;
use beacon_testkit::wait_until;
use common::*;

fn email(address: &str) -> SubscriberChannel {
    SubscriberChannel::Email {
        address: address.into(),
    }
}

fn subscriber(
    endpoints: Vec<SubscriberChannel>,
    components: &[&str],
    instant: &[&str],
) -> NewSubscriber {
    NewSubscriber {
        endpoints,
        components: components.iter().map(|c| c.to_string()).collect(),
        instant: instant.iter().map(|c| c.to_string()).collect(),
        dedup: DedupMode::Every,
        digest: false,
    }
}

async fn wait_mails(smtp: &SmtpSink, n: usize, what: &str) {
    wait_until(what, WAIT, || {
        let count = smtp.count();
        async move { (count >= n).then_some(()) }
    })
    .await;
}

fn to(smtp: &SmtpSink, address: &str) -> Vec<beacon_testkit::receivers::smtp::Mail> {
    smtp.mails()
        .into_iter()
        .filter(|m| m.to == [address])
        .collect()
}

#[tokio::test]
async fn the_first_update_goes_at_once_and_later_ones_are_coalesced_into_the_newest_state() {
    let smtp = SmtpSink::start().await;
    let extra = format!(
        "{}[notifications]\nwindow = \"3s\"\n",
        email_channel(&smtp.endpoint())
    );
    let h = Harness::start(&[page("window", &["api", "db"], &extra)], &[]).await;
    h.add_with(
        "window",
        subscriber(vec![email("plain@example.com")], &[], &[]),
        true,
    )
    .await;
    h.add_with(
        "window",
        subscriber(vec![email("eager@example.com")], &[], &["api"]),
        true,
    )
    .await;

    let id = incident_id();
    incident(
        &h,
        created("window", &id, "Checkout errors", Impact::Major, &["api"]),
    )
    .await;
    wait_mails(&smtp, 2, "the first update to both").await;
    let opened = std::time::Instant::now();
    incident(
        &h,
        updated(
            "window",
            &id,
            "u1",
            IncidentState::Identified,
            "Cause found",
        ),
    )
    .await;
    incident(
        &h,
        updated("window", &id, "u2", IncidentState::Resolved, "Fixed"),
    )
    .await;
    // The instant subscriber gets each update at once.
    wait_mails(&smtp, 4, "both updates to the instant subscriber").await;
    assert_eq!(
        to(&smtp, "plain@example.com").len(),
        1,
        "held in the window"
    );
    assert!(
        opened.elapsed() < Duration::from_secs(3),
        "the window was still open"
    );

    // When the window closes, one message with the newest state.
    wait_mails(&smtp, 5, "the window's flush").await;
    let plain = to(&smtp, "plain@example.com");
    assert_eq!(plain.len(), 2);
    let flushed = plain[1].decoded();
    assert!(flushed.contains("Resolved"), "{flushed}");
    assert!(
        flushed.contains("2 updates since our last message"),
        "{flushed}"
    );
    assert!(plain[1].at.duration_since(plain[0].at) >= Duration::from_millis(2_500));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.count(), 5, "nobody heard twice within the window");
    assert!(h.metric("beacon_notifier_held_total").await >= 1.0);
}

fn change(
    page: &str,
    component: &str,
    from: ComponentStatus,
    to: ComponentStatus,
    source: StatusSource,
    inhibited: bool,
) -> StatusChange {
    StatusChange {
        page: page.into(),
        component: component.into(),
        from: Some(from),
        to,
        at_ms: wall_clock_ms(),
        source,
        flapping: inhibited,
        inhibited: inhibited.then(|| Inhibition {
            reason: InhibitReason::Flapping,
            detail: "flapping".into(),
        }),
        proposal: None,
        evidence: Evidence {
            rule: "test".into(),
            trigger: None,
            regions: vec![],
        },
    }
}

#[tokio::test]
async fn proposals_and_inhibited_changes_notify_no_one_and_opted_in_status_changes_do() {
    let smtp = SmtpSink::start().await;
    let extra = format!(
        "{}[notifications]\nwindow = \"0s\"\ncomponent_status = true\n",
        email_channel(&smtp.endpoint())
    );
    let h = Harness::start(&[page("quiet", &["api", "db"], &extra)], &[]).await;
    h.add("quiet", vec![email("ops@example.com")], true).await;

    // A proposal is a draft for operators, not news.
    let mut proposal = created(
        "quiet",
        &incident_id(),
        "Maybe down",
        Impact::Major,
        &["api"],
    );
    proposal.action = beacon_contract::messages::IncidentAction::Proposed;
    proposal.lifecycle = Some(IncidentLifecycle::Proposed);
    incident(&h, proposal).await;
    // Inhibited (flapping), explained by an incident, and a first decision.
    let up = ComponentStatus::Operational;
    let down = ComponentStatus::MajorOutage;
    h.publish(
        &status_subject("quiet", "db"),
        change("quiet", "db", up, down, StatusSource::Automatic, true),
    )
    .await;
    h.publish(
        &status_subject("quiet", "db"),
        change("quiet", "db", up, down, StatusSource::Incident, false),
    )
    .await;
    let mut first = change("quiet", "db", up, up, StatusSource::Automatic, false);
    first.from = None;
    h.publish(&status_subject("quiet", "db"), first).await;
    // And one that is news.
    h.publish(
        &status_subject("quiet", "api"),
        change("quiet", "api", up, down, StatusSource::Automatic, false),
    )
    .await;
    wait_mails(&smtp, 1, "the status change").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mails = smtp.mails();
    assert_eq!(
        mails.len(),
        1,
        "{:?}",
        mails
            .iter()
            .map(|m| m.header("Subject"))
            .collect::<Vec<_>>()
    );
    let subject = mails[0].header("Subject").expect("subject");
    assert!(subject.contains("Component api: major outage"), "{subject}");
}

#[tokio::test]
async fn maintenance_goes_by_component_and_dedup_follows_the_subscribers_choice() {
    let smtp = SmtpSink::start().await;
    let hooks = WebSink::start().await;
    let extra = format!("{}{}", email_channel(&smtp.endpoint()), webhook_channel());
    let h = Harness::start(&[page("mnt", &["api", "db"], &extra)], &[]).await;
    let both = vec![
        email("both@example.com"),
        SubscriberChannel::Webhook {
            url: format!("{}/both", hooks.url()),
        },
    ];
    let once = vec![
        email("once@example.com"),
        SubscriberChannel::Webhook {
            url: format!("{}/once", hooks.url()),
        },
    ];
    h.add_with("mnt", subscriber(both, &["db"], &[]), true)
        .await;
    let mut first_only = subscriber(once, &["db"], &[]);
    first_only.dedup = DedupMode::First;
    h.add_with("mnt", first_only, true).await;
    h.add_with(
        "mnt",
        subscriber(vec![email("api-only@example.com")], &["api"], &[]),
        true,
    )
    .await;

    let now = wall_clock_ms();
    let event = MaintenanceEvent {
        page: "mnt".into(),
        maintenance: "m1".into(),
        action: MaintenanceAction::Started,
        actor: "decider".into(),
        at_ms: now,
        phase: MaintenancePhase::InProgress,
        title: "Database upgrade".into(),
        body: "Reads stay up.".into(),
        starts_at_ms: now,
        ends_at_ms: now + 3_600_000,
        components: vec!["db".into()],
        recurrence: None,
        series: None,
        remind_before_ms: 0,
        verify_ms: 0,
    };
    h.publish(&maintenance_subject("mnt", "m1"), event).await;
    h.wait_receipts("three deliveries", 3, |r| {
        r.outcome == DeliveryOutcome::Delivered
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(to(&smtp, "both@example.com").len(), 1);
    assert_eq!(to(&smtp, "once@example.com").len(), 1);
    assert!(
        to(&smtp, "api-only@example.com").is_empty(),
        "not its component"
    );
    let paths: Vec<String> = hooks.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/both"], "dedup `first` used the email only");
    let subject = to(&smtp, "both@example.com")[0]
        .header("Subject")
        .expect("subject");
    assert!(
        subject.contains("Maintenance started: Database upgrade"),
        "{subject}"
    );
}

#[tokio::test]
async fn the_changelog_digest_goes_to_those_who_asked_with_only_new_entries() {
    let smtp = SmtpSink::start().await;
    let extra = format!(
        "{}[notifications]\ndigest_every = \"3s\"\n",
        email_channel(&smtp.endpoint())
    );
    let h = Harness::start(&[page("digest", &["api"], &extra)], &[]).await;
    let mut wants = subscriber(vec![email("reader@example.com")], &[], &[]);
    wants.digest = true;
    h.add_with("digest", wants, true).await;
    h.add("digest", vec![email("busy@example.com")], true).await;
    let entry = |id: &str, title: &str, withdrawn: bool| ChangelogEntry {
        page: "digest".into(),
        entry: id.into(),
        title: title.into(),
        body_markdown: format!("About {title}."),
        category: "feature".into(),
        components: vec![],
        withdrawn,
        published_at_ms: 0,
        images: vec![],
        actor: "alice".into(),
    };
    h.publish(
        &changelog_subject("digest", "c1"),
        entry("c1", "Faster pages", false),
    )
    .await;
    h.publish(
        &changelog_subject("digest", "c2"),
        entry("c2", "Dark mode", false),
    )
    .await;
    h.publish(
        &changelog_subject("digest", "c2"),
        entry("c2", "Dark mode", true),
    )
    .await;
    wait_mails(&smtp, 1, "the digest").await;
    let mails = smtp.mails();
    assert_eq!(mails[0].to, ["reader@example.com"]);
    let text = mails[0].decoded();
    assert!(text.contains("Faster pages"), "{text}");
    assert!(!text.contains("Dark mode"), "a withdrawn entry is left out");
    // The next period has nothing new: no digest.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(smtp.count(), 1);
}
