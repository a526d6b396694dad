"""Streaming ``multipart/form-data`` parsing: uploads go to temporary files.

The body is read in chunks from a file object; each file part is written
to a temporary file as it is parsed (small ones stay in memory up to
``spool_size``), so an upload never sits whole in memory.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from typing import IO, Any, BinaryIO
from urllib.parse import unquote

from .responses import HTTPError

__all__ = ["UploadedFile", "parse_multipart", "parse_options_header"]

READ_SIZE = 64 * 1024
MAX_PARTS = 1000
MAX_PART_HEAD = 16 * 1024
SPOOL_SIZE = 64 * 1024

_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def parse_options_header(value: str) -> tuple[str, dict[str, str]]:
    """Split ``'form-data; name="a"; filename="b"'`` into the value and its parameters.

    ``name*=UTF-8''...`` (RFC 5987) parameters are decoded and win over plain ones.
    """
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(";" + rest):
        key = key.lower()
        raw = raw.strip()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if key.endswith("*"):
            charset, _, encoded = raw.partition("''")
            try:
                params[key[:-1]] = unquote(encoded, encoding=charset or "utf-8", errors="strict")
            except (LookupError, UnicodeDecodeError):
                continue
        elif key not in params:
            params[key] = raw
    return main.strip().lower(), params


class UploadedFile:
    """One uploaded file of a multipart body.

    Attributes:
        name: the form field name.
        filename: the client's file name, as sent (never use it as a path as is).
        content_type: the part's ``Content-Type`` (default ``application/octet-stream``).
        headers: the part's headers, names lowercase.
        size: bytes received.
        file: a binary file object positioned at the start of the data.
    """

    def __init__(self, name: str, filename: str, content_type: str,
                 headers: dict[str, str], file: IO[bytes], size: int) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.headers = headers
        self.file = file
        self.size = size

    def read(self, size: int = -1) -> bytes:
        """Read from the uploaded data."""
        return self.file.read(size)

    def save(self, path: str) -> None:
        """Copy the uploaded data to ``path``."""
        self.file.seek(0)
        with open(path, "wb") as out:
            shutil.copyfileobj(self.file, out)
        self.file.seek(0)

    def close(self) -> None:
        """Delete the temporary file."""
        self.file.close()

    def __repr__(self) -> str:
        return f"<UploadedFile {self.name!r} {self.filename!r} {self.size} bytes>"


def parse_multipart(
    stream: BinaryIO,
    content_type: str,
    spool_size: int = SPOOL_SIZE,
    max_parts: int = MAX_PARTS,
) -> tuple[list[tuple[str, Any]], list[tuple[str, UploadedFile]]]:
    """Parse a ``multipart/form-data`` body read from ``stream``.

    Returns ``(fields, files)``: text fields as ``(name, str)`` pairs and
    file parts as ``(name, UploadedFile)`` pairs, in body order.

    Raises:
        HTTPError: 400 when the body is malformed or has too many parts.
    """
    _, params = parse_options_header(content_type)
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise HTTPError(400, "multipart body without a valid boundary")
    charset = params.get("charset", "utf-8")
    parser = _Parser(stream, boundary.encode("latin-1"), spool_size, max_parts, charset)
    try:
        parser.run()
    except HTTPError:
        for _, upload in parser.files:
            upload.close()
        raise
    return parser.fields, parser.files


class _Parser:
    def __init__(self, stream: BinaryIO, boundary: bytes, spool_size: int, max_parts: int,
                 charset: str) -> None:
        self.stream = stream
        self.delimiter = b"\r\n--" + boundary
        self.spool_size = spool_size
        self.max_parts = max_parts
        self.charset = charset
        self.fields: list[tuple[str, Any]] = []
        self.files: list[tuple[str, UploadedFile]] = []
        self.buf = b"\r\n"  # so the first delimiter looks like every other one
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(READ_SIZE)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def run(self) -> None:
        delimiter = self.delimiter
        # Preamble: skip to the first delimiter.
        while True:
            at = self.buf.find(delimiter)
            if at >= 0:
                self.buf = self.buf[at + len(delimiter):]
                break
            self.buf = self.buf[-len(delimiter):]
            if not self._fill():
                raise HTTPError(400, "multipart body has no boundary")
        parts = 0
        while True:
            while len(self.buf) < 2 and self._fill():
                pass
            if self.buf.startswith(b"--"):
                return  # closing delimiter; the epilogue is ignored
            parts += 1
            if parts > self.max_parts:
                raise HTTPError(400, f"multipart body has more than {self.max_parts} parts")
            self._part()

    def _part(self) -> None:
        # Rest of the delimiter line (transport padding allowed), then the part head.
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > MAX_PART_HEAD:
                raise HTTPError(400, "multipart part head too large")
            if not self._fill():
                raise HTTPError(400, "truncated multipart body")
        line_end = self.buf.find(b"\r\n")
        if self.buf[:line_end].strip(b" \t"):
            raise HTTPError(400, "malformed multipart delimiter")
        head = self.buf[line_end + 2:end] if line_end < end else b""
        self.buf = self.buf[end + 4:]
        headers: dict[str, str] = {}
        for line in head.split(b"\r\n"):
            name, sep, value = line.decode("utf-8", "replace").partition(":")
            if not sep:
                raise HTTPError(400, "malformed multipart part header")
            headers[name.strip().lower()] = value.strip()
        disposition, params = parse_options_header(headers.get("content-disposition", ""))
        if disposition != "form-data" or "name" not in params:
            raise HTTPError(400, "multipart part without form-data name")
        name = params["name"]
        if "filename" in params:
            target: Any = tempfile.SpooledTemporaryFile(max_size=self.spool_size)  # noqa: SIM115
        else:
            target = _Collector()
        size = self._copy_data(target)
        if "filename" in params:
            target.seek(0)
            ctype = headers.get("content-type", "application/octet-stream")
            self.files.append((name, UploadedFile(name, params["filename"], ctype, headers,
                                                  target, size)))
        else:
            _, ctparams = parse_options_header(headers.get("content-type", ""))
            data = b"".join(target.chunks)
            try:
                self.fields.append((name, data.decode(ctparams.get("charset", self.charset))))
            except (LookupError, UnicodeDecodeError):
                raise HTTPError(400, f"form field {name!r} is not valid text") from None

    def _copy_data(self, target: Any) -> int:
        delimiter = self.delimiter
        keep = len(delimiter) - 1
        size = 0
        while True:
            at = self.buf.find(delimiter)
            if at >= 0:
                target.write(self.buf[:at])
                size += at
                self.buf = self.buf[at + len(delimiter):]
                return size
            # Write all but a tail that could be the start of a delimiter.
            if len(self.buf) > keep:
                cut = len(self.buf) - keep
                target.write(self.buf[:cut])
                size += cut
                self.buf = self.buf[cut:]
            if not self._fill():
                raise HTTPError(400, "truncated multipart body")


class _Collector:
    """A write-only sink for text fields."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > 1024 * 1024:
            raise HTTPError(400, "form field larger than 1 MiB (send it as a file)")
        self.chunks.append(data)
        return len(data)
