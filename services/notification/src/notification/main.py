"""`notification-service`: configuration, wiring and the process's life.

Start-up: read and check the configuration (a bad variable exits with status 2, naming it),
open the store, bind the HTTP port (port 0 picks one; the bound address is logged), start the
consumer thread. SIGTERM/SIGINT: stop accepting, end the live streams, let requests in flight
finish for `NOTIFICATION_SHUTDOWN_GRACE_MS`, stop the consumer (commit its offsets, leave the
group), close the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from . import config as configuration
from . import metrics
from .application import NotifyCustomers
from .domain.model import Notification
from .inbound.http import ApiState, Streams, create_app
from .inbound.kafka import EventConsumer
from .outbound.auth import JwksVerifier
from .outbound.delivery import OutboxFileDelivery
from .outbound.filestore import FileStore
from .outbound.schemas import EventSchemas

log = logging.getLogger("notification")

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "color_message"}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "target": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD
        )
        return f"{base} {fields}" if fields else base


def _logging(log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if log_format == "json"
        else _TextFormatter("%(asctime)s %(levelname)5s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = os.environ.get("NOTIFICATION_LOG_LEVEL", "INFO").upper()
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


class _CountCreated:
    def published(self, notification: Notification) -> None:
        metrics.NOTIFICATIONS.labels(kind=notification.kind.value).inc()


class _Server(uvicorn.Server):
    """uvicorn, telling the live streams to end as soon as a stop signal arrives (they would
    otherwise keep the graceful shutdown waiting for its whole grace period)."""

    def __init__(self, config: uvicorn.Config, state: ApiState, streams: Streams, drain_s: float) -> None:
        super().__init__(config)
        self._state = state
        self._streams = streams
        self._drain_s = drain_s
        self._draining: threading.Timer | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own re-raises the signal once it has served, killing the process before
        # the consumer commits its offsets and leaves the group; this one only asks it to stop.
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self._drain_s > 0 and self._draining is None:
            # Not ready first, still serving: the balancers stop sending before the close.
            log.info("stopping: not ready, draining", extra={"signal": sig, "drain_ms": int(self._drain_s * 1000)})
            self._state.draining = True
            self._draining = threading.Timer(self._drain_s, self._stop, args=(sig, frame))
            self._draining.daemon = True
            self._draining.start()
            return
        if self._draining is not None:
            self._draining.cancel()  # a second signal ends the drain at once
        self._stop(sig, frame)

    def _stop(self, sig: int, frame: Any) -> None:
        log.info("stopping", extra={"signal": sig})
        self._state.stopping.set()
        self._streams.close_all()
        super().handle_exit(sig, frame)


def main() -> None:
    try:
        cfg = configuration.load(os.environ)
    except configuration.ConfigError as e:
        print(f"notification-service: configuration error: {e}", file=sys.stderr)
        sys.exit(2)
    _logging(cfg.log_format)
    schemas = EventSchemas(cfg.schemas_dir)
    store = FileStore(cfg.data_dir)
    delivery = OutboxFileDelivery(cfg.data_dir)
    streams = Streams()
    use_case = NotifyCustomers(store, delivery, [streams, _CountCreated()])
    consumer = EventConsumer(cfg.kafka, schemas, use_case, max_attempts=cfg.max_attempts)
    verifier = JwksVerifier(
        issuer=cfg.auth.issuer,
        audience=cfg.auth.audience,
        jwks_url=cfg.auth.jwks_url,
        jwks_file=cfg.auth.jwks_file,
        max_age_s=cfg.auth.max_age_s,
    )

    def ready() -> str | None:
        if consumer.failure is not None:
            return f"the consumer stopped: {consumer.failure}"
        if not consumer.alive:
            return "the consumer is not running"
        if not store.writable():
            return f"the data directory {cfg.data_dir} is not writable"
        return None

    state = ApiState(store=store, verifier=verifier, streams=streams, ready=ready)
    app = create_app(state)

    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError as e:
        print(
            f"notification-service: binding NOTIFICATION_HTTP_ADDR={cfg.host}:{cfg.port}: {e}",
            file=sys.stderr,
        )
        sys.exit(1)
    sock.listen(1024)
    sock.set_inheritable(True)
    host, port = sock.getsockname()[:2]

    server = _Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(cfg.shutdown_grace_ms / 1000, 0.1),
            lifespan="off",
        ),
        state,
        streams,
        cfg.shutdown_drain_ms / 1000,
    )

    async def serve() -> None:
        streams.bind(asyncio.get_running_loop())
        consumer.start()
        log.info(
            "notification service listening",
            extra={
                "addr": f"{host}:{port}",
                "data_dir": str(cfg.data_dir),
                "group": consumer.group,
                "event_types": len(schemas.types),
            },
        )
        await server.serve(sockets=[sock])

    try:
        asyncio.run(serve())
    finally:
        consumer.stop()
        delivery.close()
        store.close()
        log.info("notification service stopped")


if __name__ == "__main__":
    main()
