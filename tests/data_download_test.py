"""The downloader against a local HTTP server serving ../shared/data copies."""

import functools
import gzip
import http.server
import shutil
import socket
import threading
import zipfile

import pytest

from conftest import SHARED_DATA
from pdns_jax.data import DataError, download, gowalla, movielens


@pytest.fixture(scope="module")
def server(tmp_path_factory):
  """Serves good/ (true copies) and bad/ (one byte changed) on 127.0.0.1."""
  root = tmp_path_factory.mktemp("served")
  good, bad = root / "good", root / "bad"
  with zipfile.ZipFile(tmp_path_factory.mktemp("zip") / "ml-100k.zip", "w") as z:
    z.write(SHARED_DATA / "ml-100k" / "u.data", "ml-100k/u.data")
  (good / "gowalla").mkdir(parents=True)
  shutil.copy(z.filename, good)
  with gzip.open(SHARED_DATA / "gowalla" / "train.txt.gz", "rb") as f:
    (good / "gowalla" / "train.txt").write_bytes(f.read())
  shutil.copy(SHARED_DATA / "gowalla" / "lightgcn_raw" / "test.txt", good / "gowalla")
  shutil.copytree(good, bad)
  for name in ("gowalla/train.txt", "gowalla/test.txt"):
    text = (bad / name).read_text()
    (bad / name).write_text(text.replace(" 7 ", " 8 ", 1))  # still well-formed
  with zipfile.ZipFile(bad / "ml-100k.zip", "w") as z:
    z.writestr("ml-100k/u.data", (SHARED_DATA / "ml-100k" / "u.data").read_text()[:-2])
  handler = functools.partial(_QuietHandler, directory=str(root))
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{httpd.server_address[1]}"
  httpd.shutdown()
  httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

  def log_message(self, *args):
    pass


def _closed_port_url():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_ml100k_download_verifies_and_loads(server, tmp_path):
  paths = download.download("ml100k", str(tmp_path), base_url=f"{server}/good")
  assert paths == [tmp_path / "ml-100k" / "u.data"]
  assert movielens.load(tmp_path).num_interactions == 100_000
  assert sorted(p.name for p in (tmp_path / "ml-100k").iterdir()) == ["u.data"]
  # Present and verified: not fetched again (the server is not asked).
  assert download.download("ml100k", str(tmp_path), base_url=_closed_port_url()) == paths


def test_gowalla_download_verifies_and_loads(server, tmp_path):
  assert download.main(["gowalla", "--data_dir", str(tmp_path),
                        "--base_url", f"{server}/good/gowalla"]) == 0
  data = gowalla.load(tmp_path)
  assert (data.num_users, data.num_items, data.num_interactions) == (29_858, 40_981, 1_027_370)


@pytest.mark.parametrize("dataset,folder", [("ml100k", "bad"), ("gowalla", "bad/gowalla")])
def test_corrupted_download_is_rejected_and_not_kept(server, tmp_path, dataset, folder):
  with pytest.raises(DataError, match="does not match its sha256"):
    download.download(dataset, str(tmp_path), base_url=f"{server}/{folder}")
  assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_replaces_a_corrupted_file_in_place(server, tmp_path):
  target = tmp_path / "gowalla" / "test.txt"
  target.parent.mkdir()
  target.write_text("0 1\n")
  download.download("gowalla", str(tmp_path), base_url=f"{server}/good/gowalla")
  assert download.file_sha256(target) == download.SOURCES["gowalla"][1][1].sha256


def test_no_network_says_where_to_put_the_files(tmp_path, capsys):
  assert download.main(["ml100k", "--data_dir", str(tmp_path),
                        "--base_url", _closed_port_url(), "--timeout", "5"]) == 1
  message = capsys.readouterr().err
  assert "could not download" in message
  assert str(tmp_path / "ml-100k" / "u.data") in message
  assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_missing_remote_file_is_an_error(server, tmp_path):
  with pytest.raises(DataError, match="could not download.*404"):
    download.download("gowalla", str(tmp_path), base_url=f"{server}/nowhere")


def test_pairs_hash_ignores_line_and_item_order(tmp_path):
  a = tmp_path / "a.txt"
  b = tmp_path / "b.txt"
  a.write_text("0 1 2\n1 3\n")
  b.write_text("1 3\n0 2 1\n")
  assert download.pairs_sha256(a) == download.pairs_sha256(b)
