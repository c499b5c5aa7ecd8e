"""Crash-safe files: append-only JSON lines and atomically replaced documents.

A JSON-lines file is only ever appended to, one record per line, each append flushed and
fsynced before the caller goes on. A crash mid-append leaves at most one torn last line (no
newline, or not JSON); opening the file cuts it off, so the file again ends on a whole record
that was never acknowledged. Creating a file also fsyncs its directory, so the file itself
survives a power cut. Small documents (read markers) are written to a temporary file, fsynced
and renamed over the old one: a reader sees the old or the new, never half.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("notification.files")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class JsonLines:
    """One append-only JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        created = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = list(self._recover()) if not created else []
        self._file = open(path, "ab")  # noqa: SIM115 — kept open for the process's life
        if created:
            os.fsync(self._file.fileno())
            fsync_dir(path.parent)

    def _recover(self) -> Iterator[dict[str, Any]]:
        data = self.path.read_bytes()
        good = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
            except ValueError:
                break
            good += len(line)
            yield record
        if good < len(data):
            log.warning(
                "cutting a torn tail off a file",
                extra={"path": str(self.path), "bytes": len(data) - good},
            )
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())

    def append(self, *records: dict[str, Any]) -> None:
        """Appends `records` in one write and returns once they are on disk."""
        if not records:
            return
        self._file.write(b"".join(encode(r) for r in records))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def write_atomically(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as f:
        f.write(encode(document))
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    fsync_dir(path.parent)


def read_document(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
