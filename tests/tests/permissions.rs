//! The least-privilege NATS users of `deploy/nats/beacon-users.conf`, for
//! real: every daemon runs the walking skeleton under its own user (so the
//! grants are sufficient), and a probe cannot write what the decider owns
//! (so they are restrictive).

use std::time::Duration;

use beacon_testkit::{wait_until, ClickHouseServer, DaemonProcess, NatsServer};
use beacon_tests::lab::password;
use beacon_tests::{apply_config, page_config, HttpTarget, Stack, DECIDE, READY};

fn users_conf() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/nats/beacon-users.conf"
    );
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

async fn connect_as(nats: &NatsServer, user: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.to_owned(), password(user).to_owned())
        .connect(nats.url())
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

/// `--nats-url … --nats-user <user> --nats-password <password>` plus `extra`.
fn bus_args(nats: &NatsServer, user: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--nats-url".to_owned(),
        nats.url(),
        "--nats-user".to_owned(),
        user.to_owned(),
        "--nats-password".to_owned(),
        password(user).to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Lines of the nats-server log reporting a permissions violation.
fn violations(nats: &NatsServer) -> Vec<String> {
    nats.logs()
        .lines()
        .filter(|line| line.contains("Violation"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_daemon_works_under_its_own_user_and_no_more() {
    let nats = NatsServer::start_with_config(&users_conf());
    // The operator applies the topology; daemon users only verify it.
    let ensured = std::process::Command::new(beacon_testkit::daemon::binary("beaconctl"))
        .args(bus_args(&nats, "admin", &["bus", "ensure"]))
        .output()
        .expect("run beaconctl bus ensure");
    assert!(
        ensured.status.success(),
        "beaconctl bus ensure as admin: {}",
        String::from_utf8_lossy(&ensured.stderr)
    );
    let clickhouse = ClickHouseServer::start();
    let mut target = HttpTarget::start().await;
    let stack = Stack::start("perm", |role| bus_args(&nats, role, &[])).await;
    // The rest of the pipeline, each under its own user too.
    let others = [
        DaemonProcess::spawn_with_admin(
            "beacon-recorder",
            bus_args(
                &nats,
                "recorder",
                &["--clickhouse-url", &clickhouse.http_url()],
            ),
        ),
        DaemonProcess::spawn_with_admin(
            "beacon-notifier",
            bus_args(
                &nats,
                "notifier",
                &[
                    "--public-url",
                    "http://127.0.0.1:9/notify",
                    "--signing-secret",
                    "permissions-test-secret-0123456789abcdef",
                ],
            ),
        ),
    ];
    for daemon in &others {
        daemon.wait_ready(READY).await;
    }
    // The DNS responder follows KV status as `dns`.
    let dns_dir = tempfile::tempdir().expect("a state directory");
    let dns_config = dns_dir.path().join("beacon-dns.toml");
    std::fs::write(
        &dns_config,
        format!(
            "[[edges]]\nname = \"a\"\naddresses = [\"127.0.0.2\"]\ncheck = \"{}\"\n\
             [[hosts]]\nname = \"status.perm.test\"\npage = \"perm\"\n",
            target.url()
        ),
    )
    .expect("write the responder's config");
    let dns = DaemonProcess::spawn_with_admin(
        "beacon-dns",
        bus_args(
            &nats,
            "dns",
            &[
                "--listen",
                &format!("127.0.0.1:{}", beacon_testkit::free_port()),
                "--config",
                &dns_config.display().to_string(),
                "--state-dir",
                &dns_dir.path().display().to_string(),
            ],
        ),
    );
    dns.wait_ready(READY).await;

    // Sufficient: the whole pipeline works, each daemon under its own user.
    let ctl = connect_as(&nats, "ctl").await;
    let applied = apply_config(&ctl, &page_config("perm", "Permissions", &target.url())).await;
    assert_eq!(applied.page, "perm");
    stack.wait_for_api_status("operational").await;
    target.down();
    stack.wait_for_api_status("major_outage").await;

    // The responder saw the status change through its watch.
    wait_until("the DNS responder to follow KV status", DECIDE, || {
        let admin = dns.admin_url();
        async move {
            let changes =
                beacon_tests::rig::metric(&admin, "beacon_dns_status_changes_total").await;
            (changes >= 2.0).then_some(())
        }
    })
    .await;

    // ctl reads the current status from KV.
    let js = async_nats::jetstream::new(ctl.clone());
    let status = js
        .get_key_value("status")
        .await
        .expect("ctl opens KV status");
    let record = status
        .get("perm.api")
        .await
        .expect("ctl reads KV status")
        .expect("record exists");
    let record: serde_json::Value = serde_json::from_slice(&record).expect("record JSON");
    assert_eq!(record["data"]["status"], "major_outage");

    // The recorder got the status changes through its consumer.
    wait_until("recorder to store status changes", DECIDE, || {
        let counted = clickhouse.try_query("SELECT count() FROM beacon.status_changes");
        async move {
            counted
                .ok()
                .filter(|n| n.trim().parse::<u64>().unwrap_or(0) >= 2)
        }
    })
    .await;

    // Both probes' heartbeats reached PROBES under the probe user.
    let admin_js = async_nats::jetstream::new(connect_as(&nats, "admin").await);
    wait_until("both probes' heartbeats in PROBES", DECIDE, || {
        let admin_js = admin_js.clone();
        async move {
            let stream = admin_js.get_stream("PROBES").await.ok()?;
            let eu = stream
                .get_last_raw_message_by_subject(&beacon_contract::names::probe_heartbeat_subject(
                    "eu",
                ))
                .await
                .ok();
            let us = stream
                .get_last_raw_message_by_subject(&beacon_contract::names::probe_heartbeat_subject(
                    "us",
                ))
                .await
                .ok();
            (eu.is_some() && us.is_some()).then_some(())
        }
    })
    .await;

    // ctl gets an SLA report from the recorder over the bus, and reads the
    // uptime rollup the recorder wrote to KV.
    let month = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_secs();
        // The current month is always a period that has begun.
        let days = now / 86_400;
        let (y, m) = civil_month(days);
        format!("{y:04}-{m:02}")
    };
    let reply = ctl
        .request(
            beacon_contract::api::SLA_REPORT.subject(),
            serde_json::to_vec(&serde_json::json!({"page": "perm", "period": month}))
                .expect("json")
                .into(),
        )
        .await
        .expect("the recorder answers ctl");
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).expect("reply JSON");
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(
        reply["result"]["components"][0]["component"], "api",
        "{reply}"
    );
    let uptime = js
        .get_key_value("uptime")
        .await
        .expect("ctl opens KV uptime");
    wait_until("the recorder to write KV uptime", DECIDE, || {
        let uptime = uptime.clone();
        async move { uptime.get("perm.api").await.ok().flatten() }
    })
    .await;

    // The api daemon, under its own user, makes a key for ctl and answers
    // an authenticated request through the decider.
    let api_port = beacon_testkit::free_port();
    let api = DaemonProcess::spawn_with_admin(
        "beacon-api",
        bus_args(
            &nats,
            "api",
            &["--listen", &format!("127.0.0.1:{api_port}")],
        ),
    );
    api.wait_ready(READY).await;
    // Ready is logged as the subscription is sent; give the server a moment
    // to register it before treating "no responders" as a failure.
    let request = serde_json::to_vec(&serde_json::json!({"page": "perm", "name": "perm", "scopes": ["components:read"], "actor": "test"}))
        .expect("json");
    let mut attempts = 0;
    let created = loop {
        attempts += 1;
        match ctl
            .request(
                beacon_contract::api::APIKEY_CREATE.subject(),
                request.clone().into(),
            )
            .await
        {
            Ok(reply) => break reply,
            Err(err) if attempts < 20 => {
                eprintln!("api daemon not answering yet: {err}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => panic!("the api daemon answers ctl: {err}"),
        }
    };
    let created: serde_json::Value = serde_json::from_slice(&created.payload).expect("reply JSON");
    let key = created["result"]["key"].as_str().expect("a key").to_owned();
    let components = wait_until("the HTTP API to answer with the key", DECIDE, || {
        let key = key.clone();
        async move {
            let response = reqwest::Client::new()
                .get(format!("http://127.0.0.1:{api_port}/api/v1/components"))
                .header("authorization", format!("Bearer {key}"))
                .send()
                .await
                .ok()?;
            (response.status().as_u16() == 200).then_some(())?;
            response.text().await.ok()
        }
    })
    .await;
    assert!(components.contains("\"api\""), "{components}");
    drop(api);

    // The notifier, under its own user: a subscriber added through ctl's
    // request, an incident opened through ctl, the email sent, the
    // receipt recorded, then the address erased.
    notify_under_own_users(&ctl).await;

    // ctl publishes a changelog entry with an image through the
    // publisher, which writes CHANGELOG and the pages object store.
    let reply = ctl
        .request(
            beacon_contract::api::CHANGELOG_PUBLISH.subject(),
            serde_json::to_vec(&serde_json::json!({
                "page": "perm", "title": "Permissions", "body_markdown": "![x](assets/x.png)",
                "category": "announcement", "actor": "tester",
                "images": [{"name": "x.png", "data_base64": "iVBORw0KGgpyZXN0"}]
            }))
            .expect("json")
            .into(),
        )
        .await
        .expect("the publisher answers ctl");
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).expect("reply JSON");
    assert_eq!(reply["status"], "ok", "{reply}");
    stack_wait(&stack, "/changelog.html", "Permissions").await;

    // An edge elsewhere mirrors the object store under its own user.
    let mirror_dir = tempfile::tempdir().expect("mirror origin");
    let mirror_port = beacon_testkit::free_port();
    let mirror = DaemonProcess::spawn_with_admin(
        "beacon-edge",
        bus_args(
            &nats,
            "edge",
            &[
                "--mirror",
                "--origin",
                &mirror_dir.path().display().to_string(),
                "--listen",
                &format!("127.0.0.1:{mirror_port}"),
            ],
        ),
    );
    mirror.wait_ready(READY).await;
    wait_until(
        "the mirroring edge to serve the page",
        DECIDE,
        || async move {
            let (status, body) = beacon_tests::get(&format!(
                "http://127.0.0.1:{mirror_port}/perm/changelog.html"
            ))
            .await?;
            (status == 200 && body.contains("Permissions")).then_some(())
        },
    )
    .await;

    let denied = violations(&nats);
    assert!(
        denied.is_empty(),
        "daemons were denied something:\n{}",
        denied.join("\n")
    );

    // Restrictive: a probe may publish results and heartbeats, nothing
    // the decider owns (status, KV status, verdicts on probes).
    let probe = connect_as(&nats, "probe").await;
    let mut probe_js = async_nats::jetstream::new(probe.clone());
    probe_js.set_timeout(Duration::from_secs(2));
    let verdict = match probe_js
        .publish(
            beacon_contract::names::probe_verdict_subject("eu"),
            "forged".into(),
        )
        .await
    {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(verdict.is_err(), "probe published a verdict: {verdict:?}");
    let published = match probe_js
        .publish(
            beacon_contract::names::status_subject("x", "y"),
            "forged".into(),
        )
        .await
    {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(
        published.is_err(),
        "probe published to STATUS: {published:?}"
    );

    let probe_status = probe_js
        .get_key_value("status")
        .await
        .expect("probe opens KV status");
    let put = probe_status.put("x.y", "forged".into()).await;
    assert!(put.is_err(), "probe wrote KV status: {put:?}");

    wait_until(
        "nats-server to report both denials",
        Duration::from_secs(10),
        || {
            let denied = violations(&nats).join("\n");
            async move {
                (denied.contains(&beacon_contract::names::status_subject("x", "y"))
                    && denied.contains("$KV.status.x.y")
                    && denied.contains(&beacon_contract::names::probe_verdict_subject("eu")))
                .then_some(())
            }
        },
    )
    .await;
    let denied = violations(&nats);
    assert!(
        denied.iter().all(|line| line.contains("user:probe")),
        "only the probe's forgeries are denied:\n{}",
        denied.join("\n")
    );

    // Nothing forged reached the bus.
    assert!(status.get("x.y").await.expect("read KV status").is_none());

    // No daemon user may create or update a stream (e.g. shorten STATUS's
    // retention); only the admin user may.
    for user in ["probe", "decider", "recorder", "publisher", "notifier"] {
        let client = connect_as(&nats, user).await;
        let mut js = async_nats::jetstream::new(client);
        js.set_timeout(Duration::from_secs(2));
        let created = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: format!("FORGED_{}", user.to_uppercase()),
                subjects: vec![format!("forged.{user}.>")],
                ..Default::default()
            })
            .await;
        assert!(created.is_err(), "{user} created a stream");
        let mut config = js
            .get_stream("STATUS")
            .await
            .expect("every user may read stream info")
            .info()
            .await
            .expect("STATUS info")
            .config
            .clone();
        config.max_age = Duration::from_secs(60);
        assert!(
            js.update_stream(config).await.is_err(),
            "{user} updated STATUS"
        );
    }
    let js = async_nats::jetstream::new(connect_as(&nats, "admin").await);
    let mut stream = js.get_stream("STATUS").await.expect("STATUS");
    assert_ne!(
        stream.info().await.expect("info").config.max_age,
        Duration::from_secs(60),
        "STATUS retention unchanged"
    );
    drop(mirror);
    drop(others);
    drop(stack);
}

async fn notify_under_own_users(ctl: &async_nats::Client) {
    use beacon_testkit::receivers::smtp::SmtpSink;
    let smtp = SmtpSink::start().await;
    let page = format!(
        "[page]\nid = \"permnote\"\nname = \"Notify\"\n[[components]]\nid = \"api\"\nname = \"API\"\n\
         [[channels]]\nid = \"mail\"\ntype = \"email\"\nfrom = \"status@example.com\"\nendpoint = \"{}\"\ntls = \"none\"\n",
        smtp.endpoint()
    );
    apply_config(ctl, &page).await;
    let call = |subject: &'static str, body: serde_json::Value| async move {
        wait_until(&format!("{subject} to answer ok"), DECIDE, || {
            let body = body.clone();
            async move {
                let reply = ctl
                    .request(subject, serde_json::to_vec(&body).ok()?.into())
                    .await
                    .ok()?;
                let reply: serde_json::Value = serde_json::from_slice(&reply.payload).ok()?;
                (reply["status"] == "ok").then_some(reply)
            }
        })
        .await
    };
    call(
        beacon_contract::api::SUBSCRIBER_ADD.subject(),
        serde_json::json!({"page": "permnote", "subscriber": {"endpoints": [{"type": "email", "address": "perm@example.com"}]}, "confirmed": true, "actor": "ctl"}),
    )
    .await;
    call(
        beacon_contract::api::INCIDENT_CREATE.subject(),
        serde_json::json!({"page": "permnote", "title": "Down", "impact": "major", "components": [{"component": "api", "status": "major_outage"}], "body": "Looking", "actor": "ctl"}),
    )
    .await;
    wait_until("the notifier to send the email", DECIDE, || {
        let n = smtp.count();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    call(
        beacon_contract::api::SUBSCRIBER_ERASE.subject(),
        serde_json::json!({"page": "permnote", "address": "perm@example.com", "actor": "ctl"}),
    )
    .await;
}

/// Waits until the stack's edge serves `path` containing `want`.
async fn stack_wait(stack: &Stack, path: &str, want: &str) {
    let url = format!("{}{path}", stack.edge_url);
    wait_until(&format!("{path} to show {want}"), DECIDE, || {
        let url = url.clone();
        async move {
            let (status, body) = beacon_tests::get(&url).await?;
            (status == 200 && body.contains(want)).then_some(())
        }
    })
    .await;
}

/// Year and month of a day number since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_month(days: u64) -> (i64, i64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m)
}
