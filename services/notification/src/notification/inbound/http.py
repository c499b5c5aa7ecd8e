"""The HTTP API (behind the gateway's `/api/notifications` route) and the operations routes.

- `GET /api/notifications` — the caller's own notifications, newest first, with the read
  marker (`readUpTo`) and each one's `read` flag; `?limit=` (1-200, default 50), `?lang=ko|en`
  (else `Accept-Language`, else Korean) picks `title`/`body`; `messages` has both.
- `PUT /api/notifications/read-marker` `{"seq": N}` — marks everything up to arrival number N
  read (it never moves back); 422 beyond the newest.
- `GET /api/notifications/stream` — server-sent events: `notification` per new one (its
  `id:` is its `seq`, so `Last-Event-ID` replays what a reconnecting client missed).
- `GET /health/live`, `/health/ready`, `/metrics`.

Every error is `application/problem+json` with a stable `type`, like the Rust services.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import metrics
from ..domain.model import CustomerId, InvalidValue, Notification
from ..domain.ports import StoreError
from ..outbound.auth import AuthError, Caller, JwksVerifier
from ..outbound.filestore import FileStore

log = logging.getLogger("notification.http")

PROBLEM = "application/problem+json"
KEEPALIVE_S = 15.0
STREAM_BUFFER = 256


class Problem(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def response(self) -> JSONResponse:
        body = {
            "type": f"/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extensions,
        }
        return JSONResponse(body, status_code=self.status, media_type=PROBLEM, headers=self.headers)


def unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", "Unauthorized", detail, {"WWW-Authenticate": "Bearer"})


def bad_request(detail: str) -> Problem:
    return Problem(400, "malformed-request", "Malformed request", detail)


class Streams:
    """Live subscribers, fed from the consumer's thread into the server's event loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: dict[CustomerId, set[asyncio.Queue[Notification | None]]] = {}
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, customer: CustomerId) -> asyncio.Queue[Notification | None]:
        queue: asyncio.Queue[Notification | None] = asyncio.Queue(STREAM_BUFFER)
        with self._lock:
            self._subscribers.setdefault(customer, set()).add(queue)
        metrics.STREAMS.inc()
        return queue

    def unsubscribe(self, customer: CustomerId, queue: asyncio.Queue) -> None:
        with self._lock:
            queues = self._subscribers.get(customer)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[customer]
        metrics.STREAMS.dec()

    def published(self, notification: Notification) -> None:
        """The application's listener port: called on the consumer's thread."""
        with self._lock:
            queues = list(self._subscribers.get(notification.customer_id, ()))
        if self._loop is None or not queues:
            return
        for queue in queues:
            self._loop.call_soon_threadsafe(_offer, queue, notification)

    def close_all(self) -> None:
        with self._lock:
            queues = [q for qs in self._subscribers.values() for q in qs]
        if self._loop is None:
            return
        for queue in queues:
            self._loop.call_soon_threadsafe(_offer, queue, None)


def _offer(queue: asyncio.Queue, item: Notification | None) -> None:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        # A client this far behind reconnects with Last-Event-ID and catches up from the store.
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)


@dataclass
class ApiState:
    store: FileStore
    verifier: JwksVerifier
    streams: Streams
    ready: Callable[[], str | None]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def view(n: Notification, lang: str, read_up_to: int) -> dict[str, Any]:
    chosen = n.messages.get(lang) or n.messages["ko"]
    return {
        "id": n.event_id,
        "seq": n.seq,
        "reservationId": n.reservation_id.value,
        "kind": n.kind.value,
        "occurredAt": n.occurred_at.isoformat().replace("+00:00", "Z"),
        "read": n.seq <= read_up_to,
        "title": chosen.title,
        "body": chosen.body,
        "messages": {k: {"title": m.title, "body": m.body} for k, m in n.messages.items()},
        "details": n.details,
    }


def _language(request: Request) -> str:
    requested = request.query_params.get("lang")
    if requested is not None:
        if requested not in ("ko", "en"):
            raise Problem(400, "invalid-field", "Invalid field", "lang must be ko or en", field="lang")
        return requested
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("en"):
            return "en"
        if tag.startswith("ko"):
            return "ko"
    return "ko"


def create_app(state: ApiState) -> FastAPI:
    app = FastAPI(
        title="studycafe notification service",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.api = state

    @app.exception_handler(Problem)
    async def problem(_request: Request, exc: Problem) -> Response:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return Problem(404, "not-found", "Not found", "no such resource").response()
        if exc.status_code == 405:
            return Problem(405, "method-not-allowed", "Method not allowed", str(exc.detail)).response()
        return Problem(exc.status_code, "http-error", "HTTP error", str(exc.detail)).response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        return bad_request(str(exc.errors()[:1])).response()

    @app.exception_handler(StoreError)
    async def store_down(_request: Request, exc: StoreError) -> Response:
        log.error("store unavailable", extra={"error": str(exc)})
        return Problem(
            503,
            "dependency-unavailable",
            "Service unavailable",
            "the notification store is unavailable; try again shortly",
            {"Retry-After": "1"},
        ).response()

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable) -> Response:
        began = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.REQUESTS.labels(request.method, path, str(response.status_code)).observe(
            time.perf_counter() - began
        )
        return response

    def caller_of(request: Request) -> CustomerId:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("a bearer token is required")
        try:
            caller: Caller = state.verifier.verify(token.strip())
        except AuthError as e:
            raise unauthorized(str(e)) from None
        if "customer" not in caller.roles and "admin" not in caller.roles:
            raise Problem(403, "forbidden", "Forbidden", "only people have notifications")
        try:
            return CustomerId.parse(caller.user_id)
        except InvalidValue as e:
            raise unauthorized(str(e)) from None

    @app.get("/api/notifications")
    async def notifications(request: Request) -> JSONResponse:
        customer = await asyncio.to_thread(caller_of, request)
        lang = _language(request)
        raw_limit = request.query_params.get("limit", "50")
        try:
            limit = int(raw_limit)
        except ValueError:
            raise Problem(400, "invalid-field", "Invalid field", "limit must be a whole number", field="limit") from None
        if not 1 <= limit <= 200:
            raise Problem(400, "invalid-field", "Invalid field", "limit must be 1-200", field="limit")
        everything = state.store.notifications_of(customer)
        read_up_to = state.store.read_marker(customer)
        newest_first = sorted(everything, key=Notification.sort_key, reverse=True)
        return JSONResponse(
            {
                "customerId": customer.value,
                "readUpTo": read_up_to,
                "latestSeq": len(everything),
                "unread": sum(1 for n in everything if n.seq > read_up_to),
                "notifications": [view(n, lang, read_up_to) for n in newest_first[:limit]],
            }
        )

    @app.put("/api/notifications/read-marker")
    async def move_marker(request: Request) -> JSONResponse:
        customer = await asyncio.to_thread(caller_of, request)
        content_type = request.headers.get("content-type", "")
        if not content_type.split(";")[0].strip().lower().endswith("json"):
            raise Problem(415, "unsupported-media-type", "Unsupported media type", "send application/json")
        try:
            body = json.loads(await request.body())
        except ValueError as e:
            raise bad_request(f"the body is not JSON: {e}") from None
        seq = body.get("seq") if isinstance(body, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise Problem(400, "invalid-field", "Invalid field", "seq must be a whole number ≥ 0", field="seq")
        latest = state.store.latest_seq(customer)
        if seq > latest:
            raise Problem(
                422, "invalid-value", "Invalid value",
                f"seq {seq} is beyond your newest notification ({latest})", field="seq",
            )
        now = await asyncio.to_thread(state.store.move_read_marker, customer, seq)
        unread = sum(1 for n in state.store.notifications_of(customer) if n.seq > now)
        return JSONResponse({"readUpTo": now, "latestSeq": latest, "unread": unread})

    @app.get("/api/notifications/stream")
    async def stream(request: Request) -> StreamingResponse:
        customer = await asyncio.to_thread(caller_of, request)
        lang = _language(request)
        last = request.headers.get("last-event-id")
        try:
            replay_after = int(last) if last else None
        except ValueError:
            raise bad_request("Last-Event-ID must be a notification's seq") from None
        queue = state.streams.subscribe(customer)

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b": notifications for you\n\n"
                sent = 0
                if replay_after is not None:
                    marker = state.store.read_marker(customer)
                    for n in state.store.notifications_of(customer):
                        if n.seq > replay_after:
                            yield _sse(n, lang, marker)
                            sent = max(sent, n.seq)
                while not state.stopping.is_set():
                    try:
                        item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if item is None:
                        if state.stopping.is_set():
                            return
                        # Fell behind: tell the client to reload.
                        yield b"event: resync\ndata: {}\n\n"
                        continue
                    if item.seq <= sent:
                        continue
                    sent = item.seq
                    yield _sse(item, lang, state.store.read_marker(customer))
            finally:
                state.streams.unsubscribe(customer, queue)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/health/live")
    async def live() -> JSONResponse:
        return JSONResponse({"status": "up"})

    @app.get("/health/ready")
    async def ready() -> Response:
        reason = state.ready()
        if reason is None:
            return JSONResponse({"status": "ready"})
        return Problem(503, "not-ready", "Not ready", reason).response()

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _sse(n: Notification, lang: str, read_up_to: int) -> bytes:
    data = json.dumps(view(n, lang, read_up_to), ensure_ascii=False, separators=(",", ":"))
    return f"event: notification\nid: {n.seq}\ndata: {data}\n\n".encode()
