//! Reading a stream's history against a real `nats-server`: every message
//! in order, and no consumer left behind, however many reads there are.

use async_nats::jetstream::{self, stream};
use beacon_runtime::history;
use beacon_testkit::nats::NatsServer;

#[tokio::test]
async fn reads_return_every_message_in_order_and_leave_no_consumer_behind() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "EVENTS".into(),
        subjects: vec!["events.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    for n in 0..5 {
        let subject = if n % 2 == 0 { "events.a" } else { "events.b" };
        js.publish(subject, format!("{n}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    // Hundreds of reads, as an API answering writes from the stream makes.
    for _ in 0..300 {
        let stored = history::read(&js, "EVENTS", "events.a")
            .await
            .expect("read");
        let payloads: Vec<&[u8]> = stored.iter().map(|s| s.payload.as_ref()).collect();
        assert_eq!(payloads, [b"0".as_ref(), b"2", b"4"]);
        assert!(stored.windows(2).all(|w| w[0].sequence < w[1].sequence));
    }
    let empty = history::read(&js, "EVENTS", "events.none")
        .await
        .expect("read nothing");
    assert!(empty.is_empty());

    let mut handle = js.get_stream("EVENTS").await.expect("stream");
    let consumers = handle.info().await.expect("info").state.consumer_count;
    assert_eq!(consumers, 0, "every read deletes its consumer");
}
