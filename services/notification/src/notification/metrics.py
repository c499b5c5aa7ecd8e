"""Prometheus metrics, served at `/metrics` (prometheus_client's default registry)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "consumer_events_total",
    "Events consumed by outcome (applied, duplicate, skipped, dead_lettered), as the Rust consumers count them",
    ["outcome"],
)
NOTIFICATIONS = Counter(
    "notifications_created_total", "Notifications stored, by kind", ["kind"]
)
STREAMS = Gauge("notification_streams", "Open live notification streams (SSE)")
REQUESTS = Histogram(
    "http_request_duration_seconds",
    "HTTP requests by route and status",
    ["method", "route", "status"],
)
