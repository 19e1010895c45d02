"""Exports kept in a folder under the data directory, served through the gateway.

Files live at <root>/<job id>/<file name>. The download URL is the gateway's REST path
`<public base URL>/api/v1/export/{id}/content`, which streams the file (DownloadExportContent);
it does not expire, as access to the gateway is the access control.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from auditlog.export.storage import DownloadLink, ExportFileMissingError, StorageError, StoredFile

_log = logging.getLogger(__name__)


class LocalStorage:
    name = "local"

    def __init__(self, root: Path, public_base_url: str) -> None:
        self.root = root
        self._base = public_base_url.rstrip("/")

    def store(self, source: Path, *, job_id: str, file_name: str, content_type: str) -> StoredFile:
        relative = f"{job_id}/{file_name}"
        target = self.root / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # The spool lives under the same root, so this is an atomic rename: a reader never
            # sees half a file.
            source.replace(target)
        except OSError as err:
            _log.warning("export job=%s cannot be moved to %s: %s", job_id, target, err)
            raise StorageError(
                f"the server cannot store the export in its export folder ({err.strerror or 'failed'})"
            ) from err
        return StoredFile(self.name, relative)

    def download_link(self, location: str, *, job_id: str, file_name: str) -> DownloadLink:
        return DownloadLink(f"{self._base}/api/v1/export/{job_id}/content", None)

    def path_of(self, location: str) -> Path:
        path = (self.root / location).resolve()
        # Locations come from our own table, but a path must never leave the exports folder.
        if not path.is_relative_to(self.root.resolve()):
            raise ExportFileMissingError("the export's location is outside the exports folder")
        return path

    def open_chunks(self, location: str, chunk_size: int) -> Iterator[bytes]:
        path = self.path_of(location)
        try:
            handle = path.open("rb")
        except OSError as err:
            raise ExportFileMissingError(
                f"the export file is missing from the local folder: {err.strerror}"
            ) from err
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk
