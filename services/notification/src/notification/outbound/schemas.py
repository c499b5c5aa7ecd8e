"""The published language's JSON Schemas (`shared-events/schemas/*.schema.json`), the only
thing this service shares with the others. Every consumed event is checked against the schema
of its `type` and `version` before anything reads it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator


class Invalid(Exception):
    """The bytes are not an event of the published language: dead-letter them."""


class UnknownType(Exception):
    """A well-formed envelope of a type (or version) with no schema here: a newer publisher.
    Skipped, like the Rust consumers do."""


@dataclass(frozen=True)
class Checked:
    envelope: dict[str, Any]
    occurred_at: datetime


_ENVELOPE_FIELDS = ("id", "type", "version", "occurredAt", "source", "correlationId", "causationId", "data")


class EventSchemas:
    def __init__(self, directory: Path) -> None:
        self._validators: dict[tuple[str, int], Draft202012Validator] = {}
        for path in sorted(directory.glob("*.schema.json")):
            schema = json.loads(path.read_text())
            event_type = schema["properties"]["type"]["const"]
            version = schema["properties"]["version"]["const"]
            Draft202012Validator.check_schema(schema)
            self._validators[(event_type, int(version))] = Draft202012Validator(
                schema, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
        if not self._validators:
            raise ValueError(f"no event schemas in {directory}")

    @property
    def types(self) -> list[tuple[str, int]]:
        return sorted(self._validators)

    def check(self, payload: bytes | None) -> Checked:
        if payload is None:
            raise Invalid("the message has no payload")
        try:
            envelope = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as e:
            raise Invalid(f"not JSON: {e}") from None
        if not isinstance(envelope, dict):
            raise Invalid("not a JSON object")
        event_type, version = envelope.get("type"), envelope.get("version")
        if not isinstance(event_type, str) or not isinstance(version, int) or isinstance(version, bool):
            raise Invalid("the envelope has no string `type` and integer `version`")
        validator = self._validators.get((event_type, version))
        if validator is None:
            missing = [f for f in _ENVELOPE_FIELDS if f not in envelope]
            if missing:
                raise Invalid(f"not a valid event envelope: missing {', '.join(missing)}")
            raise UnknownType(f"{event_type} v{version}")
        errors = sorted(validator.iter_errors(envelope), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "(envelope)"
            raise Invalid(f"{event_type} v{version} does not match its schema at {where}: {first.message}")
        # `format: date-time` is only an annotation to the validator; the policy reads these.
        occurred_at = _timestamp(event_type, version, "occurredAt", envelope["occurredAt"])
        for field in ("startsAt", "endsAt", "holdExpiresAt"):
            if field in envelope["data"]:
                _timestamp(event_type, version, f"data/{field}", envelope["data"][field])
        return Checked(envelope=envelope, occurred_at=occurred_at)


def _timestamp(event_type: str, version: int, where: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{event_type} v{version}: {where} {raw!r} is not an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        raise Invalid(f"{event_type} v{version}: {where} {raw!r} has no offset")
    return value


__all__ = ["EventSchemas", "Invalid", "UnknownType", "Checked", "jsonschema"]
