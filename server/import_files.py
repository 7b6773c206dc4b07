"""Import files read as streams of rows: CSV (comma, semicolon or tab), XLSX and NDJSON.

Nothing is read whole: a CSV or NDJSON file a line at a time (a line longer than ``MAX_LINE`` is
refused, not held), an XLSX sheet a row at a time through openpyxl's read-only mode. What the
rows mean is server/import_formats.py's business.
"""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import orjson

MAX_LINE = 1 << 20  # bytes (NDJSON) or characters (CSV) of one line
# An XLSX is a zip: its members unpacked may be far larger than the upload. openpyxl holds the
# shared strings in memory, so a zip that would unpack beyond this is refused before opening.
MAX_XLSX_EXPANDED = 256 << 20
DELIMITERS = ",;\t"


class FileError(OSError):
    """The file cannot be read at all (missing, not the format it claims, a zip bomb)."""


class BadLine:
    """A line that cannot be split into cells or decoded: refused, the others still read."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail


class Source:
    """One file to import: its kind, and how far reading it has got (for the progress bar)."""

    def __init__(self, path: Path, name: str | None = None):
        self.path = Path(path)
        self.name = name or self.path.name
        try:
            self.size = self.path.stat().st_size
            with self.path.open("rb") as handle:
                head = handle.read(512)
        except OSError as exc:
            raise FileError(f"{self.name}: {exc.strerror or exc}") from None
        self.kind = _kind(self.path, head)
        self._raw: Any = None

    def position(self) -> int:
        """Bytes read so far (of the compressed file, for XLSX): progress, not exact."""
        try:
            return self._raw.tell() if self._raw is not None and not self._raw.closed else 0
        except (OSError, ValueError):
            return 0

    def rows(self) -> Iterator[tuple[int, list | BadLine]]:
        """(line or row number, cells) of a CSV or XLSX file."""
        return self._xlsx_rows() if self.kind == "xlsx" else self._csv_rows()

    def json_lines(self) -> Iterator[tuple[int, Any]]:
        """(line, decoded value or BadLine) of an NDJSON file; blank lines skipped."""
        with self.path.open("rb") as handle:
            self._raw = handle
            line = 0
            while True:
                data = handle.readline(MAX_LINE)
                if not data:
                    return
                line += 1
                if len(data) == MAX_LINE and not data.endswith(b"\n"):
                    _skip_line(handle)
                    yield line, BadLine("line_too_long", f"line longer than {MAX_LINE} bytes")
                    continue
                if not data.strip():
                    continue
                try:
                    yield line, orjson.loads(data)
                except orjson.JSONDecodeError as exc:
                    yield line, BadLine("invalid_json", f"line is not JSON: {exc}")

    def _csv_rows(self) -> Iterator[tuple[int, list | BadLine]]:
        with self.path.open("rb") as raw:
            self._raw = raw
            # utf-8-sig: spreadsheets write a byte-order mark; an undecodable byte becomes U+FFFD
            # (and the name it is in is refused as unknown), never an exception mid-file.
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
            too_long: set[int] = set()
            lines = _bounded_lines(text, too_long)
            first = next(lines, None)
            if first is None:
                return
            delimiter = max(DELIMITERS, key=first.count)
            reader = csv.reader(_chain(first, lines), delimiter=delimiter)
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield reader.line_num, BadLine("bad_line", f"line cannot be split into cells: {exc}")
                    continue
                if reader.line_num in too_long:
                    yield reader.line_num, BadLine("line_too_long", f"line longer than {MAX_LINE} characters")
                else:
                    yield reader.line_num, cells

    def _xlsx_rows(self) -> Iterator[tuple[int, list | BadLine]]:
        import openpyxl  # only imports that read a spreadsheet pay for it

        with self.path.open("rb") as raw:
            self._raw = raw
            try:
                with zipfile.ZipFile(raw) as archive:
                    expanded = sum(member.file_size for member in archive.infolist())
                if expanded > MAX_XLSX_EXPANDED:
                    raise FileError(f"{self.name}: unpacks to {expanded} bytes (at most {MAX_XLSX_EXPANDED})")
                raw.seek(0)
                book = openpyxl.load_workbook(raw, read_only=True, data_only=True)
            except FileError:
                raise
            except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a bad file
                raise FileError(f"{self.name}: not a readable XLSX workbook ({type(exc).__name__}: {exc})") from None
            try:
                sheet = book.worksheets[0]
                # PIHPS' workbooks declare a stale size (A1:C1): read-only mode trusts it unless reset.
                sheet.reset_dimensions()
                for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                    yield number, list(row)
            finally:
                book.close()


def _kind(path: Path, head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if path.suffix.lower() in (".ndjson", ".jsonl", ".json") or head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return "ndjson"
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return "xlsx"  # named so but not a zip: openpyxl says why
    return "csv"


def _bounded_lines(text: io.TextIOWrapper, too_long: set[int]) -> Iterator[str]:
    """Lines of at most MAX_LINE characters; a longer one is consumed and stands as empty."""
    number = 0
    while True:
        line = text.readline(MAX_LINE)
        if not line:
            return
        number += 1
        if len(line) == MAX_LINE and not line.endswith("\n"):
            while (rest := text.readline(MAX_LINE)) and not rest.endswith("\n"):
                pass
            too_long.add(number)
            line = "\n"
        yield line


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _skip_line(handle) -> None:
    while (rest := handle.readline(MAX_LINE)) and not rest.endswith(b"\n"):
        pass
