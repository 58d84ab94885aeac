"""A new part is one file: a sampler written in a file dropped into dfkd_core/synth/ registers
itself when the package is imported, and trains on the engine's one step — from Python and from
the CLI — with no other file touched. It declares no fused implementation, so its members train
on the generic form BESIDE the paper's samplers, which stay on the fused MLP form."""
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
    engines = {r["sampler"]: r["engine"] for r in rows}
    assert engines == {"box_uniform_test": "stacked (torch.func)", "direct": "fused MLP"}  # placed by capabilities
    assert all(np.isfinite(r["test_rmse"]) for r in rows)


DOUBLED_FILE = textwrap.dedent('''
    """A test sampler: prior draws times two (written by tests/test_engine_new_part.py)."""
    from .samplers import Sampler, register_sampler


    @register_sampler
    class DoubledPriorSampler(Sampler):
        name = "doubled_prior_test"
        description = "prior draws times two"

        def sample_group(self, students, n):
            return self._prior_draws(n) * 2.0
''')


def test_a_new_sampler_beside_direct_leaves_direct_on_the_fused_form_and_equals_each_alone(tmp_path):
    """`--sampler direct,NEW`: the direct row names the fused form, and each sampler's students
    are what they are when trained alone (the two stacks share nothing but the teacher)."""
    path = REPO / "dfkd_core" / "synth" / "doubled_prior_test.py"
    path.write_text(DOUBLED_FILE)
    try:
        runs = {}
        for samplers in ("direct,doubled_prior_test", "direct", "doubled_prior_test"):
            proc = subprocess.run([sys.executable, "-m", "dfkd_core", "distill", "--dataset", "friedman1", "--sampler",
                                   samplers, "--seed", "0", "--epochs", "2", "--json"], cwd=REPO, capture_output=True,
                                  text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr
            runs[samplers] = {r["sampler"]: r for r in (json.loads(line) for line in proc.stdout.splitlines()
                                                        if line.startswith("{"))}
    finally:
        path.unlink()
    both = runs["direct,doubled_prior_test"]
    assert both["direct"]["engine"] == "fused MLP"
    assert both["doubled_prior_test"]["engine"] == "stacked (torch.func)"
    assert both["direct"]["test_rmse"] == runs["direct"]["direct"]["test_rmse"]
    assert both["doubled_prior_test"]["test_rmse"] == runs["doubled_prior_test"]["doubled_prior_test"]["test_rmse"]
