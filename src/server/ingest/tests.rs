//! The ingest session driven through channels, and the POST path's answers.

use super::*;
use crate::server::aggregator::{Aggregator, Query};
use crate::server::config::AggConfig;
use futures_channel::mpsc as fmpsc;

/// The session driven through channels instead of a socket.
#[tokio::test]
async fn session_replies_to_bad_frames_and_applies_good_ones() {
    let agg = Aggregator::spawn(AggConfig::default());
    let (out_tx, mut out_rx) = fmpsc::unbounded::<Message>();
    let (in_tx, in_rx) = fmpsc::unbounded::<Result<Message, String>>();
    let setup = super::SessionSetup {
        agg: agg.clone(),
        limits: Limits::default(),
        max_frame: 1024,
        rate: (None, 0),
        credential: None,
        recorder: crate::server::record::Recorder::default(),
    };
    let session = tokio::spawn(ingest_session(out_tx, in_rx, setup));
    in_tx
        .unbounded_send(Ok(Message::Text(
            "{\"v\":1,\"events\":[{\"type\":\"oops\"}]}".into(),
        )))
        .unwrap();
    let reply = out_rx.next().await.unwrap();
    let Message::Text(t) = reply else {
        panic!("text reply expected")
    };
    assert!(
        t.as_str().contains("unknown variant `oops`"),
        "{}",
        t.as_str()
    );
    let good = r#"{"v":1,"events":[{"type":"hello","source":"chan","kind":"app"},{"type":"conn_open","conn":1,"ip":"::1","path":"/"}]}"#;
    in_tx
        .unbounded_send(Ok(Message::Text(good.into())))
        .unwrap();
    drop(in_tx);
    session.await.unwrap();
    let sources = agg.ask(Query::Sources).await.unwrap();
    assert_eq!(
        (sources[0].id.as_str(), sources[0].open, sources[0].online),
        ("chan", 1, false)
    );
}
