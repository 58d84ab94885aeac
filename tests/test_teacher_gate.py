"""A teacher file is code. Real malicious files are built here — a TorchScript forward that
writes a file outside DFKD_HOME through torch.from_file(shared=True), one that reads
/etc/passwd into its predictions, one whose __setstate__ saves a file while it loads, a skops
FunctionTransformer whose function executes a string, zip bombs — and each is refused with
the op or type named: from the CLI (exit 2, one line, nothing written) and through the loader
the dashboard's upload uses (the confined checker process), never expanded or run in the
caller's process."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import REPO
from dfkd_core.errors import ModelError
from dfkd_core.models import sandbox
from dfkd_core.models.user_models import (SKOPS_TYPES, check_archive, check_model_file, load_user_model, script_aten_ops,
                                          script_refusals, skops_types, teacher_input_dim)
from user_helpers import RawReLUTeacher, csv, write_torchscript  # noqa: F401 (fixture)

needs_landlock = pytest.mark.skipif(sandbox.landlock_abi() == 0, reason="this kernel has no Landlock")


class WriteOutside(nn.Module):
    """Maps `target` shared and writes 'AAAA…' into it: a file created outside DFKD_HOME."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.net = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mapped = torch.from_file(self.target, shared=True, size=16, dtype=torch.uint8)
        mapped.fill_(65)
        return self.net(x) + mapped[:1].float() * 0.0


class ReadPasswd(nn.Module):
    """Shifts every prediction by the first bytes of /etc/passwd: server files read out."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        secret = torch.from_file("/etc/passwd", shared=False, size=4, dtype=torch.uint8)
        return self.net(x) + secret.float().sum()


class SaveWhileLoading(nn.Module):
    """Harmless forward; its __setstate__ (run by torch.jit.load itself) saves a file."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.scale = 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1) * self.scale

    @torch.jit.export
    def __getstate__(self) -> tuple[str, float, bool]:
        return (self.target, self.scale, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, float, bool]) -> None:
        self.target = state[0]
        self.scale = state[1]
        self.training = state[2]
        torch.save(torch.ones(1), self.target)


class Sneaky(nn.Module):
    """The op hides in a submodule's exported method, not in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


class _Inner(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1)

    @torch.jit.export
    def dump(self, x: torch.Tensor) -> None:
        torch.save(x, "/tmp/dfkd-sneaky")


def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "dfkd_core", *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=600)


# ---------------------------------------------------------------- the graph gate, in this process (no box needed)
def test_the_malicious_files_really_are_malicious_when_run_unguarded(tmp_path):
    """The files the refusals below are about do what they say when nothing stops them."""
    marker = tmp_path / "written"
    torch.jit.script(WriteOutside(str(marker)))(torch.zeros(2, 4))
    assert marker.read_bytes()[:4] == b"AAAA"
    out = torch.jit.script(ReadPasswd())(torch.zeros(1, 4))
    assert float(out) != float(torch.jit.script(ReadPasswd()).net(torch.zeros(1, 4)))
    saver = write_torchscript(tmp_path / "saver.pt", SaveWhileLoading(str(tmp_path / "saved")))
    assert not (tmp_path / "saved").exists()
    torch.jit.load(str(saver))  # loading alone runs __setstate__
    assert (tmp_path / "saved").exists()


def test_graph_gate_names_file_ops_in_forward_submodules_and_setstate(tmp_path):
    assert "aten::from_file in forward" in script_refusals(torch.jit.script(WriteOutside(str(tmp_path / "m"))))
    assert "aten::from_file in forward" in script_refusals(torch.jit.script(ReadPasswd()))
    assert script_refusals(torch.jit.script(Sneaky())) == ["aten::save in inner.dump"]
    scripted = torch.jit.script(SaveWhileLoading(str(tmp_path / "m")))
    assert "aten::save in __setstate__" in script_refusals(scripted)
    assert script_refusals(torch.jit.script(RawReLUTeacher())) == []  # an honest teacher passes
    ops = script_aten_ops()
    assert {"aten::linear", "aten::relu", "aten::conv2d", "aten::tanh", "aten::matmul"} <= ops
    assert not {"aten::from_file", "aten::save", "aten::wait", "aten::set_", "aten::_unsafe_index"} & ops


def test_a_file_op_is_refused_by_the_loader_before_any_forward(tmp_path):
    marker = tmp_path / "outside" / "marker"
    marker.parent.mkdir()
    path = write_torchscript(tmp_path / "evil.pt", WriteOutside(str(marker)))
    with pytest.raises(ModelError, match=r"is refused: it holds aten::from_file in forward"):
        load_user_model(path)
    assert not marker.exists()


# ---------------------------------------------------------------- from the CLI and the dashboard's loader
@needs_landlock
def test_malicious_torchscript_teachers_are_refused_from_the_cli_with_one_line(tmp_path, csv):
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = outside / "marker"
    evil = write_torchscript(tmp_path / "evil.pt", WriteOutside(str(marker)))
    reader = write_torchscript(tmp_path / "reader.pt", ReadPasswd())
    loader = write_torchscript(tmp_path / "loader.pt", SaveWhileLoading(str(outside / "setstate")))
    for path, said in ((evil, "aten::from_file in forward"), (reader, "aten::from_file in forward"),
                       (loader, "aten::save in __setstate__")):
        done = _cli("distill", "--teacher", str(path), "--data", str(csv), "--target", "y", "--sampler", "gaussian",
                    "--epochs", "1", "--quiet", "--json")
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, done.stderr
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert said in lines[0]
        assert done.stdout == ""
    assert not marker.exists() and not (outside / "setstate").exists()
    assert list(outside.iterdir()) == []


@needs_landlock
def test_the_dashboards_loader_checks_uploads_in_a_confined_process(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    evil = write_torchscript(tmp_path / "evil.pt", WriteOutside(str(outside / "marker")))
    loader = write_torchscript(tmp_path / "loader.pt", SaveWhileLoading(str(outside / "setstate")))
    with pytest.raises(ModelError, match="refused: it holds aten::from_file in forward"):
        check_model_file(evil)
    with pytest.raises(ModelError, match="loader.pt' is refused: it holds aten::save in __setstate__"):  # it ran boxed
        check_model_file(loader)
    assert teacher_input_dim(evil) is None  # what the Distill page calls on an upload
    assert list(outside.iterdir()) == []
    honest = write_torchscript(tmp_path / "honest.pt", RawReLUTeacher())
    assert check_model_file(honest) == {"kind": "torchscript", "in_features": 4}  # its first Linear
    sd = tmp_path / "sd.pt"
    torch.save(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).state_dict(), sd)
    assert teacher_input_dim(sd, "tanh") == 3


# ---------------------------------------------------------------- skops: an explicit list of types
def test_a_skops_function_that_executes_a_string_is_refused_by_name(tmp_path):
    import numpy.testing._private.utils as np_utils
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    marker = tmp_path / "pwned"
    model = FunctionTransformer(func=np_utils.runstring, kw_args={"dict": {}}).fit(np.zeros((2, 1)))
    path = tmp_path / "evil.skops"
    sio.dump(model, path)
    assert sio.get_untrusted_types(file=path) == ["numpy.testing._private.utils.runstring"]  # what prefixes let through
    types, refused = skops_types(path)
    assert "numpy.testing._private.utils.runstring" in refused
    assert "sklearn.preprocessing._function_transformer.FunctionTransformer" in refused  # not on the list either
    with pytest.raises(ModelError, match=r"never loaded .*FunctionTransformer.*runstring|never loaded .*runstring"):
        load_user_model(path)
    assert not marker.exists()


def test_skops_regressors_on_the_list_load(tmp_path):
    import skops.io as sio
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(0).normal(size=(80, 3))
    model = make_pipeline(StandardScaler(), HistGradientBoostingRegressor(max_iter=5)).fit(X, X.sum(1))
    path = tmp_path / "hgb.skops"
    sio.dump(model, path)
    types, refused = skops_types(path)
    assert refused == [] and set(types) <= SKOPS_TYPES
    kind, fn = load_user_model(path)
    assert kind == "skops" and np.allclose(fn(X[:5]), model.predict(X[:5]))


@needs_landlock
def test_a_skops_teacher_that_runs_code_is_refused_from_the_cli(tmp_path, csv):
    import numpy.testing._private.utils as np_utils
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    marker = tmp_path / "pwned"
    model = FunctionTransformer(func=np_utils.runstring, kw_args={"dict": {}}).fit(np.zeros((2, 4)))
    path = tmp_path / "evil.skops"
    sio.dump(model, path)
    done = _cli("distill", "--teacher", str(path), "--data", str(csv), "--target", "y", "--sampler", "evolution",
                "--epochs", "1", "--quiet")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "numpy.testing._private.utils.runstring" in done.stderr
    assert not marker.exists()


# ---------------------------------------------------------------- archives: checked from the zip directory
def _skops_bomb(path: Path, zeros: int = 2 * 10**9) -> Path:
    """A real skops file plus one .npy entry of `zeros` zero bytes, deflated (a few MB on disk)."""
    import skops.io as sio
    from sklearn.linear_model import LinearRegression

    sio.dump(LinearRegression().fit(np.eye(3), np.arange(3.0)), path)
    chunk = bytes(1 << 24)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("bomb.npy", "w", force_zip64=True) as out:
            for _ in range(zeros // len(chunk)):
                out.write(chunk)
    return path


def _declared_huge(path: Path, honest: Path, size: int = 0xFFFFFFF0) -> Path:
    """A TorchScript archive whose data entry's central-directory record declares `size` bytes (4 GiB)."""
    blob = bytearray(honest.read_bytes())
    with zipfile.ZipFile(honest) as zf:
        at = zf.start_dir
        target = next(i for i in zf.infolist() if "/data/" in i.filename).filename.encode()
    while blob[at:at + 4] == b"PK\x01\x02":
        n, extra, comment = (int.from_bytes(blob[at + k:at + k + 2], "little") for k in (28, 30, 32))
        if blob[at + 46:at + 46 + n] == target:
            blob[at + 24:at + 28] = size.to_bytes(4, "little")  # uncompressed size
            path.write_bytes(bytes(blob))
            return path
        at += 46 + n + extra + comment
    raise AssertionError("no central record for the data entry")


def test_a_skops_zip_bomb_is_refused_from_its_directory_before_anything_expands(tmp_path):
    bomb = _skops_bomb(tmp_path / "bomb.skops")
    assert bomb.stat().st_size < 5 * 10**6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelError, match=r"bomb\.npy' (expands to 2 GB|is compressed \d+:1)"):
        check_archive(bomb, "teacher")
    with pytest.raises(ModelError, match=r"bomb\.npy"):
        load_user_model(bomb)
    assert teacher_input_dim(bomb) is None  # the page's path: refused too, and never expanded in this process
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200_000  # KB: nothing was decompressed here


def test_a_torchscript_entry_declaring_a_huge_size_is_refused(tmp_path):
    honest = write_torchscript(tmp_path / "honest.pt", RawReLUTeacher())
    huge = _declared_huge(tmp_path / "huge.pt", honest)
    with zipfile.ZipFile(huge) as zf:
        assert max(i.file_size for i in zf.infolist()) == 0xFFFFFFF0
    with pytest.raises(ModelError, match=r"huge\.pt' is refused: its (stored entry .* declares \d+ bytes|entry .* expands)"):
        load_user_model(huge)
    check_archive(honest, "teacher")  # the honest archive passes the same checks


def test_archive_entry_count_and_total_size_are_capped(tmp_path, monkeypatch):
    many = tmp_path / "many.skops"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(10_001):
            zf.writestr(f"e{i}", b"")
    with pytest.raises(ModelError, match="at most 10000 entries. Got 10001"):
        check_archive(many, "teacher")
    honest = write_torchscript(tmp_path / "honest.pt", RawReLUTeacher())
    monkeypatch.setenv("DFKD_MAX_MEMORY_GB", "0.000001")
    with pytest.raises(ModelError, match=r"above the memory budget of 1e-06 GB \(DFKD_MAX_MEMORY_GB\)"):
        check_archive(honest, "teacher")


def test_the_dashboards_server_process_never_loads_a_users_model(tmp_path, csv, monkeypatch):
    """In the Streamlit server a user's file is only ever loaded by child processes."""
    from dfkd_core.models import user_models

    honest = write_torchscript(tmp_path / "honest.pt", RawReLUTeacher())
    monkeypatch.setattr(user_models, "_in_streamlit_server", lambda: True)
    with pytest.raises(ModelError, match="never loaded in the dashboard's server process"):
        load_user_model(honest)
    sd = tmp_path / "sd.pt"
    torch.save(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).state_dict(), sd)
    assert teacher_input_dim(sd, "tanh") == 4  # the page's question is answered by the checker process


def test_the_clis_json_lines_hold_null_where_a_number_is_nan():
    import json

    from dfkd_core.commands.distill import _finite

    row = {"test_rmse": float("nan"), "other": {"last": {"test_mae": float("inf")}}, "seeds": [1.0, float("-inf")], "n": 3}
    text = json.dumps(_finite(row), allow_nan=False)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"test_rmse": None, "other": {"last": {"test_mae": None}}, "seeds": [1.0, None], "n": 3}


def test_without_landlock_user_models_are_refused_on_an_exposed_server_unless_opted_in(monkeypatch):
    monkeypatch.setattr(sandbox, "_warned", False)
    monkeypatch.setenv("DFKD_EXPOSED", "1")
    monkeypatch.delenv("DFKD_ALLOW_UNCONFINED_MODELS", raising=False)
    with pytest.raises(ModelError, match="no Landlock.*exposed beyond loopback.*DFKD_ALLOW_UNCONFINED_MODELS=1"):
        sandbox.refuse_unconfined()
    monkeypatch.setenv("DFKD_ALLOW_UNCONFINED_MODELS", "1")
    with pytest.warns(RuntimeWarning, match="no Landlock"):
        sandbox.refuse_unconfined()
    monkeypatch.delenv("DFKD_EXPOSED")
    monkeypatch.delenv("DFKD_ALLOW_UNCONFINED_MODELS")
    sandbox.refuse_unconfined()  # loopback only: runs, the warning already said once


def test_a_dashboard_listening_beyond_loopback_marks_itself_exposed_for_its_workers(monkeypatch):
    import types

    monkeypatch.setenv("DFKD_EXPOSED", "0")  # recorded, so the variable is restored after the test
    fake = types.SimpleNamespace(get_option=lambda name: "127.0.0.1")
    monkeypatch.setitem(sys.modules, "streamlit.config", fake)
    assert sandbox.exposed() is False and os.environ["DFKD_EXPOSED"] == "0"
    fake.get_option = lambda name: "0.0.0.0"
    assert sandbox.exposed() is True and os.environ["DFKD_EXPOSED"] == "1"  # what jobs.submit passes on
