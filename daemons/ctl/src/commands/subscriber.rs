//! `beaconctl subscriber add|list|show|remove|import|export|erase`, over
//! the notifier's `beacon.api.subscriber.…` endpoints.
//!
//! CSV has one subscriber a row; the header names the columns, any subset
//! of `email,sms,webhook,slack,teams,components,instant,dedup,digest`
//! (export adds `id` and `state`; import ignores them). Endpoints are in
//! that column order, which is the order of preference; lists are
//! separated by `|`. An import goes in requests of 1,000 rows, a few at
//! once, with a progress bar on stderr; rows the notifier refuses are
//! listed by line, the others are stored.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Duration;

use beacon_contract::api;
use beacon_contract::api::{
    AddSubscriberRequest, EraseRequest, Erased, ImportResult, ImportSubscribersRequest,
    ListSubscribersRequest, NewSubscriber, RemovedSubscriber, SubscriberList, SubscriberRequest,
    SubscriberView, SUBSCRIBER_IMPORT_MAX_ROWS,
};
use beacon_contract::messages::{ChannelKind, DedupMode, Subscriber, SubscriberChannel};
use beacon_page::config::ConfigError;
use beacon_runtime::connect::NatsArgs;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{EndpointArgs, OutputFormat, SubscriberCommand};
use crate::commands::{check_id, connect};
use crate::exit::CtlError;
use crate::output::{self, table, utc_timestamp};
use crate::request;

/// Import requests in flight at once.
const IMPORT_IN_FLIGHT: usize = 4;

/// Columns of the CSV format, in the order endpoints are preferred.
pub const ENDPOINT_COLUMNS: [(&str, ChannelKind); 5] = [
    ("email", ChannelKind::Email),
    ("sms", ChannelKind::Sms),
    ("webhook", ChannelKind::Webhook),
    ("slack", ChannelKind::Slack),
    ("teams", ChannelKind::Teams),
];

fn dedup(text: &str) -> Result<DedupMode, String> {
    match text.trim() {
        "" | "every" => Ok(DedupMode::Every),
        "first" => Ok(DedupMode::First),
        other => Err(format!("{other:?} is not every or first")),
    }
}

fn list_of(text: &str) -> Vec<String> {
    text.split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn endpoints_of(args: &EndpointArgs) -> Vec<SubscriberChannel> {
    [
        (&args.email, ChannelKind::Email),
        (&args.sms, ChannelKind::Sms),
        (&args.webhook, ChannelKind::Webhook),
        (&args.slack, ChannelKind::Slack),
        (&args.teams, ChannelKind::Teams),
    ]
    .into_iter()
    .filter_map(|(value, kind)| {
        value
            .as_ref()
            .map(|v| SubscriberChannel::new(kind, v.clone()))
    })
    .collect()
}

/// Parses a CSV of subscribers; every bad row is an error `line N: …`.
pub fn parse_csv(text: &[u8]) -> Result<Vec<NewSubscriber>, Vec<ConfigError>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text);
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(e) => {
            return Err(vec![ConfigError {
                location: "line 1".into(),
                message: format!("not a CSV header: {e}"),
            }])
        }
    };
    let known = [
        "email",
        "sms",
        "webhook",
        "slack",
        "teams",
        "components",
        "instant",
        "dedup",
        "digest",
        "id",
        "state",
        "created",
    ];
    let mut errors = Vec::new();
    for name in headers.iter() {
        if !known.contains(&name) {
            errors.push(ConfigError {
                location: "line 1".into(),
                message: format!(
                    "unknown column {name:?}; columns are {}",
                    known[..9].join(", ")
                ),
            });
        }
    }
    if !ENDPOINT_COLUMNS
        .iter()
        .any(|(c, _)| headers.iter().any(|h| h == *c))
    {
        errors.push(ConfigError {
            location: "line 1".into(),
            message: "no endpoint column (email, sms, webhook, slack or teams)".into(),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let column = |name: &str| headers.iter().position(|h| h == name);
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                errors.push(ConfigError {
                    location: format!("line {line}"),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let field = |name: &str| column(name).and_then(|i| record.get(i)).unwrap_or("");
        let endpoints: Vec<SubscriberChannel> = ENDPOINT_COLUMNS
            .iter()
            .filter(|(name, _)| !field(name).is_empty())
            .map(|(name, kind)| SubscriberChannel::new(*kind, field(name)))
            .collect();
        let digest = match field("digest").to_ascii_lowercase().as_str() {
            "" | "false" | "no" | "0" => false,
            "true" | "yes" | "1" => true,
            other => {
                errors.push(ConfigError {
                    location: format!("line {line}"),
                    message: format!("digest {other:?} is not true or false"),
                });
                continue;
            }
        };
        let dedup = match dedup(field("dedup")) {
            Ok(d) => d,
            Err(e) => {
                errors.push(ConfigError {
                    location: format!("line {line}"),
                    message: format!("dedup {e}"),
                });
                continue;
            }
        };
        rows.push(NewSubscriber {
            endpoints,
            components: list_of(field("components")),
            instant: list_of(field("instant")),
            dedup,
            digest,
        });
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// The CSV header of an export.
pub const EXPORT_HEADER: [&str; 11] = [
    "id",
    "email",
    "sms",
    "webhook",
    "slack",
    "teams",
    "components",
    "instant",
    "dedup",
    "digest",
    "state",
];

/// One subscriber as an export row.
pub fn export_row(subscriber: &Subscriber) -> Vec<String> {
    let mut row = vec![subscriber.subscriber.clone()];
    for (_, kind) in ENDPOINT_COLUMNS {
        row.push(
            subscriber
                .endpoint(kind)
                .map(|e| e.channel.address().to_owned())
                .unwrap_or_default(),
        );
    }
    row.push(subscriber.components.join("|"));
    row.push(subscriber.instant.join("|"));
    row.push(subscriber.dedup.as_str().to_owned());
    row.push(subscriber.digest.to_string());
    row.push(
        subscriber
            .endpoints
            .iter()
            .map(|e| format!("{}:{}", e.channel.kind().as_str(), e.state.as_str()))
            .collect::<Vec<_>>()
            .join("|"),
    );
    row
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            // Logs and CI get a line every few seconds instead of a bar.
            ProgressDrawTarget::stderr_with_hz(1)
        },
    );
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{what} {{bar:40}} {{pos}}/{{len}} rows, {{per_sec}}, {{eta}} left"
    )) {
        bar.set_style(style);
    }
    bar
}

fn read_input(path: &Path) -> Result<Vec<u8>, CtlError> {
    let read = |source| CtlError::ReadFile {
        path: path.to_owned(),
        source,
    };
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map_err(read)?;
        Ok(bytes)
    } else {
        std::fs::read(path).map_err(read)
    }
}

/// Runs `subscriber …`.
pub async fn run(
    nats: &NatsArgs,
    command: SubscriberCommand,
    format: OutputFormat,
    timeout: Duration,
) -> Result<(), CtlError> {
    match command {
        SubscriberCommand::Add {
            page,
            endpoints,
            components,
            instant,
            dedup: dedup_text,
            digest,
            double_opt_in,
            actor,
        } => {
            check_id("PAGE", &page)?;
            let dedup = dedup(&dedup_text).map_err(|reason| CtlError::BadArgument {
                flag: "--dedup",
                reason,
            })?;
            let endpoints = endpoints_of(&endpoints);
            if endpoints.is_empty() {
                return Err(CtlError::BadArgument {
                    flag: "--email",
                    reason: "give at least one of --email, --sms, --webhook, --slack, --teams"
                        .into(),
                });
            }
            let client = connect(nats).await?;
            let view: SubscriberView = request::call(
                &client,
                api::SUBSCRIBER_ADD,
                &AddSubscriberRequest {
                    page,
                    subscriber: NewSubscriber {
                        endpoints,
                        components,
                        instant,
                        dedup,
                        digest,
                    },
                    confirmed: !double_opt_in,
                    actor: actor.name(),
                },
                timeout,
            )
            .await?;
            print_view(format, &view, "added")
        }
        SubscriberCommand::Show { page, subscriber } => {
            check_id("PAGE", &page)?;
            let client = connect(nats).await?;
            let view: SubscriberView = request::call(
                &client,
                api::SUBSCRIBER_SHOW,
                &SubscriberRequest {
                    page,
                    subscriber,
                    actor: String::new(),
                },
                timeout,
            )
            .await?;
            print_view(format, &view, "subscriber")
        }
        SubscriberCommand::Remove {
            page,
            subscriber,
            actor,
        } => {
            check_id("PAGE", &page)?;
            let client = connect(nats).await?;
            let removed: RemovedSubscriber = request::call(
                &client,
                api::SUBSCRIBER_REMOVE,
                &SubscriberRequest {
                    page,
                    subscriber,
                    actor: actor.name(),
                },
                timeout,
            )
            .await?;
            match format {
                OutputFormat::Json => output::print(&output::json(&removed)?),
                _ => output::print(&format!(
                    "removed subscriber {} of {}\n",
                    removed.subscriber, removed.page
                )),
            }
        }
        SubscriberCommand::Erase {
            page,
            address,
            subscriber,
            actor,
        } => {
            check_id("PAGE", &page)?;
            let client = connect(nats).await?;
            let erased: Erased = request::call(
                &client,
                api::SUBSCRIBER_ERASE,
                &EraseRequest {
                    page,
                    address,
                    subscriber,
                    actor: actor.name(),
                },
                timeout,
            )
            .await?;
            match format {
                OutputFormat::Json => output::print(&output::json(&erased)?),
                _ => output::print(&format!(
                    "erased {} subscriber(s); {} address(es) suppressed\n",
                    erased.subscribers.len(),
                    erased.suppressed
                )),
            }
        }
        SubscriberCommand::List { page } => {
            check_id("PAGE", &page)?;
            let client = connect(nats).await?;
            let subscribers = fetch_all(&client, &page, timeout, None).await?;
            match format {
                OutputFormat::Json => output::print(&output::json(&subscribers)?),
                _ => output::print(&list(&subscribers)),
            }
        }
        SubscriberCommand::Export { page, file } => {
            check_id("PAGE", &page)?;
            let client = connect(nats).await?;
            let out: Box<dyn Write> =
                match &file {
                    Some(path) => Box::new(std::fs::File::create(path).map_err(|source| {
                        CtlError::ReadFile {
                            path: path.clone(),
                            source,
                        }
                    })?),
                    None => Box::new(std::io::stdout().lock()),
                };
            let mut writer = csv::Writer::from_writer(out);
            writer
                .write_record(EXPORT_HEADER)
                .map_err(|e| CtlError::Output(std::io::Error::other(e)))?;
            let written = std::cell::Cell::new(0u64);
            let mut write = |subscriber: &Subscriber| -> Result<(), CtlError> {
                writer
                    .write_record(export_row(subscriber))
                    .map_err(|e| CtlError::Output(std::io::Error::other(e)))?;
                written.set(written.get() + 1);
                Ok(())
            };
            fetch_all(&client, &page, timeout, Some(&mut write)).await?;
            writer.flush().map_err(CtlError::Output)?;
            if file.is_some() {
                output::warn(&format!("exported {} subscribers", written.get()));
            }
            Ok(())
        }
        SubscriberCommand::Import {
            page,
            file,
            double_opt_in,
            actor,
        } => {
            check_id("PAGE", &page)?;
            let bytes = read_input(&file)?;
            let rows = parse_csv(&bytes).map_err(|errors| CtlError::InvalidConfig {
                path: file.clone(),
                errors,
            })?;
            let client = connect(nats).await?;
            let bar = progress(rows.len() as u64, "importing");
            let actor = actor.name();
            let requests = rows
                .chunks(SUBSCRIBER_IMPORT_MAX_ROWS)
                .enumerate()
                .map(|(n, chunk)| {
                    let request = ImportSubscribersRequest {
                        page: page.clone(),
                        rows: chunk.to_vec(),
                        confirmed: !double_opt_in,
                        actor: actor.clone(),
                    };
                    let client = client.clone();
                    async move {
                        let result: Result<ImportResult, CtlError> = request::call(
                            &client,
                            api::SUBSCRIBER_IMPORT,
                            &request,
                            timeout.max(Duration::from_secs(60)),
                        )
                        .await;
                        (n, chunk.len(), result)
                    }
                });
            let mut results = futures::stream::iter(requests).buffered(IMPORT_IN_FLIGHT);
            let (mut created, mut existing) = (0u64, 0u64);
            let mut refused = Vec::new();
            while let Some((n, len, result)) = results.next().await {
                let result = match result {
                    Ok(result) => result,
                    Err(e) => {
                        bar.abandon();
                        output::warn(&format!(
                            "stopped at row {}: {created} created and {existing} existing before it",
                            n * SUBSCRIBER_IMPORT_MAX_ROWS + 1
                        ));
                        return Err(e);
                    }
                };
                created += u64::from(result.created);
                existing += u64::from(result.existing);
                for mut error in result.refused {
                    // rows[i]… of request n is CSV line n × 1000 + i + 2.
                    if let Some(rest) = error.location.strip_prefix("rows[") {
                        if let Some((index, tail)) = rest.split_once(']') {
                            if let Ok(index) = index.parse::<usize>() {
                                error.location = format!(
                                    "line {}{tail}",
                                    n * SUBSCRIBER_IMPORT_MAX_ROWS + index + 2
                                );
                            }
                        }
                    }
                    refused.push(error);
                }
                bar.inc(len as u64);
            }
            bar.finish_and_clear();
            let summary = ImportResult {
                created: created as u32,
                existing: existing as u32,
                refused: refused.clone(),
            };
            match format {
                OutputFormat::Json => output::print(&output::json(&summary)?)?,
                _ => output::print(&format!(
                    "imported {created} new subscribers; {existing} already there; {} rows refused\n",
                    refused.len()
                ))?,
            }
            if refused.is_empty() {
                Ok(())
            } else {
                Err(CtlError::InvalidConfig {
                    path: file,
                    errors: refused,
                })
            }
        }
    }
}

/// What `fetch_all` hands each subscriber to, instead of collecting it.
type EachSubscriber<'a> = dyn FnMut(&Subscriber) -> Result<(), CtlError> + 'a;

/// Every subscriber of a page, slice by slice; with `each`, handed over as
/// they come instead of collected.
async fn fetch_all(
    client: &async_nats::Client,
    page: &str,
    timeout: Duration,
    mut each: Option<&mut EachSubscriber<'_>>,
) -> Result<Vec<Subscriber>, CtlError> {
    let mut all = Vec::new();
    let mut after = None;
    let mut bar: Option<ProgressBar> = None;
    loop {
        let slice: SubscriberList = request::call(
            client,
            api::SUBSCRIBER_LIST,
            &ListSubscribersRequest {
                page: page.to_owned(),
                after: after.clone(),
                limit: None,
            },
            timeout,
        )
        .await?;
        if each.is_some() && bar.is_none() && slice.total > 10_000 {
            bar = Some(progress(slice.total, "exporting"));
        }
        if let Some(bar) = &bar {
            bar.inc(slice.subscribers.len() as u64);
        }
        match each.as_mut() {
            Some(each) => {
                for subscriber in &slice.subscribers {
                    each(subscriber)?;
                }
            }
            None => all.extend(slice.subscribers),
        }
        match slice.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(all)
}

fn print_view(format: OutputFormat, view: &SubscriberView, verb: &str) -> Result<(), CtlError> {
    let text = match format {
        OutputFormat::Json => output::json(view)?,
        _ => {
            let s = &view.subscriber;
            let mut text = format!("{verb} {} on page {}\n", s.subscriber, s.page);
            for e in &s.endpoints {
                text.push_str(&format!(
                    "  {} {} ({})\n",
                    e.channel.kind().as_str(),
                    e.channel.address(),
                    e.state.as_str()
                ));
            }
            if let Some(secret) = &view.webhook_secret {
                text.push_str(&format!("  webhook secret: {secret}\n"));
            }
            text
        }
    };
    output::print(&text)
}

/// The `subscriber list` table.
pub fn list(subscribers: &[Subscriber]) -> String {
    if subscribers.is_empty() {
        return "no subscribers\n".to_owned();
    }
    let rows: Vec<Vec<String>> = subscribers
        .iter()
        .map(|s| {
            vec![
                s.subscriber.clone(),
                s.endpoints
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {} ({})",
                            e.channel.kind().as_str(),
                            e.channel.address(),
                            e.state.as_str()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                if s.components.is_empty() {
                    "all".to_owned()
                } else {
                    s.components.join(",")
                },
                s.dedup.as_str().to_owned(),
                utc_timestamp(s.created_at_ms),
            ]
        })
        .collect();
    table(
        &["ID", "ENDPOINTS", "COMPONENTS", "DEDUP", "CREATED"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_subscribers_and_bad_rows_are_named_by_line() {
        let text = b"email,sms,components,dedup,digest\nada@example.com,+15551234567,api|db,first,true\nbob@example.com,,,,\n";
        let rows = parse_csv(text).expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].endpoints.len(), 2);
        assert_eq!(rows[0].endpoints[0].kind(), ChannelKind::Email);
        assert_eq!(rows[0].components, ["api", "db"]);
        assert_eq!(rows[0].dedup, DedupMode::First);
        assert!(rows[0].digest);
        assert_eq!(rows[1].endpoints.len(), 1);

        let errors = parse_csv(b"email,colour\nx@example.com,red\n").expect_err("unknown column");
        assert!(errors[0].message.contains("colour"));
        let errors = parse_csv(b"email,dedup\na@example.com,sometimes\nb@example.com,every\n")
            .expect_err("bad dedup");
        assert_eq!(errors[0].location, "line 2");
        assert!(
            parse_csv(b"components\napi\n").is_err(),
            "no endpoint column"
        );
    }

    #[test]
    fn exports_read_back_as_imports() {
        let subscriber = Subscriber {
            page: "p".into(),
            subscriber: "01jd5k2s9x8y7z6w5v4t3r2q1p".into(),
            endpoints: vec![beacon_contract::messages::SubscriberEndpoint {
                channel: SubscriberChannel::Email {
                    address: "ada@example.com".into(),
                },
                state: beacon_contract::messages::EndpointState::Active,
                since_ms: 0,
                confirmation: None,
            }],
            components: vec!["api".into()],
            instant: vec![],
            dedup: DedupMode::Every,
            digest: true,
            created_at_ms: 0,
        };
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(EXPORT_HEADER).expect("header");
        writer.write_record(export_row(&subscriber)).expect("row");
        let bytes = writer.into_inner().expect("bytes");
        let rows = parse_csv(&bytes).expect("an export imports");
        assert_eq!(
            rows[0].endpoints,
            subscriber
                .endpoints
                .iter()
                .map(|e| e.channel.clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(rows[0].components, ["api"]);
        assert!(rows[0].digest);
    }
}
