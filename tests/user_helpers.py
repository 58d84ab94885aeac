"""Files a user would bring, written by the tests: a CSV, TorchScript and state_dict teachers,
a skops regressor, an input spec, and HTTP teachers served on 127.0.0.1."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

FEATURES = ("load", "speed", "temp", "ratio")
MEANS = np.array([0.0, 100.0, 1.0, -3.0])
SCALES = np.array([1.0, 10.0, 0.1, 5.0])


def truth(X: np.ndarray) -> np.ndarray:
    return np.sin(X[:, 0]) + 0.05 * X[:, 1] + 3.0 * X[:, 2] + 0.1 * X[:, 3] ** 2


def write_csv(path: Path, n: int = 400, seed: int = 0) -> Path:
    """A table in raw units far from standardized (means up to 100), target 'y'."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * SCALES + MEANS
    df = pd.DataFrame(X, columns=list(FEATURES))
    df["y"] = truth(X)
    df.to_csv(path, index=False)
    return path


class RawReLUTeacher(nn.Module):
    """Two ReLU hidden layers on raw inputs (its own scaling inside), output (n, 1)."""

    def __init__(self, d: int = 4, outputs: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, outputs))
        self.register_buffer("mean", torch.tensor(MEANS[:d], dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(SCALES[:d], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.scale)


def fitted_teacher(csv: Path, steps: int = 300) -> RawReLUTeacher:
    df = pd.read_csv(csv)
    x = torch.tensor(df[list(FEATURES)].to_numpy(), dtype=torch.float32)
    y = torch.tensor(df["y"].to_numpy(), dtype=torch.float32)[:, None]
    torch.manual_seed(0)
    model = RawReLUTeacher()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
    return model.eval()


def write_torchscript(path: Path, module: nn.Module) -> Path:
    torch.jit.save(torch.jit.script(module), str(path))
    return path


class NaNTeacher(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1) * float("nan")


def write_spec(path: Path, **extra) -> Path:
    spec = {"features": [{"name": n, "mean": float(m), "std": float(s)} for n, m, s in zip(FEATURES, MEANS, SCALES)], **extra}
    path.write_text(json.dumps(spec))
    return path


def fast_config(**changes):
    """Tiny runs: 2 epochs of 2 batches, no snapshots."""
    from dfkd_core.config import DistillConfig

    base = dict(dataset="user", epochs=2, batches_per_epoch=2, batch_size=20, snapshot_epochs=(),
                de_generations=2)
    return DistillConfig(**{**base, **changes})


class _Handler(BaseHTTPRequestHandler):
    delay = 0.0
    fn = staticmethod(lambda x: truth(x))
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        type(self).calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.delay:
            time.sleep(self.delay)
        preds = self.fn(np.asarray(body["inputs"], dtype=np.float64))
        data = json.dumps({"predictions": np.asarray(preds).tolist()}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, *args) -> None:
        pass


class ServedTeacher:
    """A black box on 127.0.0.1 answering POST {"inputs": ...} with {"predictions": ...}."""

    def __init__(self, fn=truth, delay: float = 0.0) -> None:
        handler = type("Handler", (_Handler,), {"delay": delay, "fn": staticmethod(fn), "calls": 0})
        self.handler = handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/predict"

    def __enter__(self) -> "ServedTeacher":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def csv(tmp_path):
    """A user's table on disk (write_csv), for the tests of user data and exports."""
    return write_csv(tmp_path / "plant.csv")


@pytest.fixture
def ts_teacher(tmp_path, csv):
    """A TorchScript teacher fitted briefly on that table."""
    return write_torchscript(tmp_path / "T.pt", fitted_teacher(csv, steps=100))
