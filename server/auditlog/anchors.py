"""Checkpoints anchored outside the database (docs/operations.md, "Keys and anchors").

Each signed checkpoint is written, before the database records it, either to S3 (one object a
checkpoint, with COMPLIANCE Object Lock retention when the bucket has Object Lock enabled) or to an
append-only file in the data directory. Verification reads them back and compares the database's
tree with each one (auditlog.checkpoints.check_anchors).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_log = logging.getLogger(__name__)
ANCHOR_FILE = "checkpoints.anchor"
KEY_PREFIX = "checkpoints/"


class AnchorError(RuntimeError):
    """An anchor could not be written or read; the checkpoint is not recorded."""


class Anchors(Protocol):
    name: str

    def put(self, tree_size: int, note: str) -> None:
        """Writes the signed checkpoint of tree_size; raises AnchorError when it cannot."""

    def notes(self, after: str | None = None) -> Iterator[tuple[str, str]]:
        """(position, signed checkpoint) of every anchor written after position `after` (None:
        all), in the order written (S3: by tree size). Anchors never change once written, so a
        reader resumes where it stopped."""


class FileAnchors:
    """One JSON line a checkpoint, appended (O_APPEND) and fsynced, in a file of mode 0600."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def put(self, tree_size: int, note: str) -> None:
        line = json.dumps({"tree_size": tree_size, "note": note}, ensure_ascii=False) + "\n"
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                end = os.lseek(fd, 0, os.SEEK_END)
                if end and os.pread(fd, 1, end - 1) != b"\n":
                    line = "\n" + line  # after a write cut short by a crash: a line of its own
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise AnchorError(f"cannot append to the anchor file: {err.strerror}") from err

    def notes(self, after: str | None = None) -> Iterator[tuple[str, str]]:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        with handle:
            offset = int(after or 0)
            handle.seek(offset)
            for line in handle:
                if not line.endswith(b"\n"):
                    # A write cut short by a crash: the checkpoint was not recorded either.
                    return
                offset += len(line)
                try:
                    note = str(json.loads(line)["note"])
                except (ValueError, KeyError, TypeError):
                    # Not a record (a write cut short by a crash, then completed by the next one):
                    # nothing to compare; only notes signed by the log's key count anyway.
                    _log.warning("the anchor file has a line that is not a checkpoint record; skipped")
                    continue
                yield str(offset), note


class S3Anchors:
    """One object a checkpoint: checkpoints/<tree size, 20 digits>, sorted by size when listed."""

    name = "s3"

    def __init__(self, client: S3Client, bucket: str, *, retention: timedelta) -> None:
        self._client = client
        self.bucket = bucket
        self._retention = retention
        self._locked: bool | None = None

    def object_lock(self) -> bool:
        """Whether the bucket has Object Lock enabled (asked once)."""
        if self._locked is None:
            try:
                conf = self._client.get_object_lock_configuration(Bucket=self.bucket)
                self._locked = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") != "ObjectLockConfigurationNotFoundError":
                    raise AnchorError(
                        f"cannot read the Object Lock setting of bucket {self.bucket!r}"
                    ) from err
                self._locked = False
        return self._locked

    def put(self, tree_size: int, note: str) -> None:
        key = f"{KEY_PREFIX}{tree_size:020d}"
        try:
            if self.object_lock():
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=note.encode(),
                    ContentType="text/plain; charset=utf-8",
                    ObjectLockMode="COMPLIANCE",
                    ObjectLockRetainUntilDate=datetime.now(UTC) + self._retention,
                    ChecksumAlgorithm="SHA256",
                )
            else:
                self._client.put_object(
                    Bucket=self.bucket, Key=key, Body=note.encode(), ContentType="text/plain; charset=utf-8"
                )
        except (BotoCoreError, ClientError) as err:
            _log.warning("anchoring checkpoint %d to s3://%s/%s failed: %s", tree_size, self.bucket, key, err)
            raise AnchorError("the checkpoint could not be written to S3") from err

    def notes(self, after: str | None = None) -> Iterator[tuple[str, str]]:
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=KEY_PREFIX, StartAfter=after or ""
            )
            for page in pages:
                for item in page.get("Contents", []):
                    body = self._client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                    yield item["Key"], body.decode("utf-8", "replace")
        except (BotoCoreError, ClientError) as err:
            _log.warning("reading anchors from s3://%s failed: %s", self.bucket, err)
            raise AnchorError("the anchored checkpoints could not be read from S3") from err
