//! Background tasks that live exactly as long as what owns them.

/// Ends its task when dropped: a loop serving a runtime or a server stops
/// with it, on every exit path.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
