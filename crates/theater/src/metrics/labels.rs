//! The label sets of the metric families. Written out rather than derived
//! so that the optional `actor` label is left out, not sent empty.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

/// One label whose value is one of a fixed set.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Label(pub &'static str, pub &'static str);

impl EncodeLabelSet for Label {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        (self.0, self.1).encode(encoder.encode_label())
    }
}

/// An HTTP status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct StatusLabel(pub u16);

impl EncodeLabelSet for StatusLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        ("status", self.0 as u64).encode(encoder.encode_label())
    }
}

/// An actor's id, in per-actor mode.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ActorLabel(pub Arc<str>);

impl EncodeLabelSet for ActorLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        ("actor", &*self.0).encode(encoder.encode_label())
    }
}

/// A call's export and outcome, and its actor in per-actor mode.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct CallLabels {
    pub export: Arc<str>,
    pub outcome: &'static str,
    pub actor: Option<Arc<str>>,
}

impl EncodeLabelSet for CallLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        ("export", &*self.export).encode(encoder.encode_label())?;
        ("outcome", self.outcome).encode(encoder.encode_label())?;
        match &self.actor {
            Some(actor) => ("actor", &**actor).encode(encoder.encode_label()),
            None => Ok(()),
        }
    }
}

/// A call's export, and its actor in per-actor mode.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ExportLabels {
    pub export: Arc<str>,
    pub actor: Option<Arc<str>>,
}

impl EncodeLabelSet for ExportLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        ("export", &*self.export).encode(encoder.encode_label())?;
        match &self.actor {
            Some(actor) => ("actor", &**actor).encode(encoder.encode_label()),
            None => Ok(()),
        }
    }
}
