"""The consumer: the seat, registration and payment topics, as the group `notification`.

Like the Rust consumers (`libs/messaging/src/consumer.rs`), message by message in partition
order:

1. the payload is checked against its event's JSON Schema; what does not match (or is not
   JSON at all) goes to the dead-letter topic `studycafe.dlq.notification.v1` at once, with the
   error in headers, and the partition moves on; an event type without a schema here (a newer
   publisher) is skipped;
2. the use case applies it, everything on disk before it returns; a failure (disk full, I/O)
   is retried with backoff and dead-lettered after `NOTIFICATION_MAX_ATTEMPTS`;
3. only then is the offset stored; the client commits stored offsets every second and on
   shutdown. A crash between 2 and 3 redelivers, and the processed ids absorb it.

It runs on a thread of its own (the client's calls block). Stopping commits the stored offsets
and leaves the group, so the partitions move to another instance at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from ..application import NotifyCustomers, Outcome
from ..config import KafkaSettings
from ..domain.model import Consumed, InvalidValue
from ..outbound.schemas import EventSchemas, Invalid, UnknownType
from .. import metrics

log = logging.getLogger("notification.consumer")

GROUP = "notification"
# The published language's topics (shared-events/src/topics.rs).
TOPICS = ("studycafe.seat.v1", "studycafe.registration.v1", "studycafe.payment.v1")
PARTITIONS = 6
MAX_BACKOFF_S = 30.0


def dead_letter_topic(group: str) -> str:
    """`shared_events::topics::dead_letter`."""
    return f"studycafe.dlq.{group}.v1"


def ensure_topics(kafka: KafkaSettings, topics: list[str], stop: threading.Event) -> bool:
    """Creates the topics this consumer needs (6 partitions) unless they exist, retrying until
    the broker answers; False when stopped first. A broker that is down at start-up must not
    stop the service from starting."""
    admin = AdminClient({"bootstrap.servers": kafka.brokers, "client.id": "notification"})
    backoff = 0.2
    while not stop.is_set():
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in topics],
            operation_timeout=10,
            request_timeout=15,
        )
        failed = []
        for topic, future in futures.items():
            try:
                future.result()
            except KafkaException as e:
                error = e.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    failed.append(f"{topic}: {error}")
        if not failed:
            return True
        log.warning("topics not ready, retrying", extra={"errors": failed})
        stop.wait(backoff)
        backoff = min(backoff * 2, 5.0)
    return False


@dataclass
class ConsumerState:
    """What readiness and the tests look at."""

    running: bool = False
    assigned: int = 0


class EventConsumer:
    def __init__(
        self,
        kafka: KafkaSettings,
        schemas: EventSchemas,
        use_case: NotifyCustomers,
        *,
        max_attempts: int = 10,
        retry_backoff_s: float = 0.2,
    ) -> None:
        self._kafka = kafka
        self._schemas = schemas
        self._use_case = use_case
        self._max_attempts = max_attempts
        self._retry_backoff_s = retry_backoff_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = ConsumerState()
        self.group = kafka.group(GROUP)
        self.dead_letter = kafka.topic(dead_letter_topic(GROUP))
        self.failure: BaseException | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_guarded, name="consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the consumer did not stop in time")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run_guarded(self) -> None:
        try:
            self._run()
        except BaseException as e:  # the thread must say why it died
            self.failure = e
            log.exception("the consumer stopped on an error")
        finally:
            self.state.running = False

    # --- the loop -------------------------------------------------------------------------------

    def _config(self) -> dict[str, object]:
        config: dict[str, object] = {
            "bootstrap.servers": self._kafka.brokers,
            "client.id": "notification",
            "group.id": self.group,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self._kafka.session_timeout_ms,
            "heartbeat.interval.ms": max(self._kafka.session_timeout_ms // 3, 500),
            "topic.metadata.refresh.interval.ms": 10_000,
            "reconnect.backoff.max.ms": 1000,
            "log_level": 4,
        }
        if self._kafka.group_instance_id:
            config["group.instance.id"] = self._kafka.group_instance_id
        return config

    def _producer(self) -> Producer:
        config: dict[str, object] = {
            "bootstrap.servers": self._kafka.brokers,
            "client.id": "notification-dlq",
            "acks": "all",
            "linger.ms": 1,
            "message.timeout.ms": 15_000,
            "reconnect.backoff.max.ms": 1000,
        }
        if self._kafka.idempotence:
            config["enable.idempotence"] = True
        else:
            config["enable.idempotence"] = False
            config["max.in.flight.requests.per.connection"] = 1
        return Producer(config)

    def _run(self) -> None:
        topics = [self._kafka.topic(t) for t in TOPICS]
        if not ensure_topics(self._kafka, [*topics, self.dead_letter], self._stop):
            return
        consumer = Consumer(self._config())
        dlq = self._producer()

        def assigned(_consumer: Consumer, partitions: list) -> None:
            self.state.assigned = len(partitions)
            log.info("partitions assigned", extra={"partitions": len(partitions)})

        def revoked(_consumer: Consumer, partitions: list) -> None:
            self.state.assigned = 0
            log.info("partitions revoked", extra={"partitions": len(partitions)})

        consumer.subscribe(topics, on_assign=assigned, on_revoke=revoked, on_lost=revoked)
        self.state.running = True
        log.info("consumer started", extra={"group": self.group, "topics": topics})
        try:
            while not self._stop.is_set():
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error():
                    # Broker gone, partition EOF, rebalancing: the client recovers by itself.
                    if message.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error", extra={"error": str(message.error())})
                    continue
                outcome = self._process(message, dlq)
                if outcome is None:
                    break  # stopped mid-retry: the offset stays, the event comes again
                metrics.EVENTS.labels(outcome=outcome).inc()
                try:
                    consumer.store_offsets(message=message)
                except KafkaException as e:
                    # Lost the partition in a rebalance: the new owner redelivers.
                    log.warning("storing the offset failed", extra={"error": str(e)})
        finally:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as e:
                # Nothing stored since the last commit, or the broker is away: redelivered.
                log.debug("final commit", extra={"error": str(e)})
            consumer.close()  # leaves the group
            dlq.flush(5)
            log.info("consumer stopped", extra={"group": self.group})

    def _process(self, message: Message, dlq: Producer) -> str | None:
        try:
            checked = self._schemas.check(message.value())
        except UnknownType as e:
            log.debug("skipping an event type this service does not know", extra={"type": str(e)})
            return "skipped"
        except Invalid as e:
            return self._dead_letter(message, dlq, str(e), 0)
        consumed = Consumed.from_envelope(
            checked.envelope, checked.occurred_at, self._kafka.logical_topic(message.topic())
        )
        backoff = self._retry_backoff_s
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = self._use_case.handle(consumed)
                return "duplicate" if outcome is Outcome.DUPLICATE else "applied"
            except (InvalidValue, KeyError, TypeError, ValueError) as e:
                # Valid by its schema yet not applicable (an id that cannot be ours, a value
                # the policy cannot read): retrying cannot help.
                return self._dead_letter(message, dlq, f"rejected: {e!r}", attempt)
            except Exception as e:  # noqa: BLE001 — disk full, I/O, a bug: retried, then set aside
                if attempt >= self._max_attempts:
                    return self._dead_letter(message, dlq, str(e), attempt)
                log.warning(
                    "handling failed, retrying",
                    extra={"attempt": attempt, "error": str(e), "event_id": consumed.event_id},
                )
                if self._stop.wait(backoff):
                    return None
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _dead_letter(self, message: Message, dlq: Producer, error: str, attempts: int) -> str | None:
        log.error(
            "dead-lettering a message",
            extra={
                "topic": message.topic(),
                "partition": message.partition(),
                "offset": message.offset(),
                "error": error,
            },
        )
        headers = list(message.headers() or [])
        headers += [
            ("dlq-error", error.encode()),
            ("dlq-source-topic", message.topic().encode()),
            ("dlq-source-partition", str(message.partition()).encode()),
            ("dlq-source-offset", str(message.offset()).encode()),
            ("dlq-consumer-group", GROUP.encode()),
            ("dlq-attempts", str(attempts).encode()),
        ]
        backoff = 0.2
        # Until the broker takes it: dropping a poison message silently would lose it.
        while True:
            delivered: list[KafkaError | None] = []
            dlq.produce(
                self.dead_letter,
                value=message.value(),
                key=message.key(),
                headers=headers,
                on_delivery=_recorder(delivered),
            )
            dlq.flush(10)
            if delivered and delivered[0] is None:
                return "dead_lettered"
            log.warning("dead-letter publish failed, retrying", extra={"error": str(delivered)})
            if self._stop.wait(backoff):
                return None
            backoff = min(backoff * 2, 5.0)


def _recorder(into: list) -> Callable[[KafkaError | None, Message], None]:
    def record(error: KafkaError | None, _message: Message) -> None:
        into.append(error)

    return record


__all__ = ["EventConsumer", "GROUP", "TOPICS", "dead_letter_topic"]
