//! The data of an actor's wasmtime `Store`: what its host functions reach,
//! through the [`HostView`] it implements.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::extensions::Extensions;
use super::recorder::ChainRecorder;
use super::services::{RuntimeServices, WeakRuntime};
use super::view::HostView;
use super::{MemoryLimitExceeded, TimeLimitExceeded};
use crate::id::ActorId;

/// Per-actor host state.
pub struct ActorStore {
    pub id: ActorId,
    /// Appends this actor's chain events.
    pub recorder: ChainRecorder,
    /// Per-actor state of the granted handlers.
    pub extensions: Extensions,
    runtime: WeakRuntime,
    pub(crate) limiter: MemoryLimiter,
    /// When the running call must end.
    pub(crate) deadline: Instant,
    table: ResourceTable,
    /// Created on first use: components without WASI imports never pay for it.
    wasi: Option<WasiCtx>,
}

impl ActorStore {
    pub(crate) fn new(
        recorder: ChainRecorder,
        extensions: Extensions,
        runtime: WeakRuntime,
        memory_mb: u64,
    ) -> Self {
        Self {
            id: recorder.actor(),
            recorder,
            extensions,
            runtime,
            limiter: MemoryLimiter {
                limit_mb: memory_mb,
            },
            deadline: Instant::now(),
            table: ResourceTable::new(),
            wasi: None,
        }
    }

    /// The runtime this actor runs in, unless it is shutting down.
    pub fn runtime(&self) -> Option<Arc<dyn RuntimeServices>> {
        self.runtime.upgrade()
    }

    /// Pushes the running call's deadline back by `waited`: time an actor
    /// spends waiting on the host (a reply, a timer) is not its own.
    pub fn extend_deadline(&mut self, waited: Duration) {
        self.deadline += waited;
    }

    /// What is left of the running call's time limit.
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub fn weak_runtime(&self) -> WeakRuntime {
        self.runtime.clone()
    }

    /// Checked by the epoch callback on every tick of a running call.
    pub(crate) fn check_deadline(&self, limit_ms: u64) -> Result<(), TimeLimitExceeded> {
        if Instant::now() >= self.deadline {
            Err(TimeLimitExceeded { limit_ms })
        } else {
            Ok(())
        }
    }
}

impl HostView for ActorStore {
    fn id(&self) -> ActorId {
        self.id
    }

    fn recorder(&mut self) -> &mut ChainRecorder {
        &mut self.recorder
    }

    fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    fn time_left(&self) -> Duration {
        ActorStore::time_left(self)
    }

    fn extend_deadline(&mut self, waited: Duration) {
        ActorStore::extend_deadline(self, waited);
    }

    fn runtime(&self) -> Option<Arc<dyn RuntimeServices>> {
        ActorStore::runtime(self)
    }
}

impl WasiView for ActorStore {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let id = self.id;
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| sandboxed_wasi(id)),
            table: &mut self.table,
        }
    }
}

/// WASI with nothing of the host: no environment, arguments, preopened
/// directories or network; stdout and stderr go to the actor's log.
fn sandboxed_wasi(id: ActorId) -> WasiCtx {
    WasiCtx::builder()
        .stdout(ActorOutput {
            id,
            stream: "stdout",
        })
        .stderr(ActorOutput {
            id,
            stream: "stderr",
        })
        .build()
}

/// Caps linear memory; the error it raises names the limit.
pub(crate) struct MemoryLimiter {
    limit_mb: u64,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit_mb * 1024 * 1024 {
            return Err(MemoryLimitExceeded {
                limit_mb: self.limit_mb,
                desired,
            }
            .into());
        }
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

/// An actor's stdout or stderr: complete lines go to the log.
#[derive(Clone, Copy)]
struct ActorOutput {
    id: ActorId,
    stream: &'static str,
}

impl IsTerminal for ActorOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ActorOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            output: *self,
            pending: Vec::new(),
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASI preview 3 uses this, and Theater does not link it.
        Box::new(tokio::io::sink())
    }
}

/// Longest partial line kept before it is logged anyway.
const MAX_PENDING_LINE: usize = 4096;

struct LineWriter {
    output: ActorOutput,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        tracing::info!(target: "actor", actor = %self.output.id, stream = self.output.stream, "{}", line.trim_end());
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.pending.extend_from_slice(&bytes);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line);
        }
        if self.pending.len() > MAX_PENDING_LINE {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(MAX_PENDING_LINE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}
