//! Losing a region of three: every process of it, its NATS server
//! included, `kill -9`. The others keep probing, deciding and serving,
//! take over what the lost region led, take operator writes through their
//! HTTP API, and the region catches up by itself when it comes back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon_testkit::wait_until;
use beacon_tests::lab::{edge_address, poll_edges, Lab, REGIONS};
use beacon_tests::{get, HttpTarget};

/// How long a lab may take to settle after a start or a loss: stream
/// leaders are elected again, the decider lease runs out, probes fail
/// twice, and a busy 2-core machine runs all of it.
const SETTLE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_region_keeps_the_others_deciding_serving_and_writing() {
    let mut target = HttpTarget::start().await;
    let regions = REGIONS.map(str::to_owned);
    let mut lab = Lab::start(regions.clone(), "lab", &target).await;
    for region in &regions {
        wait_until(
            &format!("{region}'s edge to serve api operational"),
            SETTLE,
            || {
                let lab = &lab;
                async move {
                    (lab.served_status(region).await.as_deref() == Some("operational"))
                        .then_some(())
                }
            },
        )
        .await;
    }

    // The region that leads deciding is the one lost.
    let lost = wait_until("a decider to lead", SETTLE, || {
        let lab = &lab;
        async move { lab.leading_region().await }
    })
    .await;
    let survivors: Vec<String> = regions.iter().filter(|r| **r != lost).cloned().collect();
    // The operator's tool holds a key made before the loss.
    let key = lab.api_key(&survivors[0]).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (failed, total, poller) = poll_edges(
        survivors
            .iter()
            .map(|r| lab.region(r).edge_url.clone())
            .collect(),
        stop.clone(),
    );

    let lost_at = Instant::now();
    lab.lose(&lost);
    // The target fails after the loss: a survivor must take over deciding
    // and every surviving edge must show the outage. The lost region's
    // probe is silent, never counted as down.
    target.down();
    for region in &survivors {
        wait_until(
            &format!("{region}'s edge to show the outage"),
            SETTLE,
            || {
                let lab = &lab;
                async move {
                    (lab.served_status(region).await.as_deref() == Some("major_outage"))
                        .then_some(())
                }
            },
        )
        .await;
    }
    let detected = lost_at.elapsed();
    // Every surviving DNS responder stops handing out the lost edge.
    let lost_index = regions.iter().position(|r| *r == lost).expect("lost");
    let lost_address = edge_address(lost_index);
    for region in &survivors {
        wait_until(
            &format!("{region}'s DNS responder to leave {lost}'s edge out"),
            SETTLE,
            || {
                let (lab, lost_address) = (&lab, &lost_address);
                async move {
                    let handed = lab.handed_out(region).await?;
                    (handed.len() == 2 && !handed.contains(lost_address)).then_some(())
                }
            },
        )
        .await;
    }
    let leader = lab.leading_region().await;
    assert!(
        leader.as_ref().is_some_and(|l| survivors.contains(l)),
        "no surviving region leads: {leader:?}"
    );

    // An operator opens an incident through a surviving region's HTTP API
    // (retried with one idempotency key); every surviving edge shows it.
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/incidents", lab.region(&survivors[0]).api_url);
    let body = serde_json::json!({
        "title": "Regional failure",
        "impact": "major",
        "components": ["api"],
        "message": "One region is down; the others carry on.",
    });
    let id = wait_until("the incident to be accepted", SETTLE, || {
        let (http, url, body, key) = (&http, &url, &body, &key);
        async move {
            let response = http
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "lab-region-loss")
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .ok()?;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            if !matches!(status, 200 | 201) {
                eprintln!("POST /api/v1/incidents: {status} {text}");
                return None;
            }
            let incident: serde_json::Value = serde_json::from_str(&text).ok()?;
            incident["id"].as_str().map(str::to_owned)
        }
    })
    .await;
    for region in &survivors {
        let url = format!(
            "{}/api/v2/incidents/unresolved.json",
            lab.region(region).edge_url
        );
        wait_until(
            &format!("{region}'s edge to show the incident"),
            SETTLE,
            || {
                let (url, id) = (url.clone(), id.clone());
                async move {
                    let (status, body) = get(&url).await?;
                    (status == 200 && body.contains(&id)).then_some(())
                }
            },
        )
        .await;
    }
    // The subscriber is told, once, by whichever region plans now.
    wait_until("the incident's notification", SETTLE, || {
        let lab = &lab;
        async move { (lab.mails_about("Regional failure") > 0).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    poller.await.expect("the poller");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests to surviving edges failed, of {}",
        total.load(Ordering::SeqCst)
    );
    eprintln!(
        "region {lost} lost: the survivors showed a new outage after {:.1} s; {} requests to their edges, none failed",
        detected.as_secs_f64(),
        total.load(Ordering::SeqCst)
    );

    // The region comes back and catches up by itself: its edge shows the
    // outage and the incident it missed.
    lab.bring_back(&lost).await;
    let url = format!(
        "{}/api/v2/incidents/unresolved.json",
        lab.region(&lost).edge_url
    );
    wait_until(&format!("{lost}'s edge to catch up"), SETTLE, || {
        let (url, id, lab, lost) = (url.clone(), id.clone(), &lab, &lost);
        async move {
            let (status, body) = get(&url).await?;
            let outage = lab.served_status(lost).await.as_deref() == Some("major_outage");
            (status == 200 && body.contains(&id) && outage).then_some(())
        }
    })
    .await;
    // Planned once, by whichever region planned then, and coming back
    // plans nothing again: one notice (one idempotency key).
    assert_eq!(lab.notices_about("Regional failure"), 1, "notices");
    eprintln!(
        "mails repeating a notice with its key (senders' at-least-once): {}",
        lab.repeated_mails()
    );
}
