//! The inbox: messages accepted for an actor and not yet run, kept until
//! the event of their call is appended (which removes them in the same
//! transaction), so a message accepted before a crash runs after it, once.

use std::path::Path;
use std::sync::atomic::Ordering;

use redb::{ReadableTable, WriteTransaction};

use super::RedbEventLog;
use super::error::{StorageError, failed};
use super::layout::{INBOX, key_of, range_of};
use super::writer::{Answer, Request};
use crate::id::ActorId;
use crate::storage::Accepted;

impl RedbEventLog {
    /// The messages in `actor`'s inbox, oldest first, with their numbers.
    pub fn stored_inbox(&self, actor: &ActorId) -> Result<Vec<(u64, Accepted)>, StorageError> {
        let path = &self.shared.path;
        let tx = self.begin_read()?;
        let inbox = tx.open_table(INBOX).map_err(failed(path))?;
        let mut messages = Vec::new();
        for row in inbox.range(range_of(actor)).map_err(failed(path))? {
            let (key, value) = row.map_err(failed(path))?;
            let number = key.value().1;
            let message = serde_json::from_slice(value.value()).map_err(|e| {
                self.unreadable(format!(
                    "message {number} in the inbox of actor {actor} cannot be read: {e}"
                ))
            })?;
            messages.push((number, message));
        }
        Ok(messages)
    }

    /// Keeps `message` in `actor`'s inbox under the next number, which it
    /// returns with the writer's answer.
    pub(super) fn accept_message(&self, actor: &ActorId, message: &Accepted) -> (u64, Answer) {
        let number = self.shared.next_accepted.fetch_add(1, Ordering::Relaxed);
        let message = serde_json::to_vec(message).expect("accepted messages serialize");
        let answer = self.submit(|reply| Request::Accept {
            actor: key_of(actor),
            number,
            message,
            reply,
        });
        (number, answer)
    }
}

/// The highest number in any inbox, `None` if every inbox is empty.
pub(super) fn last_accepted(
    tx: &WriteTransaction,
    path: &Path,
) -> Result<Option<u64>, StorageError> {
    let inbox = tx.open_table(INBOX).map_err(failed(path))?;
    let mut last = None;
    for row in inbox.iter().map_err(failed(path))? {
        let number = row.map_err(failed(path))?.0.value().1;
        last = last.max(Some(number));
    }
    Ok(last)
}
