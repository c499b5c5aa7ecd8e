//! Logs, traces and metrics, set up once per process.
//!
//! - Logs: `tracing` to stdout, human-readable by default, one JSON object per line with
//!   `LOG_FORMAT=json` (for log shippers); filtered by `RUST_LOG` (default `info`).
//! - Traces: an OpenTelemetry tracer provider behind `tracing`, with the W3C trace-context
//!   propagator, so trace ids flow through HTTP headers and Kafka headers (see the messaging
//!   crate). With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported over OTLP/HTTP (the
//!   standard `OTEL_*` variables apply); without it they serve propagation only.
//! - Metrics: a Prometheus recorder; `GET /metrics` renders it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt as _, util::SubscriberInitExt as _};

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();
static TRACER_PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// Exports the spans still buffered. Call at the end of `main`.
pub fn shutdown_tracing() {
    if let Some(provider) = TRACER_PROVIDER.get() {
        let _ = provider.shutdown();
    }
}

/// Installs logging and tracing for `service`. Call once at the top of `main`; later calls
/// (tests starting several apps in one process) do nothing.
pub fn init_tracing(service: &'static str) {
    install(service, true);
}

/// Tracing (spans, trace context propagation) without log output: for tests, whose report
/// logs from the app's threads would drown.
pub fn init_tracing_silent(service: &'static str) {
    install(service, false);
}

fn install(service: &'static str, logs: bool) {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let mut builder = opentelemetry_sdk::trace::SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .build(),
    );
    let exporting = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.is_empty());
    if exporting {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => eprintln!("{service}: OTLP exporter disabled: {e}"),
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer(service);
    opentelemetry::global::set_tracer_provider(provider.clone());
    let _ = TRACER_PROVIDER.set(provider);

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let _ = if !logs {
        registry.try_init()
    } else if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true),
            )
            .try_init()
    } else {
        // Colours only for a person at a terminal, never into log files.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(ansi),
            )
            .try_init()
    };
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics() -> PrometheusHandle {
    METRICS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is installed; the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
