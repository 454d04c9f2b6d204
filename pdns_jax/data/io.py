"""Reading text data files line by line, with errors that name file and line."""

from __future__ import annotations

import gzip
import io
import pathlib
import zlib
from typing import Iterator, Sequence

from pdns_jax.data.core import DataError

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def open_binary(path: pathlib.Path, gunzip: bool = True):
  """Opens a data file for reading bytes, gunzipping `.gz` files transparently.

  Args:
    path: the file.
    gunzip: read a `.gz` file's content rather than its bytes.

  Raises:
    DataError: naming the file where the system refuses to open it
      (permissions, a folder in its place), instead of a bare OSError.
  """
  path = pathlib.Path(path)
  try:
    if gunzip and path.suffix == ".gz":
      return gzip.open(path, "rb")
    return open(path, "rb")
  except OSError as e:
    raise DataError(f"{path}: cannot read the file ({e.strerror or e}); check that "
                    "it is a readable file, not a folder") from None


def open_text(path: pathlib.Path):
  """Opens a UTF-8 text file, gunzipping `.gz` files transparently."""
  return io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="strict")


def iter_rows(path: pathlib.Path, sep: str | None = None,
              skip_header: bool = False) -> Iterator[tuple[int, list[str]]]:
  """Yields (line number, fields) for each non-blank line, streaming.

  Raises:
    DataError: naming the file (and line) for a truncated gzip or bad encoding.
  """
  lineno = 0
  try:
    with open_text(path) as f:
      for lineno, line in enumerate(f, start=1):
        if skip_header and lineno == 1:
          continue
        line = line.strip()
        if line:
          yield lineno, line.split(sep)
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise DataError(f"{path}: corrupt or truncated gzip after line {lineno} ({e}); "
                    "download the file again") from e
  except UnicodeDecodeError as e:
    raise DataError(f"{path}, line {lineno + 1}: not UTF-8 text ({e})") from e


def parse_ints(fields: Sequence[str], path, lineno: int, expected: int | None = None,
               columns: Sequence[int] | None = None) -> list[int]:
  """Parses the chosen columns of one line as integers, or raises DataError.

  Args:
    fields: the line's fields.
    path, lineno: where the line is, for the error message.
    expected: the exact number of fields a line must have, if any.
    columns: the fields to parse; all where None.
  """
  if expected is not None and len(fields) != expected:
    raise DataError(f"{path}, line {lineno}: expected {expected} fields, "
                    f"found {len(fields)}: {' '.join(fields)[:80]!r}")
  chosen = fields if columns is None else [fields[c] for c in columns]
  try:
    values = [int(v) for v in chosen]
  except ValueError:
    values = None
  # Ids beyond int64 would fail later, deep inside numpy, without a line number.
  if values is None or any(not _INT64_MIN <= v <= _INT64_MAX for v in values):
    raise DataError(f"{path}, line {lineno}: expected integer ids, found "
                    f"{' '.join(chosen)[:80]!r}")
  return values
