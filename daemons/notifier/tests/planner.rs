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
    wait_until(what, LAND, || {
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

#[tokio::test]
async fn a_thread_whose_write_failed_is_read_again_and_its_next_updates_still_go_out() {
    let smtp = SmtpSink::start().await;
    let h = Harness::start(
        &[page("rewrite", &["api"], &email_channel(&smtp.endpoint()))],
        &[],
    )
    .await;
    // Instant for `api`: every update goes out at once.
    h.add_with(
        "rewrite",
        subscriber(vec![email("ops@example.com")], &[], &["api"]),
        true,
    )
    .await;
    let id = incident_id();
    incident(
        &h,
        created("rewrite", &id, "Checkout errors", Impact::Major, &["api"]),
    )
    .await;
    wait_mails(&smtp, 1, "the first update").await;

    // Someone else writes the thread (a deposed leader, a write whose ack
    // was lost): the planner's next write of it fails on the revision.
    let notices =
        h.js.get_key_value(beacon_contract::names::KV_NOTICES)
            .await
            .expect("KV notices");
    let key = format!("rewrite.incident-{id}");
    let entry = notices
        .entry(&key)
        .await
        .expect("read the thread")
        .unwrap_or_else(|| panic!("no thread {key}"));
    notices
        .put(&key, entry.value)
        .await
        .expect("write the thread");

    // The failed write is retried from what is stored, and the thread goes
    // on: both later updates arrive.
    incident(
        &h,
        updated(
            "rewrite",
            &id,
            "u1",
            IncidentState::Identified,
            "Cause found",
        ),
    )
    .await;
    wait_mails(&smtp, 2, "the update after the failed write").await;
    incident(
        &h,
        updated("rewrite", &id, "u2", IncidentState::Resolved, "Fixed"),
    )
    .await;
    wait_mails(&smtp, 3, "the next update").await;
    assert_eq!(to(&smtp, "ops@example.com").len(), 3);
}

/// Makes NOTIFY refuse every publish (`refuse`) or take them again: the
/// stream keeps at most one byte and refuses what does not fit, which is
/// how a full or failing stream looks to the planner.
async fn notify_refuses(h: &Harness, refuse: bool) {
    let mut stream =
        h.js.get_stream(beacon_contract::names::STREAM_NOTIFY)
            .await
            .expect("NOTIFY");
    let mut config = stream.info().await.expect("NOTIFY info").config.clone();
    config.max_bytes = if refuse { 1 } else { -1 };
    config.discard = async_nats::jetstream::stream::DiscardPolicy::New;
    h.js.update_stream(config).await.expect("update NOTIFY");
}

/// The stored thread `key`, once `done` says so.
async fn wait_thread(
    h: &Harness,
    key: &str,
    what: &str,
    done: impl Fn(&beacon_notifier::records::NoticeThread) -> bool,
) {
    let notices =
        h.js.get_key_value(beacon_contract::names::KV_NOTICES)
            .await
            .expect("KV notices");
    wait_until(what, LAND, || {
        let notices = notices.clone();
        let done = &done;
        async move {
            let entry = notices.entry(key).await.ok()??;
            let thread =
                beacon_contract::event::Envelope::<beacon_notifier::records::NoticeThread>::decode(
                    &entry.value,
                )
                .ok()?
                .data;
            done(&thread).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_send_whose_publish_failed_is_published_even_after_a_later_send() {
    let smtp = SmtpSink::start().await;
    let h = Harness::start(
        &[page("earlier", &["api"], &email_channel(&smtp.endpoint()))],
        &[],
    )
    .await;
    h.add_with(
        "earlier",
        subscriber(vec![email("ops@example.com")], &[], &["api"]),
        true,
    )
    .await;
    let id = incident_id();
    let key = format!("earlier.incident-{id}");

    // The first update's send is stored, but NOTIFY refuses its batches.
    notify_refuses(&h, true).await;
    incident(
        &h,
        created("earlier", &id, "Checkout errors", Impact::Major, &["api"]),
    )
    .await;
    wait_thread(&h, &key, "send 0 stored, not published", |t| {
        t.sends.len() == 1 && !t.sends[0].published
    })
    .await;

    // NOTIFY takes batches again and a second update goes out at once,
    // before the first event's retry comes back.
    notify_refuses(&h, false).await;
    incident(
        &h,
        updated(
            "earlier",
            &id,
            "u1",
            IncidentState::Identified,
            "Cause found",
        ),
    )
    .await;
    wait_thread(&h, &key, "every send published", |t| {
        t.sends.len() == 2 && t.sends.iter().all(|s| s.published)
    })
    .await;
    // Both notices reached the subscriber: the first was not lost behind
    // the second.
    wait_mails(&smtp, 2, "both notices").await;
    let mails = to(&smtp, "ops@example.com");
    assert_eq!(mails.len(), 2);
}

#[tokio::test]
async fn a_window_flush_whose_publish_failed_is_sent_once_the_bus_takes_it() {
    let smtp = SmtpSink::start().await;
    let extra = format!(
        "{}[notifications]\nwindow = \"2s\"\n",
        email_channel(&smtp.endpoint())
    );
    let h = Harness::start(&[page("flush", &["api"], &extra)], &[]).await;
    h.add_with(
        "flush",
        subscriber(vec![email("plain@example.com")], &[], &[]),
        true,
    )
    .await;
    let id = incident_id();
    let key = format!("flush.incident-{id}");
    incident(
        &h,
        created("flush", &id, "Checkout errors", Impact::Major, &["api"]),
    )
    .await;
    wait_mails(&smtp, 1, "the first update").await;
    incident(
        &h,
        updated("flush", &id, "u1", IncidentState::Identified, "Cause found"),
    )
    .await;
    wait_thread(&h, &key, "the update held in the window", |t| {
        t.pending.len() == 1
    })
    .await;

    // The window closes while NOTIFY refuses: the flush is stored, its
    // publish fails.
    notify_refuses(&h, true).await;
    wait_thread(&h, &key, "the flush stored, not published", |t| {
        t.pending.is_empty() && t.sends.iter().any(|s| s.after.is_some() && !s.published)
    })
    .await;
    notify_refuses(&h, false).await;

    // The timer's retry publishes the stored flush.
    wait_mails(&smtp, 2, "the flush").await;
    let plain = to(&smtp, "plain@example.com");
    assert!(
        plain[1].decoded().contains("Identified"),
        "{}",
        plain[1].decoded()
    );
}

#[tokio::test]
async fn a_batch_published_again_after_the_dedup_window_sends_nothing_twice() {
    let smtp = SmtpSink::start().await;
    let h = Harness::start(
        &[page("replay", &["api"], &email_channel(&smtp.endpoint()))],
        &[],
    )
    .await;
    let view = h
        .add_with(
            "replay",
            subscriber(vec![email("ops@example.com")], &[], &[]),
            true,
        )
        .await;
    // Every batch the planner publishes, as it goes by on the bus.
    let mut batches = h
        .client
        .subscribe(beacon_contract::names::notify_subject("email", "urgent"))
        .await
        .expect("subscribe");
    h.client.flush().await.expect("flush");
    let id = incident_id();
    incident(
        &h,
        created("replay", &id, "Checkout errors", Impact::Major, &["api"]),
    )
    .await;
    wait_mails(&smtp, 1, "the notice").await;
    let batch = tokio::time::timeout(LAND, futures::StreamExt::next(&mut batches))
        .await
        .expect("the planner's batch")
        .expect("a message");
    wait_until("the delivery's receipt", LAND, || async {
        h.receipts()
            .await
            .iter()
            .any(|r| {
                r.subscriber == view.subscriber.subscriber
                    && r.outcome == DeliveryOutcome::Delivered
            })
            .then_some(())
    })
    .await;

    // The same batch again under another message id, as a planner replaying
    // the send after the bus's dedup window would publish it: a first
    // delivery of a batch whose ledger says it is done.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "a-replay-after-the-window");
    h.js.publish_with_headers(batch.subject.clone(), headers, batch.payload.clone())
        .await
        .expect("publish")
        .await
        .expect("stored");

    // Once NOTIFY has handed out and had acknowledged the replay, nothing
    // more was sent.
    wait_until("the replay to be handled", LAND, || async {
        let mut notify =
            h.js.get_stream(beacon_contract::names::STREAM_NOTIFY)
                .await
                .ok()?;
        let info = notify.info().await.ok()?;
        (info.state.messages == 0).then_some(())
    })
    .await;
    assert_eq!(smtp.count(), 1, "the replay sent the notice again");
    assert!(h.metric("beacon_notifier_ledger_hits_total").await >= 1.0);
}

#[tokio::test]
async fn a_digest_whose_publish_failed_is_sent_with_its_entries_once_the_bus_takes_it() {
    let smtp = SmtpSink::start().await;
    let extra = format!(
        "{}[notifications]\ndigest_every = \"2s\"\n",
        email_channel(&smtp.endpoint())
    );
    let h = Harness::start(&[page("digestfail", &["api"], &extra)], &[]).await;
    let mut wants = subscriber(vec![email("reader@example.com")], &[], &[]);
    wants.digest = true;
    h.add_with("digestfail", wants, true).await;
    let key = "digestfail.digest";
    wait_thread(&h, key, "the digest thread", |t| !t.sends.is_empty()).await;

    // The next digest has an entry, but NOTIFY refuses its batch.
    notify_refuses(&h, true).await;
    h.publish(
        &changelog_subject("digestfail", "c1"),
        ChangelogEntry {
            page: "digestfail".into(),
            entry: "c1".into(),
            title: "Faster pages".into(),
            body_markdown: "Pages render in half the time.".into(),
            category: "improvement".into(),
            components: vec![],
            withdrawn: false,
            published_at_ms: 0,
            images: vec![],
            actor: "alice".into(),
        },
    )
    .await;
    wait_thread(&h, key, "the digest stored, not published", |t| {
        t.sends.iter().any(|s| !s.published)
    })
    .await;
    notify_refuses(&h, false).await;

    // The retry sends that digest, entry and all, not an empty one later.
    wait_mails(&smtp, 1, "the digest").await;
    let text = smtp.mails()[0].decoded();
    assert!(text.contains("Faster pages"), "{text}");
}
