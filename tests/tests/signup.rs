//! Public sign-up as a reader meets it, over real HTTP through the edge,
//! with real NATS, decider, notifier (mailing a loopback SMTP server),
//! publisher, edge and api processes:
//!
//! - with the api daemon down, sign-up through the edge is a 503 with
//!   `Retry-After`, and the page keeps serving;
//! - with it up, sign-up is a 202, the confirmation email arrives, and its
//!   link (through the edge) confirms: the next incident reaches the inbox;
//! - a known and an unknown address get the same answer;
//! - one client address is limited (429), another is not;
//! - the one-click unsubscribe POST (RFC 8058) through the edge works;
//! - `/api/v1/status/{page}` on the edge shows an incident opened on the bus,
//!   with `max-age=30`.

use std::time::Duration;

use beacon_testkit::receivers::smtp::{Mail, SmtpSink};
use beacon_testkit::{ctl, free_port, wait_until, DaemonProcess, NatsServer};
use beacon_tests::rig::metric;
use beacon_tests::{apply_config, get, DECIDE, READY};
use serde_json::Value;

const PAGE: &str = "signup";

/// A sign-up answer: status, `Retry-After`, body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    content_type: String,
    body: String,
}

async fn post(url: &str, content_type: &str, body: String) -> Answer {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .timeout(Duration::from_secs(20))
        .body(body)
        .send()
        .await
        .expect("the edge answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header("retry-after");
    let content_type = header("content-type").unwrap_or_default();
    Answer {
        status: response.status().as_u16(),
        retry_after,
        content_type,
        body: response.text().await.expect("a body"),
    }
}

async fn sign_up_json(url: &str, email: &str) -> Answer {
    post(
        url,
        "application/json",
        serde_json::json!({"subscriber": {"email": email, "component_ids": ["api"]}}).to_string(),
    )
    .await
}

/// The first link in `mail` that contains `needle`.
fn link_in(mail: &Mail, needle: &str) -> String {
    let text = mail.decoded();
    let start = text
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle} link in {text}"));
    let begin = text[..start].rfind("http").expect("a URL");
    text[begin..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '<' && *c != '"' && *c != '>')
        .collect()
}

async fn mail_to(smtp: &SmtpSink, to: &str, what: &str, subject: &str) -> Mail {
    wait_until(what, DECIDE, || {
        let found = smtp.mails().into_iter().find(|m| {
            m.to == [to.to_owned()]
                && m.header("Subject")
                    .is_some_and(|s| s.to_lowercase().contains(&subject.to_lowercase()))
        });
        async move { found }
    })
    .await
}

/// `value` is valid against the checked-in OpenAPI document's `schema`.
fn assert_documented(schema: &str, value: &Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/openapi/beacon-api.json"
    );
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read the OpenAPI document"))
            .expect("the OpenAPI document is JSON");
    let wrapper = serde_json::json!({
        "$ref": format!("#/components/schemas/{schema}"),
        "components": document["components"],
    });
    let validator = jsonschema::validator_for(&wrapper).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{value} does not match {schema}: {errors:?}"
    );
}

#[tokio::test]
async fn readers_sign_up_confirm_and_unsubscribe_through_the_edge() {
    let nats = NatsServer::start();
    let smtp = SmtpSink::start().await;
    let origin = tempfile::tempdir().expect("origin dir");
    let origin_path = origin.path().display().to_string();
    let edge_port = free_port();
    let api_port = free_port();
    let edge_url = format!("http://127.0.0.1:{edge_port}");
    let api_url = format!("http://127.0.0.1:{api_port}");

    let decider =
        DaemonProcess::spawn_with_admin("beacon-decider", vec!["--nats-url".into(), nats.url()]);
    let notifier = DaemonProcess::spawn_with_admin(
        "beacon-notifier",
        vec![
            "--nats-url".into(),
            nats.url(),
            "--public-url".into(),
            format!("{edge_url}/api/v2/subscribers"),
            "--signing-secret".into(),
            "sign-up-secret-0123456789abcdefghijklmn".into(),
        ],
    );
    let publisher = DaemonProcess::spawn_with_admin(
        "beacon-publisher",
        vec![
            "--nats-url".into(),
            nats.url(),
            "--origin".into(),
            origin_path.clone(),
            "--debounce".into(),
            "50ms".into(),
        ],
    );
    let edge = DaemonProcess::spawn_with_admin(
        "beacon-edge",
        vec![
            "--origin".into(),
            origin_path,
            "--page".into(),
            PAGE.into(),
            "--listen".into(),
            format!("127.0.0.1:{edge_port}"),
            "--api-url".into(),
            api_url.clone(),
        ],
    );
    for daemon in [&decider, &notifier, &publisher, &edge] {
        daemon.wait_ready(READY).await;
    }
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let config = format!(
        "[page]\nid = \"{PAGE}\"\nname = \"Sign-up\"\n\
         [[components]]\nid = \"api\"\nname = \"API\"\n\
         [[components]]\nid = \"db\"\nname = \"Database\"\n\
         [[channels]]\nid = \"mail\"\ntype = \"email\"\nfrom = \"status@example.com\"\nendpoint = \"{}\"\ntls = \"none\"\n",
        smtp.endpoint()
    );
    apply_config(&client, &config).await;
    wait_until("the page on the edge", DECIDE, || {
        let url = format!("{edge_url}/");
        async move { get(&url).await.filter(|(s, _)| *s == 200) }
    })
    .await;

    // The API is down: sign-up is a clear "try again later", the page serves.
    let signup_url = format!("{edge_url}/api/v2/subscribers.json");
    let down = sign_up_json(&signup_url, "ada@example.com").await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(
        down.retry_after.is_some(),
        "Retry-After when the API is down"
    );
    assert!(down.content_type.starts_with("application/json"));
    assert!(down.body.contains("try again later"), "{}", down.body);
    let html = post(
        &signup_url,
        "application/x-www-form-urlencoded",
        "subscriber%5Bemail%5D=ada%40example.com".into(),
    )
    .await;
    assert_eq!(html.status, 503);
    assert!(
        html.content_type.starts_with("text/html"),
        "{}",
        html.content_type
    );
    let (status, _) = get(&format!("{edge_url}/index.html"))
        .await
        .expect("the edge answers");
    assert_eq!(status, 200, "the page keeps serving without the API");
    // Nothing else is forwarded.
    let (status, _) = get(&format!("{edge_url}/api/v1/incidents"))
        .await
        .expect("answers");
    assert_eq!(status, 404);

    // The API comes up: a new address gets 202 and a confirmation email.
    let api = DaemonProcess::spawn_with_admin(
        "beacon-api",
        vec![
            "--nats-url".into(),
            nats.url(),
            "--listen".into(),
            format!("127.0.0.1:{api_port}"),
            "--per-address-per-minute".into(),
            "60".into(),
        ],
    );
    api.wait_ready(READY).await;
    let first = sign_up_json(&signup_url, "ada@example.com").await;
    assert_eq!(first.status, 202, "{}", first.body);
    let body: Value = serde_json::from_str(&first.body).expect("JSON");
    assert_eq!(body["status"], "pending");
    assert_documented("SignUpAccepted", &body);
    let confirmation = mail_to(&smtp, "ada@example.com", "Ada's confirmation", "confirm").await;
    let confirm_link = link_in(&confirmation, "/api/v2/subscribers/confirm?token=");
    assert!(
        confirm_link.starts_with(&format!("{edge_url}/api/v2/subscribers/confirm?token=")),
        "{confirm_link}"
    );

    // A known address and an unknown one (a form, under the page's prefix)
    // get exactly the same answer.
    let known = sign_up_json(&signup_url, "ada@example.com").await;
    let unknown = post(
        &format!("{edge_url}/{PAGE}/api/v2/subscribers.json"),
        "application/x-www-form-urlencoded",
        "subscriber%5Bemail%5D=bob%40example.com&subscriber%5Bcomponent_ids%5D%5B%5D=api".into(),
    )
    .await;
    assert_eq!((known.status, &known.body), (first.status, &first.body));
    assert_eq!((unknown.status, &unknown.body), (first.status, &first.body));
    mail_to(&smtp, "bob@example.com", "Bob's confirmation", "confirm").await;
    wait_until("the known address counted", DECIDE, || {
        let admin = api.admin_url();
        async move {
            (metric(&admin, "beacon_api_signups_total{outcome=\"known\"}").await >= 1.0)
                .then_some(())
        }
    })
    .await;
    // An address erased at its owner's request gets the same answer too
    // (and only this way, with a new confirmation, may it come back).
    let erased = ctl::stdout_of_success(
        &ctl::run(
            &nats.url(),
            &["subscriber", "erase", PAGE, "--address", "bob@example.com"],
        )
        .await,
        "subscriber erase",
    );
    assert!(erased.contains("erased 1 subscriber"), "{erased}");
    let again = post(
        &signup_url,
        "application/x-www-form-urlencoded",
        "subscriber%5Bemail%5D=bob%40example.com".into(),
    )
    .await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    wait_until("Bob's second confirmation", DECIDE, || {
        let n = smtp
            .mails()
            .iter()
            .filter(|m| m.to == ["bob@example.com"])
            .count();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    // Malformed input is refused naming the field.
    let bad = post(
        &signup_url,
        "application/json",
        r#"{"subscriber":{"email":"ada@example.com","phone_number":"+15550100"}}"#.into(),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.body.contains("\"field\":\"subscriber\""),
        "{}",
        bad.body
    );

    // The confirmation link, through the edge: a GET only shows a button.
    let (status, page) = get(&confirm_link).await.expect("the edge answers");
    assert_eq!(status, 200);
    assert!(page.contains("<form method=\"post\""), "{page}");
    let confirmed = post(
        &confirm_link,
        "application/x-www-form-urlencoded",
        String::new(),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert!(confirmed.body.contains("confirmed"), "{}", confirmed.body);

    // An incident opened on the bus reaches Ada (confirmed), not Bob (pending),
    // and shows in /api/v1/status/{page} on the edge.
    let created = ctl::run(
        &nats.url(),
        &[
            "incident",
            "create",
            PAGE,
            "--title",
            "Checkout errors",
            "--impact",
            "major",
            "--component",
            "api=major_outage",
            "-m",
            "Looking into it",
            "--output",
            "json",
        ],
    )
    .await;
    let incident: Value =
        serde_json::from_str(&ctl::stdout_of_success(&created, "incident create")).expect("JSON");
    let id = incident["id"].as_str().expect("an id").to_owned();
    let news = mail_to(
        &smtp,
        "ada@example.com",
        "the incident to Ada",
        "Checkout errors",
    )
    .await;
    let status_url = format!("{edge_url}/api/v1/status/{PAGE}");
    let (status_body, cache_control, etag) =
        wait_until("the incident in /api/v1/status", DECIDE, || {
            let url = status_url.clone();
            let id = id.clone();
            async move {
                let response = reqwest::get(&url).await.ok()?;
                let cache = response
                    .headers()
                    .get("cache-control")?
                    .to_str()
                    .ok()?
                    .to_owned();
                let etag = response.headers().get("etag")?.to_str().ok()?.to_owned();
                let body = response.text().await.ok()?;
                body.contains(&id).then_some((body, cache, etag))
            }
        })
        .await;
    assert!(cache_control.contains("max-age=30"), "{cache_control}");
    let value: Value = serde_json::from_str(&status_body).expect("JSON");
    assert_eq!(value["incidents"][0]["title"], "Checkout errors");
    assert_eq!(value["incidents"][0]["impact"], "major");
    assert_ne!(value["status"]["indicator"], "none", "{status_body}");
    let api_row = value["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["id"] == "api")
        .cloned()
        .expect("the api component");
    assert_eq!(api_row["status"], "major_outage");
    let revalidated = reqwest::Client::new()
        .get(&status_url)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("the edge answers");
    assert_eq!(revalidated.status(), 304);
    assert!(
        !smtp.mails().iter().any(|m| m.to == ["bob@example.com"]
            && m.header("Subject")
                .is_some_and(|s| s.contains("Checkout errors"))),
        "Bob has not confirmed"
    );

    // One click in the mail client unsubscribes, through the edge.
    let unsubscribe = news.header("List-Unsubscribe").expect("List-Unsubscribe");
    let link = unsubscribe.trim_matches(['<', '>']).to_owned();
    assert!(
        link.starts_with(&format!("{edge_url}/api/v2/subscribers/unsubscribe?token=")),
        "{link}"
    );
    let gone = post(
        &link,
        "application/x-www-form-urlencoded",
        "List-Unsubscribe=One-Click".into(),
    )
    .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    let listed = ctl::stdout_of_success(
        &ctl::run(&nats.url(), &["subscriber", "list", PAGE]).await,
        "subscriber list",
    );
    assert!(!listed.contains("ada@example.com"), "{listed}");
    assert!(listed.contains("bob@example.com"), "{listed}");
    let forged = post(
        &format!("{edge_url}/api/v2/subscribers/unsubscribe?token=nonsense"),
        "application/x-www-form-urlencoded",
        "List-Unsubscribe=One-Click".into(),
    )
    .await;
    assert_eq!(forged.status, 400, "{}", forged.body);

    // One client address is limited; the API names when to retry.
    let mut limited = None;
    for n in 0..40 {
        let answer = post(
            &signup_url,
            "application/json",
            r#"{"subscriber":{}}"#.into(),
        )
        .await;
        if answer.status == 429 {
            limited = Some((n, answer));
            break;
        }
        assert_eq!(answer.status, 422, "{}", answer.body);
    }
    let (n, answer) = limited.expect("a 429 within 40 requests");
    assert!(n < 25, "limited after {n} requests");
    let wait: u64 = answer
        .retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    // Another client (behind a trusted proxy) is not.
    let other = reqwest::Client::new()
        .post(format!("{api_url}/api/v2/subscribers.json?page={PAGE}"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", "192.0.2.7")
        .body(r#"{"subscriber":{}}"#)
        .send()
        .await
        .expect("the API answers");
    assert_eq!(other.status(), 422);
    // An oversized body is refused with the API's JSON error.
    let oversized = reqwest::Client::new()
        .post(format!("{api_url}/api/v2/subscribers.json?page={PAGE}"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", "192.0.2.8")
        .body(format!(
            r#"{{"subscriber":{{"email":"{}@example.com"}}}}"#,
            "a".repeat(70_000)
        ))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(oversized.status(), 413);
    let error: serde_json::Value =
        serde_json::from_str(&oversized.text().await.expect("a body")).expect("a JSON error");
    assert_eq!(error["error"]["code"], "too_large", "{error}");
    drop((api, edge, publisher, notifier, decider));
}
