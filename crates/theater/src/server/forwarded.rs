//! Management operations other nodes of the cluster hand this node: a
//! start placed here, an operation on an actor that runs here, and their
//! `list`s. Each runs as a client's would, and is never handed on again.
//!
//! Nodes trust each other as they trust the NATS servers they share:
//! whoever can publish there can already write the cluster's records.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::Shared;
use super::connection::Connection;
use super::protocol::{ErrorBody, ErrorKind, Op};
use crate::cluster::{Answer, Cluster};

/// Operations from other nodes run at once; beyond, they are refused.
const AT_ONCE: usize = 64;

/// Answers the operations other nodes forward, for as long as it runs.
pub(super) async fn run(cluster: Cluster, shared: Arc<Shared>) {
    let mut operations = match cluster.operations().await {
        Ok(operations) => operations,
        Err(e) => {
            tracing::error!("other nodes cannot manage this node's actors: {e}");
            return;
        }
    };
    let at_once = Arc::new(Semaphore::new(AT_ONCE));
    while let Some((bytes, reply)) = operations.next().await {
        let Ok(permit) = at_once.clone().try_acquire_owned() else {
            let busy = Err(ErrorBody::new(
                ErrorKind::Internal,
                format!(
                    "node `{}` is busy with {AT_ONCE} operations from other nodes; retry later",
                    cluster.node()
                ),
            ));
            reply.answer(Answer::Done(encode(&busy))).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let answer = run_one(shared, &bytes).await;
            reply.answer(Answer::Done(encode(&answer))).await;
            drop(permit);
        });
    }
}

async fn run_one(shared: Arc<Shared>, bytes: &[u8]) -> Result<serde_json::Value, ErrorBody> {
    let op: Op = serde_json::from_slice(bytes)
        .map_err(|e| ErrorBody::new(ErrorKind::BadRequest, format!("unreadable operation: {e}")))?;
    let handed_on = matches!(
        op,
        Op::Place { .. }
            | Op::Stop { .. }
            | Op::Restart { .. }
            | Op::List { .. }
            | Op::State { .. }
            | Op::Events { .. }
            | Op::Verify { .. }
            | Op::Inspect { .. }
            | Op::Migrate { .. }
            | Op::Adopt { .. }
    );
    if !handed_on {
        return Err(ErrorBody::new(
            ErrorKind::BadRequest,
            format!("`{}` is not handed from node to node", op.name()),
        ));
    }
    Connection::forwarded(shared).handle(op).await
}

fn encode(answer: &Result<serde_json::Value, ErrorBody>) -> bytes::Bytes {
    serde_json::to_vec(answer)
        .expect("answers serialize")
        .into()
}
