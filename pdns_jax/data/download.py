"""Fetches the datasets that have a public URL, verified by sha256 before use.

  python -m pdns_jax.data.download ml100k [--data_dir D] [--base_url U]
  python -m pdns_jax.data.download gowalla [--data_dir D] [--base_url U]

Files land in the data folder (default: $PDNS_DATA_DIR, else
~/.cache/pdns_jax/data) where the loaders look for them. Each download goes to
a temporary file beside its target and is moved into place only once its hash
matches, so a corrupted or interrupted download never enters the folder. A
file already in place and matching is not fetched again. Douban, Taobao and
Tmall have no stable public URL (or need an account); see
`python -m pdns_jax.data.stats` for how to get them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.client
import os
import pathlib
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from typing import Optional

import numpy as np

from pdns_jax.data.core import DataError
from pdns_jax.data.gowalla import read_user_lists
from pdns_jax.data.sources import HOW_TO_OBTAIN, resolve_data_dir


@dataclasses.dataclass(frozen=True)
class Remote:
  """One file to fetch.

  Attributes:
    name: file name under the base URL.
    target: path of the verified file under the data folder.
    sha256: expected hash of the target: of its bytes, or of its interaction
      pairs where `pairs_hash` (the original bytes are not known here).
    member: the zip member to extract as the target, where `name` is a zip.
    pairs_hash: hash the sorted unique (user, item) int64 pairs of a
      LightGCN-format file instead of its bytes.
  """

  name: str
  target: str
  sha256: str
  member: Optional[str] = None
  pairs_hash: bool = False


# Hashes from ../shared/data/*/SOURCE.md; Gowalla's train.txt one is
# pairs_sha256 of ../shared/data/gowalla/train.txt.gz (same pairs as upstream).
SOURCES = {
    "ml100k": ("https://files.grouplens.org/datasets/movielens", (
        Remote("ml-100k.zip", "ml-100k/u.data",
               "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
               member="ml-100k/u.data"),)),
    "gowalla": ("https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/gowalla", (
        Remote("train.txt", "gowalla/train.txt",
               "d453bfc18e5613d6310ab05f7ebc1c6c724ee913dc31c769d1c8743c678d27f7",
               pairs_hash=True),
        Remote("test.txt", "gowalla/test.txt",
               "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3"))),
}


def file_sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def pairs_sha256(path: pathlib.Path) -> str:
  """sha256 of the sorted unique (user, item) pairs of a `user item item ...` file.

  Independent of line and item order, which differ between copies of Gowalla's
  train.txt that hold the same interactions.
  """
  users, items = read_user_lists(path)
  pairs = np.unique(np.stack([users, items], 1), axis=0).astype("<i8")
  return hashlib.sha256(pairs.tobytes()).hexdigest()


def _verified(path: pathlib.Path, remote: Remote) -> bool:
  try:
    actual = pairs_sha256(path) if remote.pairs_hash else file_sha256(path)
  except DataError:
    return False  # not even parseable: certainly not the expected file
  return actual == remote.sha256


def _fetch(url: str, out, timeout: float) -> None:
  with urllib.request.urlopen(url, timeout=timeout) as response:
    shutil.copyfileobj(response, out, 1 << 20)


def download(dataset: str, data_dir: Optional[str] = None,
             base_url: Optional[str] = None, timeout: float = 60.0) -> list[pathlib.Path]:
  """Fetches and verifies `dataset`'s files into the data folder.

  Args:
    dataset: "ml100k" or "gowalla".
    data_dir: the data folder; None = $PDNS_DATA_DIR, else the per-user cache.
    base_url: replaces the public URL's folder (a mirror, or a test server).
    timeout: seconds to wait on the network.

  Returns:
    The verified files.

  Raises:
    DataError: without network access (saying where to put the files by
      hand), or when a download does not match its sha256 (it is deleted).
  """
  if dataset not in SOURCES:
    raise DataError(f"no public download for {dataset!r}; downloadable: "
                    f"{sorted(SOURCES)}")
  default_url, remotes = SOURCES[dataset]
  base_url = (base_url or default_url).rstrip("/")
  folder = resolve_data_dir(data_dir)
  done = []
  for remote in remotes:
    target = folder / remote.target
    if not (target.is_file() and _verified(target, remote)):
      _download_one(f"{base_url}/{remote.name}", target, remote, dataset, timeout)
    done.append(target)
  return done


def _download_one(url: str, target: pathlib.Path, remote: Remote, dataset: str,
                  timeout: float) -> None:
  """Downloads to temp files beside `target`; renames only a verified file."""
  target.parent.mkdir(parents=True, exist_ok=True)
  temps = []

  def temp_file():
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                suffix=".part")
    temps.append(name)
    return os.fdopen(fd, "wb"), pathlib.Path(name)

  try:
    out, fetched = temp_file()
    with out:
      try:
        _fetch(url, out, timeout)
      except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise DataError(
            f"{dataset}: could not download {url} ({e}). "
            f"Without network access, get the file elsewhere and put it at "
            f"{target} ({HOW_TO_OBTAIN.get(dataset, '')}); this command "
            "then verifies it") from None
    if remote.member:
      out, extracted = temp_file()
      with out:
        try:
          with zipfile.ZipFile(fetched) as archive, archive.open(remote.member) as src:
            shutil.copyfileobj(src, out, 1 << 20)
        except (zipfile.BadZipFile, KeyError, EOFError, OSError) as e:
          raise DataError(f"{dataset}: {url} is not a zip holding {remote.member} "
                          f"({e}); nothing was kept") from None
      fetched = extracted
    if not _verified(fetched, remote):
      raise DataError(f"{dataset}: {url} does not match its sha256 "
                      f"{remote.sha256[:16]}... (corrupted or changed upstream); "
                      f"it was deleted and {target} left as it was")
    os.replace(fetched, target)
  finally:
    for name in temps:
      if os.path.exists(name):
        os.remove(name)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("dataset", choices=sorted(SOURCES))
  parser.add_argument("--data_dir", default=None,
                      help="data folder (default: $PDNS_DATA_DIR, else "
                           "~/.cache/pdns_jax/data)")
  parser.add_argument("--base_url", default=None,
                      help="folder URL to fetch from instead of the public one")
  parser.add_argument("--timeout", type=float, default=60.0)
  args = parser.parse_args(argv)
  try:
    paths = download(args.dataset, args.data_dir, args.base_url, args.timeout)
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  for path in paths:
    print(f"verified {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
