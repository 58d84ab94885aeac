"""A new part is one file: a sampler written in a file dropped into dfkd_core/synth/ registers
itself when the package is imported, and trains on the engine's one step (the generic form) —
from Python and from the CLI — with no other file touched."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

from conftest import REPO

SAMPLER_FILE = textwrap.dedent('''
    """A test sampler: points uniform in the prior's box (written by tests/test_engine_new_part.py)."""
    import torch

    from .samplers import Sampler, register_sampler


    @register_sampler
    class BoxUniformSampler(Sampler):
        name = "box_uniform_test"
        description = "uniform points in the prior's box"

        def sample_group(self, students, n):
            prior = self.ctx.prior
            u = torch.stack([torch.rand(n, prior.dim, generator=g, device=self.ctx.device) for g in self.ctx.generators])
            return prior.from_unit_cube(u.reshape(-1, prior.dim)).reshape(len(self.ctx.generators), n, *prior.shape)
''')


def test_a_sampler_in_one_new_file_trains_through_the_engine_from_the_cli(tmp_path):
    path = REPO / "dfkd_core" / "synth" / "box_uniform_test.py"
    path.write_text(SAMPLER_FILE)
    try:
        proc = subprocess.run([sys.executable, "-m", "dfkd_core", "distill", "--dataset", "friedman1", "--sampler",
                               "box_uniform_test,direct", "--alpha", "decreasing", "--seed", "0,1", "--epochs", "3",
                               "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        path.unlink()
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted({r["sampler"] for r in rows}) == ["box_uniform_test", "direct"] and len(rows) == 4
    assert {r["engine"] for r in rows} == {"stacked (torch.func)"}  # the new sampler's comparison: one generic stack
    assert all(np.isfinite(r["test_rmse"]) for r in rows)
