//! The DNS responder as a real process, asked with a hickory-proto client
//! and with `dig`: A records follow the edges' health (one dies, it is left
//! out; it returns, it is handed out again), TXT follows a real status
//! change made by a decider and probes, and keeps answering from disk with
//! NATS killed, even after a restart. Bad queries get small answers and
//! never stop it. `beaconctl emergency up --dns-state-dir` puts a notice
//! in TXT with no daemon but the responder running.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use beacon_contract::messages::ComponentStatus;
use beacon_testkit::dns::{self, ask};
use beacon_testkit::{free_port, wait_until, DaemonProcess};
use beacon_tests::rig::{metric, Rig};
use beacon_tests::{page_config, HttpTarget, READY};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

const HOST: &str = "status.example.com";
/// Checks every 200 ms, two failures leave an edge out: well under a
/// second from death to the last answer naming it, on an idle machine.
const SETTLE: Duration = Duration::from_secs(30);

fn config(edge_a: &str, edge_b: &str) -> String {
    format!(
        r#"
ttl = "5s"
check_interval = "200ms"
check_timeout = "200ms"
fail_after = 2
recover_after = 2
[[edges]]
name = "a"
addresses = ["127.0.0.2", "::2"]
check = "{edge_a}"
[[edges]]
name = "b"
addresses = ["127.0.0.3"]
check = "{edge_b}"
[[hosts]]
name = "{HOST}"
page = "acme"
"#
    )
}

/// Sends `bytes` to `server` and returns what comes back within a second.
async fn raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    dns::exchange(server, bytes, Duration::from_secs(1)).await
}

/// The A addresses the responder hands out, sorted.
async fn addresses(server: SocketAddr) -> Option<Vec<String>> {
    let answer = ask(server, &format!("{HOST}."), RecordType::A).await?;
    Some(dns::a_records(&answer))
}

/// The TXT strings of `_status.<host>`.
async fn status_txt(server: SocketAddr) -> Option<Vec<String>> {
    let answer = ask(server, &format!("_status.{HOST}."), RecordType::TXT).await?;
    Some(dns::txt_strings(&answer))
}

/// `dig +short` of `name` and `query_type`.
fn dig(server: SocketAddr, name: &str, query_type: &str) -> String {
    let output = std::process::Command::new("dig")
        .args([
            &format!("@{}", server.ip()),
            "-p",
            &server.port().to_string(),
            name,
            query_type,
            "+short",
            "+time=2",
            "+tries=1",
        ])
        .output()
        .expect("run dig (bind9-dnsutils, installed by scripts/install-deps)");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn spawn_responder(config_path: &str, state: &str, nats_url: &str, port: u16) -> DaemonProcess {
    DaemonProcess::spawn_with_admin(
        "beacon-dns",
        vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--config".into(),
            config_path.to_owned(),
            "--state-dir".into(),
            state.to_owned(),
            "--nats-url".into(),
            nats_url.to_owned(),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_follow_edge_health_and_page_status_and_outlive_nats() {
    let mut rig = Rig::start(&["eu", "us"], &[]).await;
    let ensured = rig.ctl(&["bus", "ensure"]).await;
    assert!(ensured.status.success(), "beaconctl bus ensure");
    let mut service = HttpTarget::start().await;
    rig.apply(&page_config("acme", "Acme", &service.url()))
        .await;
    rig.wait_status("acme", "api", ComponentStatus::Operational)
        .await;

    let mut edge_a = HttpTarget::start().await;
    let mut edge_b = HttpTarget::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let config_path = dir.path().join("beacon-dns.toml");
    std::fs::write(&config_path, config(&edge_a.url(), &edge_b.url())).expect("config");
    let config_path = config_path.display().to_string();
    let state = dir.path().join("state").display().to_string();
    let port = free_port();
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let responder = spawn_responder(&config_path, &state, &rig.nats.url(), port);
    responder.wait_ready(READY).await;

    // Both edges pass: both are handed out, with the configured TTL.
    let both = vec!["127.0.0.2".to_owned(), "127.0.0.3".to_owned()];
    assert_eq!(addresses(server).await, Some(both.clone()));
    let answer = ask(server, &format!("{HOST}."), RecordType::A)
        .await
        .expect("an answer");
    assert!(answer.authoritative(), "authoritative");
    assert!(!answer.recursion_available(), "never recursive");
    assert!(answer.answers().iter().all(|r| r.ttl() == 5));
    assert_eq!(
        dig(server, HOST, "A").lines().count(),
        2,
        "dig sees both edges"
    );

    // Edge b dies: it is left out. It comes back: it is handed out again.
    edge_b.down();
    let died = Instant::now();
    wait_until("edge b to be left out", SETTLE, || async {
        (addresses(server).await == Some(vec!["127.0.0.2".to_owned()])).then_some(())
    })
    .await;
    eprintln!(
        "edge b left out {} ms after it died",
        died.elapsed().as_millis()
    );
    assert_eq!(dig(server, HOST, "A"), "127.0.0.2");
    edge_b.up().await;
    wait_until("edge b to be handed out again", SETTLE, || async {
        (addresses(server).await == Some(both.clone())).then_some(())
    })
    .await;
    // Every edge fails: once the responder counts both out, it still
    // hands out all of them rather than none.
    edge_a.down();
    edge_b.down();
    let admin = responder.admin_url();
    wait_until("both edges to fail their checks", SETTLE, || async {
        let healthy = metric(&admin, "beacon_dns_edge_healthy{").await;
        let checked = metric(&admin, "beacon_dns_edge_changes_total{").await;
        (healthy == 0.0 && checked >= 3.0).then_some(())
    })
    .await;
    assert_eq!(addresses(server).await, Some(both.clone()));
    edge_a.up().await;
    edge_b.up().await;

    // TXT follows the page's status as the decider changes it.
    wait_until("TXT to say operational", SETTLE, || async {
        (status_txt(server).await == Some(vec!["operational".to_owned()])).then_some(())
    })
    .await;
    service.down();
    rig.wait_status("acme", "api", ComponentStatus::MajorOutage)
        .await;
    let outage = vec!["major_outage: api".to_owned()];
    wait_until("TXT to say major_outage: api", SETTLE, || async {
        (status_txt(server).await == Some(outage.clone())).then_some(())
    })
    .await;
    assert_eq!(
        dig(server, &format!("_status.{HOST}"), "TXT"),
        "\"major_outage: api\""
    );

    // NATS dies: the answer stays; a restart without NATS answers from disk.
    tokio::task::block_in_place(|| rig.nats.stop());
    assert_eq!(status_txt(server).await, Some(outage.clone()));
    drop(responder);
    let responder = spawn_responder(&config_path, &state, &rig.nats.url(), port);
    responder.wait_ready(READY).await;
    assert_eq!(status_txt(server).await, Some(outage.clone()));
    assert_eq!(addresses(server).await, Some(both.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_small_answers_and_never_stop_the_responder() {
    let edge = HttpTarget::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let config_path = dir.path().join("beacon-dns.toml");
    std::fs::write(&config_path, config(&edge.url(), &edge.url())).expect("config");
    let port = free_port();
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    // No NATS at all: the responder answers anyway.
    let state = dir.path().join("state").display().to_string();
    let responder = spawn_responder(
        &config_path.display().to_string(),
        &state,
        &format!("nats://127.0.0.1:{}", free_port()),
        port,
    );
    responder.wait_ready(READY).await;

    // A name it does not own: REFUSED, never recursion, never larger than
    // the question.
    let mut query = Message::new();
    query
        .set_id(42)
        .set_recursion_desired(true)
        .add_query(Query::query(
            Name::from_ascii("www.example.org.").expect("name"),
            RecordType::A,
        ));
    let bytes = query.to_vec().expect("encode");
    let answer = raw(server, &bytes).await.expect("an answer");
    assert!(
        answer.len() <= bytes.len(),
        "{} > {}",
        answer.len(),
        bytes.len()
    );
    let answer = Message::from_vec(&answer).expect("decode");
    assert_eq!(answer.response_code(), ResponseCode::Refused);
    assert!(answer.answers().is_empty() && answer.name_servers().is_empty());

    // ANY: one small HINFO (RFC 8482), not everything.
    let any = ask(server, &format!("{HOST}."), RecordType::ANY)
        .await
        .expect("an answer");
    assert_eq!(any.answers().len(), 1);
    assert_eq!(any.answers()[0].record_type(), RecordType::HINFO);

    // A name under the host that does not exist: NXDOMAIN with the SOA.
    let missing = ask(server, &format!("nope.{HOST}."), RecordType::A)
        .await
        .expect("an answer");
    assert_eq!(missing.response_code(), ResponseCode::NXDomain);
    assert_eq!(missing.name_servers().len(), 1);

    // Garbage, a truncated question, an oversized datagram, a question
    // that claims more records than it has: nothing crashes; what answers
    // is a FORMERR no larger than what came in.
    let mut truncated = bytes.clone();
    truncated.truncate(bytes.len() - 3);
    let mut lying = bytes.clone();
    lying[5] = 9; // nine questions announced, one sent
    let oversized = [bytes.clone(), vec![0xab; 4000]].concat();
    for (what, datagram) in [
        ("empty", Vec::new()),
        ("short header", vec![1, 2, 3]),
        ("garbage", vec![0xff; 64]),
        ("truncated", truncated),
        ("lying counts", lying),
        ("oversized", oversized),
    ] {
        if let Some(answer) = raw(server, &datagram).await {
            assert!(
                answer.len() <= datagram.len().max(12),
                "{what}: {} bytes back for {}",
                answer.len(),
                datagram.len()
            );
            if let Ok(message) = Message::from_vec(&answer) {
                assert!(message.answers().is_empty(), "{what}: no records");
            }
        }
    }
    // Still answering.
    assert_eq!(
        addresses(server).await,
        Some(vec!["127.0.0.2".to_owned(), "127.0.0.3".to_owned()])
    );
    assert!(!dig(server, HOST, "A").is_empty());

    // Level 3, by hand, with no daemon but the responder and no NATS: the
    // emergency notice goes up in TXT too, first, and comes down again.
    let origin = tempfile::tempdir().expect("an origin");
    let emergency = |action: &'static str| {
        let mut args = vec![
            "emergency".to_owned(),
            action.to_owned(),
            "--page".into(),
            "acme".into(),
            "--origin".into(),
            origin.path().display().to_string(),
            "--dns-state-dir".into(),
            state.clone(),
        ];
        if action == "up" {
            args.extend([
                "--title".into(),
                "Checkout is down\r\nX-Injected: yes".into(),
                "-m".into(),
                "We are on it.".into(),
            ]);
        }
        let output = std::process::Command::new(beacon_testkit::daemon::binary("beaconctl"))
            .args(&args)
            .output()
            .expect("run beaconctl emergency");
        assert!(
            output.status.success(),
            "beaconctl emergency {action}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    emergency("up");
    let notice = vec![
        "emergency: Checkout is downX-Injected: yes".to_owned(),
        "unknown".to_owned(),
    ];
    wait_until("TXT to carry the emergency notice", SETTLE, || async {
        (status_txt(server).await == Some(notice.clone())).then_some(())
    })
    .await;
    emergency("down");
    wait_until("TXT to drop the emergency notice", SETTLE, || async {
        (status_txt(server).await == Some(vec!["unknown".to_owned()])).then_some(())
    })
    .await;
}
