"""Delimited integer tables streamed in chunks, for files too big to hold.

The raw Tianchi logs are gigabytes, so they are never held as lines: each
chunk of whole lines is parsed at C speed by numpy and only the chosen integer
columns survive. A chunk numpy rejects is parsed again line by line, so an
error names the file and line, and inputs numpy is stricter about than Python
(`1_0`, odd spacing) still load the same as through `io.parse_ints`.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import pathlib
import warnings
import zlib
from typing import Iterator, Optional

import numpy as np

from pdns_jax.data.core import DataError
from pdns_jax.data.io import open_binary, parse_ints

# About 400k Taobao rows a chunk: big enough that per-chunk numpy overhead
# vanishes, small enough that a chunk's text and its parse stay a few 10s of MB.
CHUNK_BYTES = 16 << 20
# A longer "line" means the file is not the expected text table (binary data
# without newlines would otherwise be buffered whole).
MAX_LINE_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class TableSpec:
  """The layout of one delimited text table of integers.

  Attributes:
    sep: field separator; " " means any run of whitespace.
    num_fields: fields every line must have.
    columns: the fields to keep, in the order they are returned.
    header: a line 1 starting with this is a header and skipped.
  """

  sep: str
  num_fields: int
  columns: tuple[int, ...]
  header: Optional[str] = None


def plain_or_gz(path: pathlib.Path) -> Optional[pathlib.Path]:
  """`path` if it is a file, else `path.gz` if that is, else None."""
  for candidate in (pathlib.Path(path), pathlib.Path(f"{path}.gz")):
    if candidate.is_file():
      return candidate
  return None


def iter_table(path: pathlib.Path, spec: TableSpec,
               chunk_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
  """Yields int64 (rows, len(spec.columns)) arrays, one per chunk of the file.

  Args:
    path: the table, plain or gzipped (`.gz`).
    spec: its layout.
    chunk_bytes: bytes read per chunk (tests use tiny chunks).

  Raises:
    DataError: naming file and line for a malformed line, bad encoding or a
      truncated gzip; an empty file also raises, after yielding nothing.
  """
  rows = 0
  for first_line, text in _iter_text_chunks(path, chunk_bytes):
    if first_line == 1 and spec.header and text.startswith(spec.header):
      text = text[text.index("\n") + 1:] if "\n" in text else ""
      first_line = 2
    table = _parse_chunk(text, first_line, path, spec)
    rows += len(table)
    if len(table):
      yield table
  if rows == 0:
    raise DataError(f"{path}: the file is empty (no data lines)")


def _iter_text_chunks(path: pathlib.Path, chunk_bytes: int) -> Iterator[tuple[int, str]]:
  """Yields (number of the first line, text of whole lines) chunk by chunk."""
  path = pathlib.Path(path)
  lineno, pending = 1, b""
  try:
    with open_binary(path) as f:
      while True:
        block = f.read(chunk_bytes)
        if not block:
          break
        pending += block
        cut = pending.rfind(b"\n") + 1
        if cut == 0:
          if len(pending) > MAX_LINE_BYTES:
            raise DataError(f"{path}, line {lineno}: longer than {MAX_LINE_BYTES} "
                            "bytes; this is not a text table of the expected format")
          continue
        whole, pending = pending[:cut], pending[cut:]
        yield lineno, _decode(whole, path, lineno)
        lineno += whole.count(b"\n")
      if pending:
        yield lineno, _decode(pending, path, lineno)
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise DataError(f"{path}: corrupt or truncated gzip after line {lineno} ({e}); "
                    "download the file again") from e


def _decode(data: bytes, path, first_line: int) -> str:
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = first_line + data.count(b"\n", 0, e.start)
    raise DataError(f"{path}, line {line}: not UTF-8 text ({e.reason})") from None


def _parse_chunk(text: str, first_line: int, path, spec: TableSpec) -> np.ndarray:
  """Parses with numpy; where numpy objects, line by line for the exact error."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # a chunk of blank lines: "no data"
      table = np.loadtxt(io.StringIO(text), dtype=np.int64, comments=None,
                         delimiter=spec.sep, usecols=spec.columns, ndmin=2)
    # numpy ignores unused extra fields; separators per row catch those.
    if text.count(spec.sep) == (spec.num_fields - 1) * len(table):
      return table
  except ValueError:
    pass
  return _parse_lines(text, first_line, path, spec)


def _parse_lines(text: str, first_line: int, path, spec: TableSpec) -> np.ndarray:
  rows = []
  for offset, line in enumerate(text.split("\n")):
    line = line.strip()
    if not line:
      continue
    fields = line.split() if spec.sep == " " else line.split(spec.sep)
    lineno = first_line + offset
    if len(fields) != spec.num_fields:
      raise DataError(f"{path}, line {lineno}: expected {spec.num_fields} fields "
                      f"separated by {spec.sep!r}, found {len(fields)}: {line[:80]!r}")
    rows.append(parse_ints(fields, path, lineno, columns=spec.columns))
  return np.array(rows, dtype=np.int64).reshape(-1, len(spec.columns))
