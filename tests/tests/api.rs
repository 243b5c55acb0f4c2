//! The HTTP API over real HTTP, against real NATS, a real decider and probe,
//! and the real api daemon; keys made with `beaconctl apikey`. Responses are
//! checked against the checked-in OpenAPI document.

use std::time::Duration;

use beacon_contract::messages::ComponentStatus;
use beacon_testkit::{free_port, wait_until, DaemonProcess};
use beacon_tests::rig::Rig;
use beacon_tests::{HttpTarget, DECIDE, READY};
use serde_json::{json, Value};

/// A page with components `api` (checked) and `db` (set by hand).
fn page(page: &str, target: &str) -> String {
    format!(
        r#"
[page]
id = "{page}"
name = "API test"
[defaults]
regions = ["eu"]
interval = "1s"
timeout = "1s"
failure_threshold = 2
recovery_threshold = 2
[[components]]
id = "api"
name = "API"
[[components.checks]]
type = "http"
url = "{target}"
[[components]]
id = "db"
name = "Database"
"#
    )
}

struct Api {
    rig: Rig,
    _daemon: DaemonProcess,
    url: String,
    http: reqwest::Client,
    document: Value,
    target: HttpTarget,
}

impl Api {
    async fn start(pages: &[&str]) -> Api {
        let rig = Rig::start(&["eu"], &[]).await;
        let target = HttpTarget::start().await;
        for p in pages {
            rig.apply(&page(p, &target.url())).await;
        }
        for p in pages {
            rig.wait_status(p, "api", ComponentStatus::Operational)
                .await;
        }
        let port = free_port();
        let daemon = DaemonProcess::spawn_with_admin(
            "beacon-api",
            vec![
                "--nats-url".into(),
                rig.nats.url(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
            ],
        );
        daemon.wait_ready(READY).await;
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/openapi/beacon-api.json"
        );
        let document = serde_json::from_str(
            &std::fs::read_to_string(path).expect("read the OpenAPI document"),
        )
        .expect("the OpenAPI document is JSON");
        Api {
            rig,
            _daemon: daemon,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            document,
            target,
        }
    }

    async fn key(&self, page: &str, scopes: &[&str], rate: Option<u32>) -> (String, String) {
        let mut args = vec!["apikey", "create", "--page", page, "--name", "test key"];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        let rate_text = rate.map(|r| r.to_string());
        if let Some(rate) = &rate_text {
            args.extend(["--rate-per-minute", rate]);
        }
        let created = self.rig.ctl_json(&args).await;
        (
            created["key"].as_str().expect("key").to_owned(),
            created["view"]["id"].as_str().expect("id").to_owned(),
        )
    }

    /// A request with a key and neither body nor extra headers.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: &str,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        self.send(method, path, Some(auth), None, &[]).await
    }

    /// A request with a key and a JSON body.
    async fn call_json(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: &str,
        body: Value,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        self.send(method, path, Some(auth), Some(body), &[]).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value, headers)
    }

    /// `value` is valid against `#/components/schemas/{schema}`.
    fn assert_schema(&self, schema: &str, value: &Value) {
        let wrapper = json!({
            "$ref": format!("#/components/schemas/{schema}"),
            "components": self.document["components"],
        });
        let validator = jsonschema::validator_for(&wrapper).expect("a valid schema");
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{schema} does not match the OpenAPI document: {errors:#?}\n{value:#}"
        );
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test]
async fn the_seed_routes_write_through_the_owners() {
    let api = Api::start(&["seed"]).await;
    let (key, key_id) = api
        .key(
            "seed",
            &["incidents:write", "components:write", "maintenance:write"],
            None,
        )
        .await;
    let auth = bearer(&key);
    use reqwest::Method as M;

    let (status, incident, _) = api
        .call_json(M::POST, "/api/v1/incidents", &auth, json!({"title": "Checkout <b>errors</b>\r\nX-Injected: 1", "impact": "major", "components": ["api"], "message": "Looking"}))
        .await;
    assert_eq!(status, 201, "{incident}");
    api.assert_schema("Incident", &incident);
    assert_eq!(
        incident["title"], "Checkout <b>errors</b>\r\nX-Injected: 1",
        "text is stored as text"
    );
    assert_eq!(
        incident["components"][0],
        json!({"id": "api", "status": "major_outage"})
    );
    let id = incident["id"].as_str().expect("id").to_owned();
    assert!(
        incident["updates"][0]["author"]
            .as_str()
            .is_some_and(|a| a.contains(&key_id)),
        "{incident}"
    );

    // The component shows what the incident says.
    api.rig
        .wait_status("seed", "api", ComponentStatus::MajorOutage)
        .await;

    let (status, updated, _) = api
        .call_json(
            M::POST,
            &format!("/api/v1/incidents/{id}/updates"),
            &auth,
            json!({"status": "resolved", "message": "Fixed"}),
        )
        .await;
    assert_eq!(status, 201, "{updated}");
    api.assert_schema("Incident", &updated);
    assert_eq!(updated["status"], "resolved");
    api.rig
        .wait_status("seed", "api", ComponentStatus::Operational)
        .await;

    let (status, list, _) = api.call(M::GET, "/api/v1/incidents?all=true", &auth).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (status, one, _) = api
        .call(M::GET, &format!("/api/v1/incidents/{id}"), &auth)
        .await;
    assert_eq!((status, one["id"].as_str()), (200, Some(id.as_str())));
    let (status, _, _) = api.call(M::GET, "/api/v1/incidents/nope", &auth).await;
    assert_eq!(status, 404);

    // Components: read, override, hand back.
    let (status, components, _) = api.call(M::GET, "/api/v1/components", &auth).await;
    assert_eq!(status, 200);
    for component in components.as_array().expect("a list") {
        api.assert_schema("Component", component);
    }
    let (status, set, _) = api
        .call_json(
            M::PUT,
            "/api/v1/components/db/status",
            &auth,
            json!({"status": "under_maintenance", "expires_in": "10m", "reason": "migration"}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    api.rig
        .wait_status("seed", "db", ComponentStatus::UnderMaintenance)
        .await;
    let (status, _, _) = api
        .call(M::DELETE, "/api/v1/components/db/status", &auth)
        .await;
    assert_eq!(status, 200);

    // Maintenance: schedule, list, cancel.
    let (status, window, _) = api
        .call_json(M::POST, "/api/v1/maintenance", &auth, json!({"title": "DB upgrade", "starts_at": "2030-01-01T03:00:00Z", "ends_at": "2030-01-01T04:00:00Z", "components": ["db"]}))
        .await;
    assert_eq!(status, 201, "{window}");
    api.assert_schema("Maintenance", &window);
    let window_id = window["id"].as_str().expect("id").to_owned();
    let (status, cancelled, _) = api
        .call(
            M::POST,
            &format!("/api/v1/maintenance/{window_id}/cancel"),
            &auth,
        )
        .await;
    assert_eq!(
        (status, cancelled["phase"].as_str()),
        (200, Some("cancelled"))
    );

    // Bad input names the field and changes nothing.
    let (status, error, _) = api
        .call_json(
            M::POST,
            "/api/v1/incidents",
            &auth,
            json!({"title": "x", "impact": "huge"}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["field"], "impact");
    let (status, error, _) = api
        .call_json(
            M::POST,
            "/api/v1/incidents",
            &auth,
            json!({"title": "x", "impact": "minor", "colour": "red"}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("colour")),
        "{error}"
    );
    let (status, _, _) = api
        .call_json(
            M::POST,
            "/api/v1/incidents",
            &auth,
            json!({"title": "x", "impact": "minor", "components": ["ghost"]}),
        )
        .await;
    assert_eq!(status, 422);
    let huge = "x".repeat(100_000);
    let (status, _, _) = api
        .call_json(
            M::POST,
            "/api/v1/incidents",
            &auth,
            json!({"title": huge, "impact": "minor"}),
        )
        .await;
    assert_eq!(status, 413);
    let response = api
        .http
        .post(format!("{}/api/v1/incidents", api.url))
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 400);
    let (_, list, _) = api.call(M::GET, "/api/v1/incidents?all=true", &auth).await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "nothing was created by the bad requests"
    );
}

#[tokio::test]
async fn keys_are_scoped_revocable_and_rate_limited() {
    let api = Api::start(&["alpha", "beta"]).await;
    use reqwest::Method as M;
    let (reader, _) = api.key("alpha", &["incidents:read"], None).await;
    let (beta_writer, _) = api.key("beta", &["incidents:write"], None).await;
    let body = || Some(json!({"title": "x", "impact": "minor"}));

    // A read key cannot write.
    let (status, error, _) = api
        .send(
            M::POST,
            "/api/v1/incidents",
            Some(&bearer(&reader)),
            body(),
            &[],
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    // A key for page beta cannot touch page alpha.
    let (status, _, _) = api
        .call(
            M::GET,
            "/v1/pages/alpha/incidents",
            &format!("OAuth {beta_writer}"),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = api
        .call(
            M::GET,
            "/v1/pages/beta/incidents",
            &format!("OAuth {beta_writer}"),
        )
        .await;
    assert_eq!(status, 200);
    // Missing, malformed and unknown keys.
    let (status, error, headers) = api.send(M::GET, "/api/v1/incidents", None, None, &[]).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert!(headers.contains_key("www-authenticate"));
    // Without a key, a bad body is not looked at: 401, not a field error.
    let (status, error, _) = api
        .send(
            M::POST,
            "/api/v1/incidents",
            None,
            Some(serde_json::json!({"title": 1, "bogus": true})),
            &[],
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{error}"
    );
    let (status, _, _) = api
        .call(M::GET, "/api/v1/incidents", "Bearer nonsense")
        .await;
    assert_eq!(status, 401);
    let forged = format!("{}0", &reader[..reader.len() - 1]);
    let forged = if forged == reader {
        format!("{}1", &reader[..reader.len() - 1])
    } else {
        forged
    };
    let (status, _, _) = api
        .call(M::GET, "/api/v1/incidents", &bearer(&forged))
        .await;
    assert_eq!(status, 401);

    // A revoked key is refused from then on.
    let (revoked, revoked_id) = api.key("alpha", &["incidents:read"], None).await;
    let (status, _, _) = api
        .call(M::GET, "/api/v1/incidents", &bearer(&revoked))
        .await;
    assert_eq!(status, 200);
    let output = api.rig.ctl(&["apikey", "revoke", &revoked_id]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    wait_until("the revoked key to be refused", DECIDE, || async {
        let (status, error, _) = api
            .call(M::GET, "/api/v1/incidents", &bearer(&revoked))
            .await;
        (status == 401
            && error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("revoked")))
        .then_some(())
    })
    .await;
    let listed = api
        .rig
        .ctl_json(&["apikey", "list", "--page", "alpha"])
        .await;
    let text = listed.to_string();
    assert!(!text.contains(&revoked[20..]), "list never shows a secret");

    // Rate limits: 6 a minute is a burst of one.
    let (slow, _) = api.key("alpha", &["incidents:read"], Some(6)).await;
    let (status, _, _) = api.call(M::GET, "/api/v1/incidents", &bearer(&slow)).await;
    assert_eq!(status, 200);
    let (status, error, headers) = api.call(M::GET, "/api/v1/incidents", &bearer(&slow)).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=10).contains(&retry), "{retry}");
}

#[tokio::test]
async fn retries_with_an_idempotency_key_create_one_incident_and_one_update() {
    let api = Api::start(&["idem"]).await;
    use reqwest::Method as M;
    let (key, _) = api.key("idem", &["incidents:write"], None).await;
    let auth = bearer(&key);
    let body = json!({"title": "Retried", "impact": "minor", "components": ["api"]});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, incident, _) = api
            .send(
                M::POST,
                "/api/v1/incidents",
                Some(&auth),
                Some(body.clone()),
                &[("idempotency-key", "deploy-42")],
            )
            .await;
        assert_eq!(status, 201, "{incident}");
        ids.push(incident["id"].as_str().expect("id").to_owned());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let update = json!({"status": "identified", "message": "Cause found"});
    for _ in 0..3 {
        let (status, incident, _) = api
            .send(
                M::POST,
                &format!("/api/v1/incidents/{}/updates", ids[0]),
                Some(&auth),
                Some(update.clone()),
                &[("idempotency-key", "update-1")],
            )
            .await;
        assert_eq!(status, 201, "{incident}");
    }
    let (_, incident, _) = api
        .call(M::GET, &format!("/api/v1/incidents/{}", ids[0]), &auth)
        .await;
    let messages: Vec<&str> = incident["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .filter_map(|u| u["message"].as_str())
        .filter(|m| *m == "Cause found")
        .collect();
    assert_eq!(messages.len(), 1, "{incident:#}");
    let (_, list, _) = api.call(M::GET, "/api/v1/incidents?all=true", &auth).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn the_statuspage_routes_speak_statuspage() {
    let api = Api::start(&["sp"]).await;
    use reqwest::Method as M;
    let (key, _) = api
        .key(
            "sp",
            &["incidents:write", "components:write", "maintenance:write"],
            None,
        )
        .await;
    let auth = format!("OAuth {key}");

    let (status, created, _) = api
        .call_json(M::POST, "/v1/pages/sp/incidents", &auth, json!({"incident": {"name": "Elevated errors", "status": "investigating", "impact_override": "major",
                "body": "We are looking into it.", "components": {"api": "partial_outage"}, "deliver_notifications": true}}))
        .await;
    assert_eq!(status, 201, "{created}");
    api.assert_schema("SpIncident", &created);
    assert_eq!(created["status"], "investigating");
    assert_eq!(created["impact"], "major");
    let id = created["id"].as_str().expect("id").to_owned();
    api.rig
        .wait_status("sp", "api", ComponentStatus::PartialOutage)
        .await;

    let (status, updated, _) = api
        .call_json(M::PATCH, &format!("/v1/pages/sp/incidents/{id}"), &auth, json!({"incident": {"status": "resolved", "body": "All good.", "components": {"api": "operational"}}}))
        .await;
    assert_eq!(status, 200, "{updated}");
    api.assert_schema("SpIncident", &updated);
    assert_eq!(updated["status"], "resolved");
    assert!(updated["resolved_at"].is_string());
    assert_eq!(
        updated["incident_updates"][0]["status"], "resolved",
        "newest first"
    );
    assert_eq!(
        updated["incident_updates"][0]["affected_components"][0]["new_status"],
        "operational"
    );

    let (status, unresolved, _) = api
        .call(M::GET, "/v1/pages/sp/incidents/unresolved", &auth)
        .await;
    assert_eq!(
        (status, unresolved.as_array().map(Vec::len)),
        (200, Some(0))
    );

    // Components.
    let (status, components, _) = api.call(M::GET, "/v1/pages/sp/components", &auth).await;
    assert_eq!(status, 200);
    for component in components.as_array().expect("list") {
        api.assert_schema("SpComponent", component);
    }
    let (status, component, _) = api
        .call_json(
            M::PATCH,
            "/v1/pages/sp/components/api",
            &auth,
            json!({"component": {"status": "degraded_performance"}}),
        )
        .await;
    assert_eq!(
        (status, component["status"].as_str()),
        (200, Some("degraded_performance")),
        "{component}"
    );
    api.rig
        .wait_status("sp", "api", ComponentStatus::DegradedPerformance)
        .await;
    let (status, error, _) = api
        .call_json(
            M::PATCH,
            "/v1/pages/sp/components/api",
            &auth,
            json!({"component": {"status": "down"}}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("component.status")),
        "{error}"
    );
    let (status, error, _) = api
        .call_json(
            M::PATCH,
            "/v1/pages/sp/components/api",
            &auth,
            json!({"component": {"name": "Renamed", "status": "operational"}}),
        )
        .await;
    assert_eq!(status, 422, "{error}");

    // Scheduled maintenance is an incident with scheduled_for.
    let (status, scheduled, _) = api
        .call_json(M::POST, "/v1/pages/sp/incidents", &auth, json!({"incident": {"name": "DB upgrade", "status": "scheduled", "scheduled_for": "2030-01-01T03:00:00Z",
                "scheduled_until": "2030-01-01T04:00:00Z", "component_ids": ["db"], "scheduled_remind_prior": true}}))
        .await;
    assert_eq!(status, 201, "{scheduled}");
    api.assert_schema("SpIncident", &scheduled);
    assert_eq!(scheduled["status"], "scheduled");
    let window = scheduled["id"].as_str().expect("id").to_owned();
    let (status, listed, _) = api
        .call(M::GET, "/v1/pages/sp/incidents/scheduled", &auth)
        .await;
    assert_eq!((status, listed.as_array().map(Vec::len)), (200, Some(1)));
    let (status, deleted, _) = api
        .call(
            M::DELETE,
            &format!("/v1/pages/sp/incidents/{window}"),
            &auth,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    let (status, _, _) = api
        .call(M::DELETE, &format!("/v1/pages/sp/incidents/{id}"), &auth)
        .await;
    assert_eq!(status, 422, "incidents are resolved, not deleted");

    // An unknown field is named.
    let (status, error, _) = api
        .call_json(
            M::POST,
            "/v1/pages/sp/incidents",
            &auth,
            json!({"incident": {"name": "x", "severity": "high"}}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("severity")),
        "{error}"
    );
    let (status, _, _) = api.call(M::GET, "/v1/pages/sp/nothing", &auth).await;
    assert_eq!(status, 404);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// `page(…)` with the channels subscribers may use: email to `smtp`, SMS
/// and webhooks.
fn page_with_channels(page_id: &str, target: &str, smtp: &str) -> String {
    format!(
        "{}\n[[channels]]\nid = \"mail\"\ntype = \"email\"\nfrom = \"status@example.com\"\nendpoint = \"{smtp}\"\ntls = \"none\"\n\
         [[channels]]\nid = \"sms\"\ntype = \"sms\"\nfrom = \"+15550000001\"\nendpoint = \"http://127.0.0.1:9\"\nsecret_env = \"API_TEST_TWILIO\"\n\
         [[channels]]\nid = \"hooks\"\ntype = \"webhook\"\nsecret_env = \"API_TEST_HOOKS\"\n",
        page(page_id, target)
    )
}

fn notifier(api: &Api) -> DaemonProcess {
    DaemonProcess::spawn_with_admin(
        "beacon-notifier",
        vec![
            "--nats-url".into(),
            api.rig.nats.url(),
            "--public-url".into(),
            "http://127.0.0.1:9/notify".into(),
            "--signing-secret".into(),
            "api-test-secret-0123456789abcdefghij".into(),
            "--webhook-allow".into(),
            "127.0.0.0/8".into(),
        ],
    )
}

#[tokio::test]
async fn subscribers_are_kept_by_the_notifier_through_both_apis() {
    use reqwest::Method as M;
    let api = Api::start(&["subs", "other"]).await;
    let smtp = beacon_testkit::receivers::smtp::SmtpSink::start().await;
    for p in ["subs", "other"] {
        api.rig
            .apply(&page_with_channels(p, &api.target.url(), &smtp.endpoint()))
            .await;
    }
    let (writer, writer_id) = api.key("subs", &["subscribers:write"], None).await;
    let (reader, _) = api.key("subs", &["subscribers:read"], None).await;
    let (other, _) = api.key("other", &["subscribers:write"], None).await;
    let (incidents_only, _) = api.key("subs", &["incidents:write"], None).await;
    let auth = bearer(&writer);

    // No notifier yet: the owner is down.
    let (status, error, headers) = api.call(M::GET, "/api/v1/subscribers", &auth).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{error}"
    );
    assert!(headers.contains_key("retry-after"));

    let notifier = notifier(&api);
    notifier.wait_ready(READY).await;
    wait_until("the notifier to answer", DECIDE, || async {
        let (status, _, _) = api.call(M::GET, "/api/v1/subscribers", &auth).await;
        (status == 200).then_some(())
    })
    .await;

    // Double opt-in: the email endpoint waits, and its confirmation is sent.
    let (status, ada, _) = api
        .call_json(M::POST, "/api/v1/subscribers", &auth, json!({"endpoints": [{"type": "email", "address": "ada@example.com"}], "components": ["api"]}))
        .await;
    assert_eq!(status, 201, "{ada}");
    api.assert_schema("Subscriber", &ada);
    assert_eq!(ada["endpoints"][0]["state"], "pending", "{ada}");
    assert_eq!(ada["components"], json!(["api"]));
    let ada_id = ada["id"].as_str().expect("id").to_owned();
    wait_until("the confirmation email", DECIDE, || async {
        smtp.mails()
            .iter()
            .any(|m| m.to.iter().any(|t| t.contains("ada@example.com")))
            .then_some(())
    })
    .await;
    wait_until("the key recorded as the actor", DECIDE, || async {
        notifier.logs().contains(&writer_id).then_some(())
    })
    .await;

    // Confirmed elsewhere: every endpoint is live at once.
    let (status, hooked, _) = api
        .call_json(M::POST, "/api/v1/subscribers", &auth, json!({"endpoints": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}, {"type": "sms", "phone": "+14155550100"}],
                "dedup": "first", "confirmed": true}))
        .await;
    assert_eq!(status, 201, "{hooked}");
    api.assert_schema("Subscriber", &hooked);
    assert_eq!(hooked["dedup"], "first");
    assert!(
        hooked["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .all(|e| e["state"] == "active"),
        "{hooked}"
    );
    let hooked_id = hooked["id"].as_str().expect("id").to_owned();

    // The same address again is a conflict naming the subscriber.
    let (status, error, _) = api
        .call_json(
            M::POST,
            "/api/v1/subscribers",
            &auth,
            json!({"endpoints": [{"type": "email", "address": "ada@example.com"}]}),
        )
        .await;
    assert_eq!(status, 409, "{error}");
    api.assert_schema("Subscriber", &error["error"]["current"]);
    assert_eq!(error["error"]["current"]["id"], ada_id.as_str(), "{error}");
    // A retry with an Idempotency-Key finds the subscriber it made; one
    // asking for other endpoints is still a conflict.
    let (status, again, _) = api
        .send(
            M::POST,
            "/api/v1/subscribers",
            Some(&auth),
            Some(json!({"endpoints": [{"type": "email", "address": "ada@example.com"}], "components": ["api"]})),
            &[("idempotency-key", "signup-ada")],
        )
        .await;
    assert_eq!(
        (status, again["id"].as_str()),
        (200, Some(ada_id.as_str())),
        "{again}"
    );
    let (status, _, _) = api
        .send(
            M::POST,
            "/api/v1/subscribers",
            Some(&auth),
            Some(json!({"endpoints": [{"type": "email", "address": "ada@example.com"}, {"type": "sms", "phone": "+14155550123"}]})),
            &[("idempotency-key", "signup-ada-2")],
        )
        .await;
    assert_eq!(status, 409);

    // Bad input names the field.
    for (body, field) in [
        (
            json!({"endpoints": [{"type": "pigeon", "address": "x"}]}),
            "endpoints[0]",
        ),
        (
            json!({"endpoints": [{"type": "email", "address": "b@example.com"}], "colour": "red"}),
            "colour",
        ),
        (
            json!({"endpoints": [{"type": "email", "address": "b@example.com"}], "components": ["ghost"]}),
            "components[0]",
        ),
        (
            json!({"endpoints": [{"type": "email", "address": "not an address"}]}),
            "endpoints[0].address",
        ),
        (
            json!({"endpoints": [{"type": "sms", "phone": "+14155550199"}], "dedup": "sometimes"}),
            "dedup",
        ),
    ] {
        let (status, error, _) = api
            .call_json(M::POST, "/api/v1/subscribers", &auth, body.clone())
            .await;
        assert_eq!(status, 422, "{body} → {error}");
        let named = error["error"]["field"].as_str().unwrap_or_default();
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            named.starts_with(field) || message.contains(field),
            "{body} should name {field}: {error}"
        );
    }

    let (status, error, _) = api
        .call(M::GET, "/api/v1/subscribers?cursor=x", &auth)
        .await;
    assert_eq!(status, 422, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cursor")),
        "{error}"
    );
    // Reading, in slices.
    let (status, first, _) = api.call(M::GET, "/api/v1/subscribers?limit=1", &auth).await;
    assert_eq!(status, 200, "{first}");
    api.assert_schema("SubscriberPage", &first);
    assert_eq!(first["total"], 2, "the bad requests stored nothing");
    assert_eq!(first["subscribers"].as_array().map(Vec::len), Some(1));
    let next = first["next"].as_str().expect("a next slice").to_owned();
    let (status, second, _) = api
        .call(
            M::GET,
            &format!("/api/v1/subscribers?limit=1&after={next}"),
            &bearer(&reader),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert!(second.get("next").is_none(), "{second}");
    let mut ids = vec![
        first["subscribers"][0]["id"]
            .as_str()
            .expect("id")
            .to_owned(),
        second["subscribers"][0]["id"]
            .as_str()
            .expect("id")
            .to_owned(),
    ];
    ids.sort();
    let mut want = vec![ada_id.clone(), hooked_id.clone()];
    want.sort();
    assert_eq!(ids, want);
    let (status, shown, _) = api
        .call(
            M::GET,
            &format!("/api/v1/subscribers/{hooked_id}"),
            &bearer(&reader),
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    api.assert_schema("Subscriber", &shown);
    assert_eq!(shown["endpoints"][1]["phone"], "+14155550100");

    // Scopes and pages.
    let (status, _, _) = api
        .call_json(
            M::POST,
            "/api/v1/subscribers",
            &bearer(&reader),
            json!({"endpoints": [{"type": "email", "address": "c@example.com"}]}),
        )
        .await;
    assert_eq!(status, 403, "a read key cannot add");
    let (status, _, _) = api
        .call(M::GET, "/api/v1/subscribers", &bearer(&incidents_only))
        .await;
    assert_eq!(status, 403, "an incidents key cannot read subscribers");
    for method in [M::GET, M::DELETE] {
        let (status, _, _) = api
            .call(
                method,
                &format!("/api/v1/subscribers/{ada_id}"),
                &bearer(&other),
            )
            .await;
        assert_eq!(status, 404, "page other has no such subscriber");
    }
    let other_auth = format!("OAuth {other}");
    let (status, _, _) = api
        .call(M::GET, "/v1/pages/subs/subscribers", &other_auth)
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = api
        .call(
            M::DELETE,
            &format!("/v1/pages/subs/subscribers/{ada_id}"),
            &other_auth,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = api
        .call(M::GET, &format!("/api/v1/subscribers/{ada_id}"), &auth)
        .await;
    assert_eq!(status, 200, "ada is still there");

    // Removing.
    let (status, _, _) = api
        .call(
            M::DELETE,
            &format!("/api/v1/subscribers/{hooked_id}"),
            &auth,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = api
        .call(M::GET, &format!("/api/v1/subscribers/{hooked_id}"), &auth)
        .await;
    assert_eq!(status, 404);

    // Statuspage's shapes.
    let sp_auth = format!("OAuth {writer}");
    let (status, sp, _) = api
        .call_json(M::POST, "/v1/pages/subs/subscribers", &sp_auth, json!({"subscriber": {"email": "grace@example.com", "component_ids": ["db"], "skip_confirmation_notification": true}}))
        .await;
    assert_eq!(status, 201, "{sp}");
    api.assert_schema("SpSubscriber", &sp);
    assert_eq!(sp["mode"], "email");
    assert_eq!(sp["email"], "grace@example.com");
    assert_eq!(sp["skip_confirmation_notification"], true);
    assert_eq!(sp["components"], json!(["db"]));
    let grace = sp["id"].as_str().expect("id").to_owned();
    let (status, sms, _) = api
        .call_json(
            M::POST,
            "/v1/pages/subs/subscribers",
            &sp_auth,
            json!({"subscriber": {"phone_number": "+14155550111", "phone_country": "US"}}),
        )
        .await;
    assert_eq!(status, 201, "{sms}");
    assert_eq!(
        (sms["mode"].as_str(), sms["phone_number"].as_str()),
        (Some("sms"), Some("+14155550111"))
    );
    let (status, pending, _) = api
        .call_json(
            M::POST,
            "/v1/pages/subs/subscribers",
            &sp_auth,
            json!({"subscriber": {"email": "<b>lin</b>@example.com"}}),
        )
        .await;
    assert_eq!(status, 422, "{pending}");
    assert_eq!(pending["error"]["field"], "subscriber.email", "{pending}");
    for (body, field) in [
        (
            json!({"subscriber": {"email": "x@example.com", "severity": 1}}),
            "severity",
        ),
        (
            json!({"subscriber": {"email": "x@example.com", "component_ids": ["ghost"]}}),
            "subscriber.component_ids[0]",
        ),
        (json!({"subscriber": {}}), "subscriber"),
        (
            json!({"subscriber": {"phone_number": "4155550100"}}),
            "subscriber.phone_number",
        ),
    ] {
        let (status, error, _) = api
            .call_json(
                M::POST,
                "/v1/pages/subs/subscribers",
                &sp_auth,
                body.clone(),
            )
            .await;
        assert_eq!(status, 422, "{body} → {error}");
        let named = error["error"]["field"].as_str().unwrap_or_default();
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            named == field || message.contains(field),
            "{body} should name {field}: {error}"
        );
    }
    // Three subscribers: ada waits for her confirmation, grace (email) and
    // the SMS one are active.
    let sp_ids = |list: &Value| -> Vec<String> {
        list.as_array()
            .expect("a list")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_owned())
            .collect()
    };
    for (query, want) in [
        ("state=all&per_page=2&page=2", 1),
        ("state=all", 3),
        ("", 2),
        ("per_page=1&page=2", 1),
        ("per_page=1&page=3", 0),
        ("state=unconfirmed", 1),
        ("type=sms", 1),
        ("type=email&state=all", 2),
        ("type=integration_partner&state=all", 0),
    ] {
        let (status, listed, _) = api
            .call(
                M::GET,
                &format!("/v1/pages/subs/subscribers?{query}"),
                &sp_auth,
            )
            .await;
        assert_eq!(status, 200, "{query}: {listed}");
        assert_eq!(sp_ids(&listed).len(), want, "{query}: {listed:#}");
        for subscriber in listed.as_array().expect("list") {
            api.assert_schema("SpSubscriber", subscriber);
        }
    }
    let (_, unconfirmed, _) = api
        .call(
            M::GET,
            "/v1/pages/subs/subscribers?state=unconfirmed",
            &sp_auth,
        )
        .await;
    assert_eq!(sp_ids(&unconfirmed), vec![ada_id.as_str()]);
    let (status, error, _) = api
        .call(
            M::GET,
            "/v1/pages/subs/subscribers?state=sometimes",
            &sp_auth,
        )
        .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("state")),
        "{error}"
    );
    let (status, shown, _) = api
        .call(
            M::GET,
            &format!("/v1/pages/subs/subscribers/{grace}"),
            &format!("OAuth {reader}"),
        )
        .await;
    assert_eq!((status, shown["id"].as_str()), (200, Some(grace.as_str())));
    let (status, removed, _) = api
        .call(
            M::DELETE,
            &format!("/v1/pages/subs/subscribers/{grace}"),
            &sp_auth,
        )
        .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["email"], "grace@example.com");
    let (status, _, _) = api
        .call(
            M::GET,
            &format!("/v1/pages/subs/subscribers/{grace}"),
            &sp_auth,
        )
        .await;
    assert_eq!(status, 404);
    let (_, all, _) = api.call(M::GET, "/api/v1/subscribers", &auth).await;
    assert_eq!(all["total"], 2, "{all}");

    // Erasure at its owner's request: gone, and an operator cannot add the
    // address again.
    let (status, error, _) = api
        .call(
            M::DELETE,
            &format!("/api/v1/subscribers/{ada_id}?erase=maybe"),
            &auth,
        )
        .await;
    assert_eq!(status, 422, "{error}");
    let (status, _, _) = api
        .call(
            M::DELETE,
            &format!("/api/v1/subscribers/{ada_id}?erase=true"),
            &auth,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = api
        .call(M::GET, &format!("/api/v1/subscribers/{ada_id}"), &auth)
        .await;
    assert_eq!(status, 404);
    let (status, error, _) = api
        .call_json(M::POST, "/api/v1/subscribers", &auth, json!({"endpoints": [{"type": "email", "address": "ada@example.com"}], "confirmed": true}))
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["field"], "endpoints[0]", "{error}");
    assert!(error.to_string().contains("erased"), "{error}");
}

#[tokio::test]
async fn changelog_entries_are_published_once_through_the_publisher() {
    use reqwest::Method as M;
    let api = Api::start(&["notes"]).await;
    let (writer, writer_id) = api.key("notes", &["changelog:write"], None).await;
    let (reader, _) = api.key("notes", &["changelog:read"], None).await;
    let (incidents_only, _) = api.key("notes", &["incidents:write"], None).await;
    let auth = bearer(&writer);
    let body = json!({"title": "Faster <b>exports</b>", "body": "Exports are **twice** as fast. <script>alert(1)</script>",
        "category": "improvement", "components": ["api"]});

    // No publisher yet: the owner is down.
    let (status, error, _) = api
        .send(
            M::POST,
            "/api/v1/changelog",
            Some(&auth),
            Some(body.clone()),
            &[("idempotency-key", "release-7")],
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{error}"
    );

    let origin = tempfile::tempdir().expect("origin dir");
    let publisher = DaemonProcess::spawn_with_admin(
        "beacon-publisher",
        vec![
            "--nats-url".into(),
            api.rig.nats.url(),
            "--origin".into(),
            origin.path().display().to_string(),
            "--debounce".into(),
            "50ms".into(),
        ],
    );
    publisher.wait_ready(READY).await;

    // A retried publish makes one entry.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, entry, _) = api
            .send(
                M::POST,
                "/api/v1/changelog",
                Some(&auth),
                Some(body.clone()),
                &[("idempotency-key", "release-7")],
            )
            .await;
        assert_eq!(status, 201, "{entry}");
        api.assert_schema("Entry", &entry);
        assert_eq!(entry["title"], "Faster <b>exports</b>", "text as text");
        assert!(
            entry["author"]
                .as_str()
                .is_some_and(|a| a.contains(&writer_id)),
            "{entry}"
        );
        ids.push(entry["id"].as_str().expect("id").to_owned());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let id = ids[0].clone();

    let (status, list, _) = api
        .call(M::GET, "/api/v1/changelog", &bearer(&reader))
        .await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().expect("a list").clone();
    assert_eq!(list.len(), 1, "{list:#?}");
    api.assert_schema("Entry", &list[0]);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["category"], "improvement");

    // The publisher's own list has it, and the rendered page shows it.
    let reply = api
        .rig
        .client
        .request(
            beacon_contract::api::CHANGELOG_LIST.subject(),
            json!({"page": "notes"}).to_string().into(),
        )
        .await
        .expect("the publisher answers");
    let reply: Value = serde_json::from_slice(&reply.payload).expect("JSON");
    assert!(reply.to_string().contains(&id), "{reply}");
    let page = origin.path().join("notes/current/changelog.html");
    let html = wait_until("the entry on the changelog page", DECIDE, || async {
        std::fs::read_to_string(&page)
            .ok()
            .filter(|h| h.contains("Faster &lt;b&gt;exports&lt;/b&gt;"))
    })
    .await;
    assert!(html.contains("<strong>twice</strong>"), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");

    // Another key makes another entry.
    let (status, second, _) = api
        .send(
            M::POST,
            "/api/v1/changelog",
            Some(&auth),
            Some(json!({"title": "Status API", "body": "New.", "category": "new_feature", "published_at": "2026-11-01T09:00:00Z"})),
            &[("idempotency-key", "release-8")],
        )
        .await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(second["id"], id.as_str());
    assert_eq!(second["published_at"], "2026-11-01T09:00:00.000Z");

    // Bad input names the field and stores nothing.
    for (bad, field) in [
        (
            json!({"title": "x", "body": "y", "category": "rumour"}),
            "category",
        ),
        (
            json!({"title": "x", "body": "y", "category": "fix", "colour": "red"}),
            "colour",
        ),
        (
            json!({"title": "x", "body": "y", "category": "fix", "components": ["ghost"]}),
            "components[0]",
        ),
        (
            json!({"title": " ", "body": "y", "category": "fix"}),
            "title",
        ),
        (
            json!({"title": "x", "body": "y", "category": "fix", "published_at": "yesterday"}),
            "published_at",
        ),
    ] {
        let (status, error, _) = api
            .call_json(M::POST, "/api/v1/changelog", &auth, bad.clone())
            .await;
        assert_eq!(status, 422, "{bad} → {error}");
        let named = error["error"]["field"].as_str().unwrap_or_default();
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            named == field || message.contains(field),
            "{bad} should name {field}: {error}"
        );
    }

    // Scopes.
    let (status, _, _) = api
        .call_json(M::POST, "/api/v1/changelog", &bearer(&reader), body.clone())
        .await;
    assert_eq!(status, 403, "a read key cannot publish");
    let (status, _, _) = api
        .call(M::GET, "/api/v1/changelog", &bearer(&incidents_only))
        .await;
    assert_eq!(status, 403);
    let (_, list, _) = api.call(M::GET, "/api/v1/changelog", &auth).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
}
