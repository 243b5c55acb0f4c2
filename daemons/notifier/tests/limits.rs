//! Rate limits are never exceeded: an account's rate and burst over many
//! destinations, and one destination's rate (a Slack webhook takes one
//! message a second) over several messages.

mod common;

use std::time::{Duration, Instant};

use beacon_contract::messages::{DeliveryOutcome, Impact, SubscriberChannel};
use beacon_testkit::receivers::web::WebSink;
use common::*;

/// The most arrivals in any window of `length` among `times`.
fn most_within(times: &[Instant], length: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|t| t.duration_since(sorted[i]) < length)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn an_accounts_rate_and_burst_are_never_exceeded() {
    let receiver = WebSink::start().await;
    let channel = format!(
        "[[channels]]\nid = \"hooks\"\ntype = \"webhook\"\nsecret_env = \"{HOOK_ENV}\"\nrate_per_second = 20\nburst = 5\nconcurrency = 8\ndestination_rate_per_second = 100\n"
    );
    let h = Harness::start(&[page("rate", &["api"], &channel)], &[]).await;
    const N: usize = 60;
    for i in 0..N {
        h.add(
            "rate",
            vec![SubscriberChannel::Webhook {
                url: format!("{}/s{i}", receiver.url()),
            }],
            true,
        )
        .await;
    }
    incident(
        &h,
        created("rate", &incident_id(), "Down", Impact::Major, &["api"]),
    )
    .await;
    h.wait_receipts("every delivery", N, |r| {
        r.outcome == DeliveryOutcome::Delivered
    })
    .await;
    let times: Vec<Instant> = receiver.received().iter().map(|r| r.at).collect();
    assert_eq!(times.len(), N);
    // GCRA: any window of length T admits at most burst + rate × T; one
    // more for arrival jitter.
    for (millis, allowed) in [
        (100, 5 + 2 + 1),
        (250, 5 + 5 + 1),
        (500, 5 + 10 + 1),
        (1_000, 5 + 20 + 1),
    ] {
        let most = most_within(&times, Duration::from_millis(millis));
        assert!(
            most <= allowed,
            "{most} arrivals within {millis} ms, at most {allowed} allowed"
        );
    }
    let spread = times
        .iter()
        .max()
        .expect("last")
        .duration_since(*times.iter().min().expect("first"));
    assert!(
        spread >= Duration::from_millis(2_600),
        "60 at 20/s with a burst of 5 take 2.75 s, took {spread:?}"
    );
    assert!(
        h.metric(
            "beacon_notifier_rate_limit_wait_seconds_count{channel=\"webhook\",limit=\"account\"}"
        )
        .await
            > 0.0
    );
}

#[tokio::test]
async fn a_slack_webhook_gets_at_most_one_message_a_second() {
    let slack = WebSink::start().await;
    let extra = "[[channels]]\nid = \"slack\"\ntype = \"slack\"\nrate_per_second = 1000\n[notifications]\nwindow = \"0s\"\n";
    let h = Harness::start(&[page("slack", &["api"], extra)], &[]).await;
    h.add(
        "slack",
        vec![SubscriberChannel::Slack {
            url: format!("{}/services/T/B/one", slack.url()),
        }],
        true,
    )
    .await;
    for i in 0..3 {
        incident(
            &h,
            created(
                "slack",
                &incident_id(),
                &format!("Incident {i}"),
                Impact::Major,
                &["api"],
            ),
        )
        .await;
    }
    h.wait_receipts("three messages", 3, |r| {
        r.outcome == DeliveryOutcome::Delivered
    })
    .await;
    let mut times: Vec<Instant> = slack.received().iter().map(|r| r.at).collect();
    times.sort();
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(900),
            "two messages {gap:?} apart on one Slack webhook"
        );
    }
}
