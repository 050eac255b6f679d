//! Prometheus metrics at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of an attestation outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `granted` or `denied`.
    pub result: String,
    /// The denial reason code, or `ok`.
    pub reason: String,
}

/// The CAS's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Attestations by outcome.
    pub attestations: Family<Outcome, Counter>,
    /// Attestation latency, seconds.
    pub attestation_seconds: Histogram,
    /// Sessions stored.
    pub sessions: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("veil_cas");
        let attestations = Family::<Outcome, Counter>::default();
        registry.register(
            "attestations",
            "Attestations by result and reason",
            attestations.clone(),
        );
        let attestation_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "attestation_seconds",
            "Time to answer an attestation",
            attestation_seconds.clone(),
        );
        let sessions = Gauge::default();
        registry.register("sessions", "Sessions stored", sessions.clone());
        Metrics {
            registry,
            attestations,
            attestation_seconds,
            sessions,
        }
    }
}

impl Metrics {
    /// Counts one attestation outcome.
    pub fn attestation(&self, granted: bool, reason: &str, seconds: f64) {
        self.attestations
            .get_or_create(&Outcome {
                result: if granted { "granted" } else { "denied" }.into(),
                reason: reason.into(),
            })
            .inc();
        self.attestation_seconds.observe(seconds);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
