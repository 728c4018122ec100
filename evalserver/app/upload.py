"""Reading a multipart upload as it streams in, straight to its place in the data dir.

Starlette's form parser would first spool the file to the system's temp dir (and the route
copy it again); here the file part is written once, to ``uploads/<id>/``, hashed and counted
on the way, and the upload stops with ``TooLarge`` as soon as it passes the limit. The other
form fields are small text, each bounded. Disk writes run in a worker thread, never on the
event loop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from evalserver.metrics.limits import format_size
from evalserver.submissions import StoredFile, TooLarge

__all__ = ["FILE_FIELD", "BadForm", "ReceivedForm", "receive_form"]

#: The form field that carries the prediction file.
FILE_FIELD = "file"
#: Largest text field (a description), and most parts a form may have.
MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 32


class BadForm(Exception):
    """A request that is not the expected multipart form (400)."""


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    file: StoredFile | None = None
    filename: str = ""


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _Receiver:
    """The parser's callbacks: headers and text fields in memory (bounded), the file's
    bytes queued for the writer thread."""

    def __init__(self, dest: Path, max_bytes: int) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.form = ReceivedForm()
        self.part = _Part()
        self.parts = 0
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.pending: list[bytes] = []
        self.digest = hashlib.sha256()
        self.size = 0
        self.out: BinaryIO | None = None
        self.in_file = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: self.header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self.header_value.extend(d[s:e]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadForm(f"more than {MAX_PARTS} parts in the form")
        self.part = _Part()
        self.headers = {}

    def header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        disposition = self.headers.get(b"content-disposition")
        if disposition is None:
            raise BadForm("a form part has no Content-Disposition header")
        _, options = parse_options_header(disposition)
        self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self.part.filename = None if filename is None else filename.decode("utf-8", "replace")
        if self.part.name == FILE_FIELD:
            if self.form.file is not None or self.in_file:
                raise BadForm(f"more than one {FILE_FIELD!r} part")
            self.in_file = True
        elif self.part.filename is not None:
            raise BadForm(f"unexpected file part {self.part.name!r} (only {FILE_FIELD!r})")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.in_file:
            self.size += len(chunk)
            if self.size > self.max_bytes:
                limit = format_size(self.max_bytes)
                raise TooLarge(f"the file is larger than the limit of {limit}")
            self.digest.update(chunk)
            self.pending.append(bytes(chunk))
        else:
            self.part.data.extend(chunk)
            if len(self.part.data) > MAX_FIELD_BYTES:
                raise BadForm(
                    f"form field {self.part.name!r} is longer than {format_size(MAX_FIELD_BYTES)}"
                )

    def part_end(self) -> None:
        if self.in_file:
            self.in_file = False
            self.form.filename = self.part.filename or ""
            self.form.file = StoredFile(self.dest, "", 0)  # completed in ``finish``
        else:
            self.form.fields[self.part.name] = self.part.data.decode("utf-8", "replace")

    def flush(self) -> None:
        """Write what the parser queued (in a worker thread)."""
        if not self.pending:
            return
        if self.out is None:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            self.out = self.dest.open("wb")
        chunks, self.pending = self.pending, []
        self.out.writelines(chunks)

    def finish(self) -> ReceivedForm:
        if self.out is None and self.form.file is not None:  # an empty file part
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            self.dest.write_bytes(b"")
        if self.out is not None:
            self.out.close()
            self.out = None
        if self.form.file is not None:
            self.form.file = StoredFile(self.dest, self.digest.hexdigest(), self.size)
        return self.form

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


async def receive_form(request: Request, dest: Path, max_bytes: int) -> ReceivedForm:
    """Parse ``request``'s multipart body; the file part goes to ``dest``. Raises
    ``BadForm``, or ``TooLarge`` past ``max_bytes`` of file (``dest`` is then removed)."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadForm("the body must be multipart/form-data (a file and its fields)")
    receiver = _Receiver(dest, max_bytes)
    parser = MultipartParser(boundary, receiver.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await anyio.to_thread.run_sync(receiver.flush)
        parser.finalize()
        await anyio.to_thread.run_sync(receiver.flush)
        return receiver.finish()
    except MultipartParseError as exc:
        raise BadForm(f"malformed multipart body: {exc}") from None
    finally:
        receiver.close()
