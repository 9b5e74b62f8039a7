//! What the cluster's JetStream streams share: opening one with its
//! replicas, reading one subject of it, and reading every key of a
//! bucket.

use async_nats::jetstream::{self, consumer, kv, stream};
use bytes::Bytes;
use futures::StreamExt;

use super::ClusterError;

/// How long an append or a read waits for JetStream's answer.
pub(super) const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens stream `name` over `subjects`, creating it with `replicas`
/// copies if needed, taking atomic batches if `atomic`; with a context
/// whose publishes wait [`ANSWER_WAIT`] for their answer. `what` names
/// the stream in errors.
pub(super) async fn open(
    js: &jetstream::Context,
    name: &str,
    subjects: &str,
    replicas: usize,
    atomic: bool,
    what: &'static str,
) -> Result<(jetstream::Context, stream::Stream), ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream(what, e);
    let mut stream = js
        .get_or_create_stream(stream::Config {
            name: name.to_owned(),
            subjects: vec![subjects.to_owned()],
            num_replicas: replicas,
            storage: stream::StorageType::File,
            allow_atomic_publish: atomic,
            ..Default::default()
        })
        .await
        .map_err(|e| failed(&e))?;
    // A stream just created takes appends once it has elected its
    // leader; until then the caller tries again.
    let info = stream.info().await.map_err(|e| failed(&e))?;
    if info.cluster.as_ref().is_some_and(|c| c.leader.is_none()) {
        return Err(failed(&"it has no leader yet"));
    }
    // A publish whose answer was lost with its server is sent again after
    // this long, not after the default 5 s.
    let mut js = js.clone();
    js.set_timeout(ANSWER_WAIT);
    Ok((js, stream))
}

/// Has `stream`'s reads answered by its leader only, and its cached
/// settings say so. JetStream lets a key-value bucket or object store be
/// read from any replica ("direct get"), and a replica may not have
/// stored yet a write that was acknowledged: the cluster's buckets are
/// read right after another node wrote them (an owner just claimed, a
/// component just shared), and must show that write.
pub(super) async fn read_from_leader(
    js: &jetstream::Context,
    stream: &mut stream::Stream,
    what: &'static str,
) -> Result<(), ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream(what, e);
    let config = &stream.cached_info().config;
    if !config.allow_direct {
        return Ok(());
    }
    let config = stream::Config {
        allow_direct: false,
        ..config.clone()
    };
    js.update_stream(config).await.map_err(|e| failed(&e))?;
    stream.info().await.map_err(|e| failed(&e))?;
    Ok(())
}

/// The newest entry of each key of `bucket`, deleted ones included (at
/// most `most`), read in one pass through a consumer: one round trip for
/// the whole bucket rather than one a key.
pub(super) async fn latest_entries(
    bucket: &kv::Store,
    most: usize,
    what: &'static str,
) -> Result<Vec<kv::Entry>, ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream(what, e);
    // A consumer of an empty bucket would wait for its first entry.
    let mut stream = bucket.stream.clone();
    let info = stream.info().await.map_err(|e| failed(&e))?;
    if info.state.messages == 0 {
        return Ok(Vec::new());
    }
    let mut latest = bucket
        .watch_with_history(">")
        .await
        .map_err(|e| failed(&e))?;
    let mut entries = Vec::new();
    while entries.len() < most {
        let next = tokio::time::timeout(ANSWER_WAIT, latest.next()).await;
        let Some(entry) = next.map_err(|_| failed(&"no answer in time"))? else {
            break;
        };
        let entry = entry.map_err(|e| failed(&e))?;
        // How many newer keys are still to come.
        let last = entry.delta == 0;
        entries.push(entry);
        if last {
            break;
        }
    }
    Ok(entries)
}

/// The newest message on `subject` and its sequence; `None` if it has none.
pub(super) async fn last(
    stream: &stream::Stream,
    subject: &str,
) -> Result<Option<(Bytes, u64)>, ClusterError> {
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(last) => Ok(Some((last.payload, last.sequence))),
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(ClusterError::jetstream(
            "reading a subject's newest message",
            e,
        )),
    }
}

/// Every message on `subject`, oldest first, with its sequence.
pub(super) async fn read(
    stream: &stream::Stream,
    subject: &str,
) -> Result<Vec<(u64, Bytes)>, ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream("reading a subject", e);
    let Some((_, last)) = self::last(stream, subject).await? else {
        return Ok(Vec::new());
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject.to_owned(),
            ..Default::default()
        })
        .await
        .map_err(|e| failed(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| failed(&e))?;
    let mut read = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| failed(&e))?;
        let sequence = message.info().map_err(|e| failed(&e))?.stream_sequence;
        read.push((sequence, message.payload.clone()));
        if sequence >= last {
            break;
        }
    }
    Ok(read)
}
