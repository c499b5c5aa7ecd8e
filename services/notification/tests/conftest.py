"""Fixtures: a real broker, real files, the service as its own process, real signed tokens.

The broker is the shared Apache Kafka when `TEST_KAFKA_BROKERS` is set (`eval "$(scripts/engines/up)"`),
each test with a topic prefix of its own; otherwise the embedded broker's own executable
(`studycafe-broker`, from `CARGO_TARGET_DIR` or `target/`), one per test session.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from events import TOPIC_OF, payload

SERVICE_DIR = Path(__file__).resolve().parents[1]
REPO = SERVICE_DIR.parents[1]
WAIT_S = 60.0


_NEXT_PORT = [os.getpid() * 7919 + time.time_ns() % 1_000_000_000]


def free_port() -> int:
    """A loopback port below the ephemeral range (`32768..61000`), like testkit's `free_port`:
    a port the kernel handed out for `bind(0)` may come back to someone else."""
    for _ in range(12_000):
        _NEXT_PORT[0] += 1
        port = 20_000 + _NEXT_PORT[0] % 12_000
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port in 20000..32000")


def eventually(what: str, check: Callable[[], Any], timeout_s: float = WAIT_S, logs: Callable[[], str] | None = None) -> Any:
    """Polls `check` until it returns something truthy (no timed assertion: the limit only
    keeps a broken run from hanging)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    tail = f"\n{logs()}" if logs else ""
    raise AssertionError(f"{what}: not within {timeout_s}s (last: {last!r}){tail}")


def _target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


class Broker:
    def __init__(self, brokers: str, process: subprocess.Popen | None, log: Path | None) -> None:
        self.brokers = brokers
        self.process = process
        self.log = log


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    shared = os.environ.get("TEST_KAFKA_BROKERS")
    if shared:
        yield Broker(shared, None, None)
        return
    exe = _target_dir() / "debug" / "studycafe-broker"
    if not exe.is_file():
        pytest.fail(f"no broker: set TEST_KAFKA_BROKERS or build {exe} (cargo build -p studycafe-broker)")
    data = Path(tempfile.mkdtemp(prefix="notification-broker-"))
    port = free_port()
    log = data / "broker.log"
    process = subprocess.Popen(
        [str(exe)],
        env={**os.environ, "BROKER_LISTEN_ADDR": f"127.0.0.1:{port}", "BROKER_DATA_DIR": str(data / "data")},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )

    def accepting() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    eventually("the embedded broker accepts connections", accepting, logs=lambda: log.read_text()[-3000:])
    yield Broker(f"127.0.0.1:{port}", process, log)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


class Keys:
    """A test signing key, its JWKS file, and tokens as identity issues them."""

    def __init__(self, directory: Path) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.kid = "test-" + uuid.uuid4().hex[:8]
        raw = self.private.public_key().public_bytes_raw()
        self.jwks = directory / "jwks.json"
        self.jwks.write_text(
            json.dumps(
                {"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": self.kid,
                           "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}]}
            )
        )

    def token(self, subject: str, roles: tuple[str, ...] = ("customer",), *, key: Ed25519PrivateKey | None = None,
              audience: str = "studycafe", expires_in: timedelta = timedelta(hours=1)) -> str:
        now = datetime.now(UTC)
        claims = {"sub": subject, "roles": list(roles), "iss": "studycafe-identity", "aud": audience,
                  "iat": int(now.timestamp()), "exp": int((now + expires_in).timestamp())}
        return jwt.encode(claims, key or self.private, algorithm="EdDSA", headers={"kid": self.kid})


class Service:
    """The notification service as its own process, the way `studycafe up` runs it."""

    def __init__(self, broker: Broker, prefix: str, data_dir: Path, keys: Keys) -> None:
        self.broker = broker
        self.prefix = prefix
        self.data_dir = data_dir
        self.keys = keys
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"notification-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.extra_env: dict[str, str] = {}
        self.http = httpx.Client(timeout=10, trust_env=False)
        self.producer = Producer({"bootstrap.servers": broker.brokers, "linger.ms": 1})

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "AUTH_", "NOTIFICATION_"))}
        env.update(
            NOTIFICATION_HTTP_ADDR=f"127.0.0.1:{self.port}",
            NOTIFICATION_DATA_DIR=str(self.data_dir),
            KAFKA_BROKERS=self.broker.brokers,
            KAFKA_TOPIC_PREFIX=self.prefix,
            KAFKA_GROUP_INSTANCE_ID="notification-1",
            AUTH_JWKS_FILE=str(self.keys.jwks),
            NOTIFICATION_MAX_ATTEMPTS="3",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(SERVICE_DIR / ".venv" / "bin" / "notification-service")],
            env=self.env(),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        eventually("the notification service is ready",
                   lambda: self.http.get(f"{self.url}/health/ready").status_code == 200,
                   logs=self.tail)
        eventually("the consumer holds partitions", lambda: "partitions assigned" in self.log.read_text(),
                   logs=self.tail)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self.process = None
        return code

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def publish(self, *envelopes: dict[str, Any], raw: bytes | None = None, topic: str | None = None) -> None:
        for envelope in envelopes:
            self.producer.produce(self.prefix + TOPIC_OF[envelope["type"]], key=envelope["correlationId"].encode(),
                                  value=payload(envelope))
        if raw is not None:
            assert topic is not None
            self.producer.produce(self.prefix + topic, key=b"junk", value=raw)
        assert self.producer.flush(15) == 0

    def notifications(self, customer: str, **params: str) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/api/notifications", params=params,
                                 headers={"authorization": f"Bearer {self.keys.token(customer)}"})
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, customer: str, count: int) -> dict[str, Any]:
        return eventually(f"{count} notifications for {customer}",
                          lambda: (body := self.notifications(customer)) and len(body["notifications"]) >= count and body,
                          logs=self.tail)

    def read_topic(self, topic: str, count: int) -> list[Any]:
        """The first `count` messages of a topic (all partitions), from the start."""
        consumer = Consumer({"bootstrap.servers": self.broker.brokers, "group.id": f"reader-{uuid.uuid4()}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            consumer.assign([TopicPartition(self.prefix + topic, p, 0) for p in range(6)])
            messages: list[Any] = []
            deadline = time.monotonic() + WAIT_S
            while len(messages) < count and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and not message.error():
                    messages.append(message)
            return messages
        finally:
            consumer.close()


def _service(broker: Broker, directory: Path) -> Iterator[Service]:
    directory.mkdir(parents=True, exist_ok=True)
    prefix = f"py-{uuid.uuid4().hex[:12]}."
    svc = Service(broker, prefix, directory / "data", Keys(directory))
    svc.start()
    yield svc
    if svc.process is not None:
        svc.stop()


@pytest.fixture
def service(broker: Broker, tmp_path: Path) -> Iterator[Service]:
    """A service of the test's own (topics, group and files of its own)."""
    yield from _service(broker, tmp_path)


@pytest.fixture(scope="module")
def shared_service(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the tests that neither stop it nor count what it dead-letters; each
    uses customers of its own."""
    yield from _service(broker, tmp_path_factory.mktemp("shared"))
