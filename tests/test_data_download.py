"""Downloads against a real HTTP server on 127.0.0.1 (no mocking of the HTTP layer):
checksums, zip extraction, a server dying mid-transfer, an unreachable mirror, offline mode."""
from __future__ import annotations

import functools
import gzip
import hashlib
import shutil
import socket
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from dfkd_core.data import get_dataset, load_dataset
from dfkd_core.data.download import download_file
from dfkd_core.errors import DatasetError


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


class DyingHandler(QuietHandler):
    """Promises 100 000 bytes, sends 1000, closes the connection."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"1.0," * 250)
        self.wfile.flush()
        self.close_connection = True


def _serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture
def serve_dir():
    """serve_dir(folder) -> base URL of an HTTP server on 127.0.0.1 serving `folder`."""
    servers = []

    def start(folder: Path) -> str:
        server, url = _serve(functools.partial(QuietHandler, directory=str(folder)))
        servers.append(server)
        return url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dying_server():
    server, url = _serve(DyingHandler)
    yield url
    server.shutdown()
    server.server_close()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_from_mirror_verifies_checksum_and_parses(shared_data, serve_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DFKD_DATA_MIRROR", serve_dir(shared_data))
    calls = []
    data = load_dataset("compactiv", data_dir=tmp_path / "data", progress=lambda done, total, label: calls.append((done, total, label)))
    saved = tmp_path / "data" / "keel" / "compactiv.dat"
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == get_dataset("compactiv").sha256[0]
    assert data.X.shape == (8192, 21)
    assert calls[-1] == (saved.stat().st_size, saved.stat().st_size, "keel/compactiv.dat")
    assert _files_under(tmp_path / "data") == ["keel/compactiv.dat"]


def test_wrong_checksum_raises_and_leaves_no_file(shared_data, serve_dir, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "keel").mkdir(parents=True)
    text = (shared_data / "keel/compactiv.dat").read_text()
    (mirror / "keel/compactiv.dat").write_text(text.replace("95.0\n", "96.0\n", 1))
    monkeypatch.setenv("DFKD_DATA_MIRROR", serve_dir(mirror))
    with pytest.raises(DatasetError, match=r"Checksum mismatch for keel/compactiv\.dat .* the file was not saved"):
        load_dataset("compactiv", data_dir=tmp_path / "data")
    assert _files_under(tmp_path / "data") == []


def test_server_dying_mid_transfer_raises_and_leaves_no_partial_file(dying_server, tmp_path):
    dest = tmp_path / "data" / "keel" / "compactiv.dat"
    with pytest.raises(DatasetError, match=r"Cannot download keel/compactiv\.dat from http://127\.0\.0\.1:\d+/keel/compactiv\.dat"):
        download_file(dying_server + "keel/compactiv.dat", dest, relpath="keel/compactiv.dat")
    assert _files_under(tmp_path / "data") == []


def test_unreachable_mirror_names_the_file_the_url_and_the_target_path(tmp_path, monkeypatch):
    mirror = _closed_port_url()
    monkeypatch.setenv("DFKD_DATA_MIRROR", mirror)
    dest = tmp_path / "data" / "protein" / "esol_aa_composition.csv"
    with pytest.raises(DatasetError) as info:
        load_dataset("protein", data_dir=tmp_path / "data")
    message = str(info.value)
    assert "protein/esol_aa_composition.csv" in message
    assert mirror + "protein/esol_aa_composition.csv" in message
    assert f"put it at {dest}" in message
    assert _files_under(tmp_path / "data") == []


def test_offline_mode_names_the_public_url_and_the_target_path_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("DFKD_OFFLINE", "1")
    monkeypatch.setenv("DFKD_DATA_MIRROR", _closed_port_url())
    dest = tmp_path / "data" / "keel" / "pole.dat"
    with pytest.raises(DatasetError, match=r"keel/pole\.dat is missing .* downloads are off \(DFKD_OFFLINE=1\)") as info:
        load_dataset("pole", data_dir=tmp_path / "data")
    assert "https://sci2s.ugr.es/keel/dataset/data/regression/pole.zip" in str(info.value)
    assert f"put it at {dest}" in str(info.value)


def test_download_false_never_fetches(tmp_path):
    with pytest.raises(DatasetError, match=r"libsvm/cpusmall is missing .* download=False"):
        load_dataset("cpusmall", data_dir=tmp_path, download=False)


def test_keel_zip_is_extracted_to_the_dat_file_and_checked(shared_data, serve_dir, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "mv.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(shared_data / "keel/mv.dat", "mv.dat")
    dest = tmp_path / "data" / "keel" / "mv.dat"
    download_file(serve_dir(served) + "mv.zip", dest, sha256=get_dataset("mv").sha256[0], member="mv.dat")
    assert dest.read_bytes() == (shared_data / "keel/mv.dat").read_bytes()
    assert _files_under(tmp_path / "data") == ["keel/mv.dat"]


def test_zip_member_bound_for_a_gz_path_is_stored_gzipped(serve_dir, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "uji.zip", "w") as zf:
        zf.writestr("UJIndoorLoc/trainingData.csv", "WAP001\n1\n")
    dest = tmp_path / "data" / "indoorloc" / "trainingData.csv.gz"
    download_file(serve_dir(served) + "uji.zip", dest, member="trainingData.csv")
    assert gzip.decompress(dest.read_bytes()) == b"WAP001\n1\n"


def test_zip_without_the_member_raises_and_leaves_nothing(serve_dir, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "a.zip", "w") as zf:
        zf.writestr("other.csv", "1\n")
    with pytest.raises(DatasetError, match=r"Cannot extract slice_localization_data\.csv from http://.*a\.zip"):
        download_file(serve_dir(served) + "a.zip", tmp_path / "data" / "ct.csv", member="slice_localization_data.csv")
    assert _files_under(tmp_path / "data") == []


def test_http_404_raises_dataset_error(serve_dir, tmp_path):
    with pytest.raises(DatasetError, match=r"Cannot download x\.csv from .*x\.csv \(HTTP 404 "):
        download_file(serve_dir(tmp_path) + "x.csv", tmp_path / "data" / "x.csv")


def test_auto_download_does_not_fetch_mnist_training_images(shared_data, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(shared_data / "mnist", data / "mnist")
    monkeypatch.setenv("DFKD_DATA_MIRROR", _closed_port_url())  # a fetch would fail loudly
    loaded = load_dataset("mnist", data_dir=data)
    assert loaded.X.shape == (10000, 1, 28, 28) and loaded.test_start is None
    assert "Offline" in loaded.note


def test_repeated_loads_reuse_the_parsed_arrays(shared_data):
    first = load_dataset("puma32h", data_dir=shared_data)
    second = load_dataset("puma32h", data_dir=shared_data)
    assert first.X is second.X
    assert not first.X.flags.writeable
    np.testing.assert_array_equal(first.y, second.y)
