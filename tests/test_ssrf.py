"""The HTTP teacher cannot be turned against the server: real servers on 127.0.0.1 started here
stand in for a cloud metadata service, an internal service with secrets, a trickling server,
a redirect and a huge answer; each must be refused or cut off, and no error repeats an answer."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from user_helpers import ServedTeacher, write_csv

from dfkd_core.cli import main
from dfkd_core.errors import ConfigError, ModelError
from dfkd_core.models import http_teacher
from dfkd_core.models.http_teacher import HttpModel, note_server_address, post_json, resolve_endpoint

SECRET = "TOPSECRET-4b1d-internal-token"


class Recorder:
    """A loopback HTTP server that records every request and answers `body` with `status`
    (and `headers`): the metadata stand-in, the secret service, the redirect."""

    def __init__(self, status=200, body=b"{}", headers=(), host="127.0.0.1", port=0):
        recorder = self
        self.requests: list[tuple[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                recorder.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class RawServer:
    """A loopback TCP server that reads the request and then runs `talk(conn)`; it counts the
    bytes it could send and notes when the client hung up."""

    def __init__(self, talk):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/predict"
        self.sent, self.hung_up, self.talk = 0, threading.Event(), talk
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        conn.settimeout(30)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            self.talk(self, conn)
        except OSError:
            self.hung_up.set()
        finally:
            conn.close()

    def send(self, conn, data: bytes):
        conn.sendall(data)
        self.sent += len(data)

    def close(self):
        self.sock.close()


@pytest.fixture
def recorder():
    made = []

    def make(**kw):
        made.append(Recorder(**kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


# ---------------------------------------------------------------- refused before any request
@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/",
    "http://100.100.100.200/latest/meta-data/", "http://0.0.0.0:8080/"],
    ids=["aws-metadata", "ipv6-link-local", "ipv4-mapped", "alibaba-metadata", "this-host"])
def test_link_local_and_metadata_addresses_are_refused_whatever_the_allow_list(url, monkeypatch):
    monkeypatch.setenv("DFKD_TEACHER_HOSTS", "*")
    with pytest.raises(ModelError, match="link-local or cloud-metadata address, which is never queried"):
        resolve_endpoint(url)


def test_cli_teacher_on_the_metadata_address_is_refused_before_a_proxy_on_loopback_sees_anything(tmp_path, recorder, monkeypatch, capsys):
    proxy = recorder(body=b'{"predictions": [0]}')
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy"):  # a client that honoured a proxy would go through it
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.setenv("DFKD_TEACHER_HOSTS", "*")
    csv = write_csv(tmp_path / "plant.csv")
    code = main(["distill", "--teacher", "http://169.254.169.254/latest/meta-data/iam", "--data", str(csv), "--target", "y",
                 "--sampler", "gaussian", "--epochs", "2", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "never queried" in err[0], err
    assert proxy.requests == []


def test_a_name_resolving_to_the_metadata_address_is_refused_after_resolution(monkeypatch, recorder):
    meta = recorder()
    real = socket.getaddrinfo

    def fake(host, port, *a, **kw):
        if host == "metadata.internal":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return real(host, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    monkeypatch.setenv("DFKD_TEACHER_HOSTS", "metadata.internal")  # even named on the list
    with pytest.raises(ModelError, match=r"'metadata.internal' is refused: it is \(or resolves to\) 169.254.169.254"):
        HttpModel(f"http://metadata.internal:{meta.port}/")
    assert meta.requests == []


def test_the_connection_goes_to_the_address_that_was_checked_not_a_second_dns_answer(monkeypatch):
    checked = Recorder(body=b'{"predictions": [1.0, 2.0]}')
    try:
        other = Recorder(body=b'{"predictions": [9.0, 9.0]}', host="127.0.0.2", port=checked.port)
    except OSError:
        checked.close()
        pytest.skip("127.0.0.2 cannot be bound here")
    answers = iter(["127.0.0.1"])
    real = socket.getaddrinfo

    def rebinding(host, port, *a, **kw):  # first answer the checked address, then another one
        if host == "model.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "127.0.0.2"), port))]
        return real(host, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setenv("DFKD_TEACHER_HOSTS", "loopback")
    try:
        out = post_json(f"http://model.test:{checked.port}/predict", {"inputs": [[0.0], [1.0]]}, timeout=5)
        assert out == {"predictions": [1.0, 2.0]}
        assert len(checked.requests) == 1 and other.requests == []
    finally:
        checked.close()
        other.close()


@pytest.mark.parametrize("hosts, exposed, allowed", [
    (None, False, True), (None, True, False), ("none", False, False), ("model.lab", False, False),
    ("127.0.0.1", True, True), ("127.0.0.0/8", True, True), ("loopback", True, True)],
    ids=["default-cli", "default-exposed", "none", "other-host", "ip", "cidr", "loopback-keyword"])
def test_the_allow_list_decides_which_hosts_may_be_asked(hosts, exposed, allowed, monkeypatch, recorder):
    server = recorder()
    if hosts is not None:
        monkeypatch.setenv("DFKD_TEACHER_HOSTS", hosts)
    monkeypatch.setenv("DFKD_SERVER_EXPOSED", "1" if exposed else "")
    if allowed:
        assert resolve_endpoint(server.url)[3] == "127.0.0.1"
    else:
        with pytest.raises(ModelError, match="is not on the allowed list"):
            HttpModel(server.url)
    assert server.requests == []  # checking never sends anything


@pytest.mark.parametrize("address, exposed", [("127.0.0.1", False), ("localhost", False), ("::1", False),
                                              ("0.0.0.0", True), ("", True), ("192.168.1.20", True)])
def test_a_dashboard_listening_beyond_loopback_allows_no_host_by_default(address, exposed, monkeypatch):
    assert note_server_address(address) is exposed
    with (pytest.raises(ModelError, match="not on the allowed list") if exposed else _nothing()):
        resolve_endpoint("http://127.0.0.1:9/predict")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_config_with_a_refused_endpoint_is_refused_by_validate(monkeypatch, tmp_path):
    from user_helpers import fast_config

    monkeypatch.setenv("DFKD_SERVER_EXPOSED", "1")
    cfg = fast_config(teacher_file="http://127.0.0.1:9/predict", data_file=str(write_csv(tmp_path / "p.csv")), target="y",
                      samplers=("gaussian",))
    with pytest.raises(ConfigError, match="not on the allowed list"):
        cfg.validate()


# ---------------------------------------------------------------- what the server answers
def test_a_redirect_is_never_followed(recorder):
    internal = recorder(body=b'{"predictions": [0]}')
    redirect = recorder(status=302, headers=[("Location", internal.url + "admin")])
    with pytest.raises(ModelError, match=r"answered a redirect \(HTTP 302\), which is never followed"):
        HttpModel(redirect.url, retries=0)(np.zeros((1, 2)))
    assert len(redirect.requests) == 1 and internal.requests == []


@pytest.mark.parametrize("status, body", [(200, '{"secrets": ["%s"]}'), (200, "<html>%s</html>"), (403, "denied: %s"),
                                          (200, '{"predictions": "%s"}')],
                         ids=["json-without-predictions", "not-json", "http-error", "text-predictions"])
def test_errors_never_repeat_what_the_server_answered(status, body, recorder):
    service = recorder(status=status, body=(body % SECRET).encode())
    with pytest.raises(ModelError) as refused:
        HttpModel(service.url, retries=0)(np.zeros((2, 3)))
    assert SECRET not in str(refused.value) and "\n" not in str(refused.value)
    assert len(service.requests) == 1


def test_a_secret_answering_service_is_not_shown_by_the_cli(tmp_path, recorder, capsys):
    service = recorder(body=('{"users": ["%s"]}' % SECRET).encode())
    csv = write_csv(tmp_path / "plant.csv")
    code = main(["distill", "--teacher", service.url, "--data", str(csv), "--target", "y", "--sampler", "gaussian",
                 "--epochs", "2", "--quiet"])
    captured = capsys.readouterr()
    assert code == 2 and SECRET not in captured.err + captured.out
    said = [line for line in captured.err.strip().splitlines() if line.startswith("error: ")]
    assert len(said) == 1 and captured.err.strip().splitlines()[-1] == said[0]


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_a_trickling_server_is_cut_off_by_the_total_deadline(phase):
    """One byte every 50 ms for 10 s: a deadline per read (each byte arrives in time) would
    wait for all of it; the total deadline of 0.5 s ends the request long before."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"

    def talk(server, conn):
        if phase == "body":
            server.send(conn, head)
        for _ in range(200):
            server.send(conn, b" " if phase == "body" else head[:1])
            time.sleep(0.05)

    server = RawServer(talk)
    try:
        with pytest.raises(ModelError, match=r"failed after 1 tries \(timeout 0.5 s\): no answer within the timeout"):
            HttpModel(server.url, timeout=0.5, retries=0)(np.zeros((1, 2)))
        assert server.hung_up.wait(5)  # the client closed the connection ...
        assert server.sent < 200  # ... long before the trickle was over
    finally:
        server.close()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-length"])
def test_a_huge_answer_is_refused_at_the_size_cap_without_reading_it_whole(declared):
    size = 1 << 30

    def talk(server, conn):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        head += (b"Content-Length: %d\r\n" % size) if declared else b"Connection: close\r\n"
        server.send(conn, head + b"\r\n[")
        chunk = b"0," * 32768
        while server.sent < size:
            server.send(conn, chunk)

    server = RawServer(talk)
    try:
        with pytest.raises(ModelError, match=r"answered more than 16 MiB, the cap on an answer"):
            HttpModel(server.url, timeout=30, retries=0)(np.zeros((1, 2)))
        assert server.hung_up.wait(10)
        assert server.sent < 4 * http_teacher.MAX_RESPONSE_BYTES
    finally:
        server.close()


def test_an_allowed_teacher_on_loopback_still_answers():
    with ServedTeacher() as served:
        out = HttpModel(served.url)(np.ones((3, 4)))
    assert out.shape == (3,) and np.isfinite(out).all()


def test_a_dashboard_started_on_all_interfaces_refuses_an_endpoint_on_its_loopback():
    from streamlit import config as st_config
    from test_app_pages import errors, start_app
    from test_app_your_model import TINY, fill_your_model, spec_table

    from dfkd_core.runs.runstore import RunStore

    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")  # as `streamlit run app.py --server.address 0.0.0.0`
    try:
        with ServedTeacher() as served:
            at = fill_your_model(start_app("pages/distill.py", query=TINY), served.url, spec_table())
            assert any("is not on the allowed list" in e for e in errors(at)), errors(at)
            assert served.handler.calls == 0 and RunStore().list_runs().empty
    finally:
        st_config.set_option("server.address", before)
