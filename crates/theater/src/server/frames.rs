//! Reading frames from a client within a size limit, a time limit and the
//! server's byte budget.
//!
//! The length prefix is checked before anything is held for the frame, and
//! the frame's bytes are charged to the budget before they are read, so a
//! client that announces a large frame and sends it slowly holds no more
//! than the budget lends it, and only for the frame timeout.
//!
//! The reader takes any byte stream, so the same code that serves sockets
//! can be driven from memory (the `frames` fuzz target does).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::tcp::OwnedReadHalf;

use super::budget::{Charge, ConnectionBudget};

/// A frame read whole, with the bytes it holds of the budget.
pub struct Frame {
    pub bytes: Vec<u8>,
    _charge: Charge,
}

/// Why no frame came.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the connection between frames.
    Closed,
    /// The length prefix announced more than the limit allows.
    TooLarge { announced: usize, limit: usize },
    /// The client started a frame and did not finish it in time.
    Stalled,
    /// The connection broke, or closed mid-frame.
    Io(std::io::Error),
}

/// Reads length-prefixed frames from a client's stream (a socket's read
/// half unless told otherwise).
pub struct FrameReader<R = OwnedReadHalf> {
    read: R,
    budget: ConnectionBudget,
    /// How long a frame may take once its first byte has come.
    timeout: Duration,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads from `read`, charging each frame to `budget`; a frame begun
    /// must be whole within `timeout`.
    pub fn new(read: R, budget: ConnectionBudget, timeout: Duration) -> Self {
        Self {
            read,
            budget,
            timeout,
        }
    }

    /// The next frame of at most `limit` bytes. Waits as long as it takes
    /// for a frame to begin; not cancel-safe (a cancelled read loses its
    /// place in the stream, so the connection must close).
    pub async fn next(&mut self, limit: usize) -> Result<Frame, ReadError> {
        let mut prefix = [0u8; 4];
        if self
            .read
            .read(&mut prefix[..1])
            .await
            .map_err(ReadError::Io)?
            == 0
        {
            return Err(ReadError::Closed);
        }
        timed(self.timeout, self.read.read_exact(&mut prefix[1..])).await?;
        let announced = u32::from_be_bytes(prefix) as usize;
        if announced > limit {
            return Err(ReadError::TooLarge { announced, limit });
        }
        // Waiting for the budget is not the client's doing: not timed.
        let charge = self.budget.charge(announced).await;
        let mut bytes = Vec::with_capacity(announced);
        let mut body = (&mut self.read).take(announced as u64);
        if timed(self.timeout, body.read_to_end(&mut bytes)).await? < announced {
            return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(Frame {
            bytes,
            _charge: charge,
        })
    }

    /// The stream, for a clean close.
    pub fn into_inner(self) -> R {
        self.read
    }
}

async fn timed<T>(
    limit: Duration,
    read: impl Future<Output = std::io::Result<T>>,
) -> Result<T, ReadError> {
    match tokio::time::timeout(limit, read).await {
        Ok(result) => result.map_err(ReadError::Io),
        Err(_) => Err(ReadError::Stalled),
    }
}
