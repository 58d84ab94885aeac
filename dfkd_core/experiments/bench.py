"""Benchmark of the distillation loop, side by side in one process on one device: the plain
PyTorch loop of Algorithm 1 (one student, autograd, torch.optim: experiments.plain_loop)
against the engine (engine.loop) in its two stack forms — the fused MLP form (hand-written
kernels) and the generic torch.func form — for K = 1, 10, 50 students at once, with the
achieved GFLOP/s next to a plain torch.matmul of the teacher's shapes; and the image datasets'
CNN loop (preset paper-mnist: the plain loop one student at a time against the engine's ONE
stacked model of K = 1 and 3 students: gaussian, generator and direct).

Setting (the paper's tabular runs): direct sampler, α decreasing, student 50, m = 50, n_s = 10,
2000 epochs; seconds per 2000 epochs are extrapolated from `epochs` measured epochs after
`warmup` epochs (validation included, as in a real run). The generic form is timed over a
fifth of the epochs (at least 5): it is the slower form of these MLPs, and the ratio
fused/generic is what decides whether the hand-written kernels are kept (> 20 %).

FLOPs are counted analytically, matrix products only (2 per multiply-add; elementwise
work such as tanh is not counted). For an MLP d → H → 1 and one point:
    fwd(d, H)  = 2·H·d + 2·H          (hidden layer, output layer)
    grad_x(d, H) = 2·H·d              (input gradient: back through the hidden layer)
    grad_θ(d, H) = 2·H·d + 2·H        (parameter gradient)
One training step of one student (teacher width H, student width h, |x_g| = m_g,
|x_p| = m_p, τ inner steps of the direct sampler):
    teacher: τ·m_g·(fwd + grad_x)(d, H) + (m_g + m_p)·fwd(d, H)
    student: τ·m_g·(fwd + grad_x)(d, h) + (m_g + m_p)·(fwd + grad_θ)(d, h)
Per epoch: n_s steps; validation is not counted. cpusmall (d 12): 4.31 MFLOP per step,
86 GFLOP per 2000-epoch run; indoorloc (d 520): 177 MFLOP per step, 3.5 TFLOP per run.

The elementwise floor: on a CPU the fused loop is bound by the logistic function over the
hidden units (teacher H plus student h) of every evaluated row, (m_g + m_p) + τ·m_g rows per
step, not by the products. `bench` times torch.sigmoid_ alone over that many elements per step
in the same run and reports it per 2000 epochs (`sigmoid_floor_k…`).

A Table 4 comparison (generator and direct at α dec and 1) is also timed both ways: as one
mixed stacked model and split into one fast-path model per sampler group (fused_mlp.engine_parts).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import torch

from ..config import DistillConfig, Member, preset_config
from ..data.catalog import get_dataset
from ..device import describe_device
from ..engine.context import SYNTHETIC_PROBE_SIZE, RunContext, batch_sizes, prepare_run
from ..engine.fused_mlp import FusedMLPStack, engine_parts
from ..engine.loop import plan_stacks, train_members
from ..engine.teacher_call import make_teacher_call, teacher_call
from ..engine.stacked import ModuleStack
from ..events import EpochMetrics
from ..synth.objectives import build_objective
from ..synth.schedules import parse_alpha
from .plain_loop import run_plain_loop

DEFAULT_DATASETS = ("cpusmall", "indoorloc")
DEFAULT_KS = (1, 10, 50)
FULL_EPOCHS = 2000
CNN_EPOCHS = 3  # measured epochs per MNIST timing (one direct epoch is several seconds on a CPU)


def mlp_flops(d: int, hidden: int) -> dict[str, int]:
    """Matrix-product FLOPs per point of an MLP d → hidden → 1 (see the module docstring)."""
    return {"fwd": 2 * hidden * d + 2 * hidden, "grad_x": 2 * hidden * d, "grad_theta": 2 * hidden * d + 2 * hidden}


def step_flops(d: int, teacher_hidden: int, student_hidden: int, m_g: int, m_p: int, inner_steps: int) -> int:
    """FLOPs of one training step of one student (module docstring formula)."""
    t, s = mlp_flops(d, teacher_hidden), mlp_flops(d, student_hidden)
    teacher = inner_steps * m_g * (t["fwd"] + t["grad_x"]) + (m_g + m_p) * t["fwd"]
    student = inner_steps * m_g * (s["fwd"] + s["grad_x"]) + (m_g + m_p) * (s["fwd"] + s["grad_theta"])
    return teacher + student


def bench_config(dataset: str, device: torch.device) -> DistillConfig:
    return preset_config("paper-tabular", dataset=dataset, samplers=("direct",), alphas=("decreasing",),
                         student_hidden=50, epochs=FULL_EPOCHS, device=device.type)


def make_run(cfg: DistillConfig, device: torch.device, teacher_mode: str = "auto") -> tuple[RunContext, str]:
    """The run context of `cfg`; teacher_mode 'auto' uses the cached paper teacher when there
    is one and else a randomly initialised MLP of the same shape (the loop's cost does not
    depend on the weights), 'train' trains it when missing, 'random' always uses a random one."""
    from ..data import load_split
    from ..models.networks import DigitCNN, MLPRegressor
    from ..models.teachers import TeacherInfo, TorchTeacher, cache_path, default_teacher_arch

    split = load_split(cfg.dataset, seed=cfg.split_seed)
    arch = default_teacher_arch(split) if cfg.teacher == "auto" else cfg.teacher
    if teacher_mode == "train" or (teacher_mode == "auto" and cache_path(split, arch).exists()):
        return prepare_run(cfg, device=device), "paper teacher"
    gen_state = torch.get_rng_state()
    torch.manual_seed(12345)
    family, width = arch[:3], int(arch[3:])
    module = (DigitCNN if family == "cnn" else MLPRegressor)(split.input_shape, width).to(device).eval()
    torch.set_rng_state(gen_state)
    teacher = TorchTeacher(module, family)
    prior = split.prior.to(device)
    probe_x = prior.sample(SYNTHETIC_PROBE_SIZE, torch.Generator(device=device).manual_seed(123_457))
    with torch.no_grad():
        probe_t = teacher.predict(probe_x)
    teacher.queries = 0
    run = RunContext(cfg, split, device, teacher, TeacherInfo(arch, float("nan"), float("nan"), float("nan"), False, 0.0),
                     build_objective(cfg), split.x_val.to(device), split.y_val.to(device), split.x_test.to(device),
                     split.y_test.to(device), probe_x, probe_t, frozenset([0, 50, 100, 500, FULL_EPOCHS - 1]))
    return run, f"random {family.upper()} (no cached teacher)"


FORMS = ("plain", "auto", "fused", "generic")  # what time_engine can time


def time_engine(run: RunContext, members: list[Member], form: str | list, warmup: int, epochs: int) -> float:
    """Seconds per epoch over `epochs` epochs after `warmup` of `form`: 'plain' (the plain loop,
    one student after the other), 'auto' (the engine as a run chooses), 'fused' or 'generic'
    (the engine with that stack form), or a plan of stacks (engine.loop.plan_stacks' shape)."""
    stamps: dict[int, float] = {}
    done = {"epochs": 0}
    last = members[-1].key

    def on_event(event) -> None:
        if isinstance(event, EpochMetrics) and event.member == last:
            stamps[event.epoch] = time.perf_counter()
            done["epochs"] = event.epoch + 1

    def should_stop() -> bool:
        return done["epochs"] >= warmup + epochs

    start = time.perf_counter()
    if form == "plain":
        run_plain_loop(run, members, on_event, should_stop, start)
    else:
        plan = form if isinstance(form, list) else {
            "auto": None, "fused": [(FusedMLPStack, part) for part in engine_parts(run, members)],
            "generic": [(ModuleStack, list(range(len(members))))]}[form]
        train_members(run, members, on_event, should_stop, start, plan)
    t0 = stamps[warmup - 1] if warmup > 0 else start
    return (stamps[warmup + epochs - 1] - t0) / epochs


TABLE_COMPARISON = tuple(Member(sampler, alpha, 0) for sampler in ("generator", "direct") for alpha in ("decreasing", "1"))


def time_comparison(run: RunContext, members: list[Member], warmup: int, epochs: int) -> tuple[float, float]:
    """Seconds per epoch of one comparison trained (a) as one mixed stacked model and (b) as
    fused_mlp.engine_parts splits it (one model per fast-path sampler group), through the loop."""
    mixed = [(FusedMLPStack, list(range(len(members))))]
    split = [(FusedMLPStack, part) for part in engine_parts(run, members)]
    return time_engine(run, members, mixed, warmup, epochs), time_engine(run, members, split, warmup, epochs)


def best_seconds(once: Callable[[], None], device: torch.device, warmup: int = 5, min_seconds: float = 0.3) -> float:
    """Seconds per call of `once` (best of 3 timings of at least min_seconds / 3 each; on a GPU
    synchronized every 8 calls and at the end of each timing)."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        once()
    sync()
    best = float("inf")
    for _ in range(3):
        reps, start = 0, time.perf_counter()
        while True:
            once()
            reps += 1
            if reps % 8 == 0:
                sync()
                if time.perf_counter() - start >= min_seconds / 3:
                    break
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def time_matmul(n: int, d: int, hidden: int, device: torch.device, dtype=torch.float32, min_seconds: float = 0.3) -> float:
    """GFLOP/s of plain torch.matmul on the teacher's shapes for n points: the forward
    product (n, d) @ (d, H) and the input-gradient product (n, H) @ (H, d), alternated."""
    a, w = torch.randn(n, d, device=device, dtype=dtype), torch.randn(d, hidden, device=device, dtype=dtype)
    h, wt = torch.randn(n, hidden, device=device, dtype=dtype), torch.randn(hidden, d, device=device, dtype=dtype)

    def once() -> None:
        torch.matmul(a, w)
        torch.matmul(h, wt)

    return 4.0 * n * d * hidden / best_seconds(once, device, min_seconds=min_seconds) / 1e9


def time_sigmoid(k: int, rows: int, units: int, device: torch.device, dtype=torch.float32,
                 min_seconds: float = 0.3) -> float:
    """Seconds per call of torch.sigmoid_ over a (k, rows, units) tensor."""
    a = torch.empty(k, rows, units, device=device, dtype=dtype).uniform_(-4.0, 4.0)
    return best_seconds(a.sigmoid_, device, warmup=3, min_seconds=min_seconds)


CNN_SAMPLERS = ("gaussian", "generator", "direct")


def time_cnn(dataset: str, device: torch.device, epochs: int, teacher: str, say: Callable[[str], None]) -> dict:
    """Seconds per epoch of an image dataset's loop (preset paper-mnist: 20 direct steps per batch,
    20 generator rounds per epoch): the plain loop one student at a time against the engine's one
    stacked model, for K = 1 (direct) and K = 3 (gaussian, generator, direct); at most CNN_EPOCHS
    measured epochs after one warm-up epoch."""
    epochs, warmup = min(epochs, CNN_EPOCHS), 1
    cfg = preset_config("paper-mnist", dataset=dataset, samplers=CNN_SAMPLERS, alphas=("decreasing",),
                        device=device.type)
    run, teacher_kind = make_run(cfg, device, teacher)
    out: dict = {f"{dataset}_teacher": teacher_kind, f"{dataset}_epochs_measured": epochs}
    members = [Member(sampler, "decreasing", 0) for sampler in CNN_SAMPLERS]
    plain = {m.sampler: time_engine(run, [m], "plain", warmup, epochs) for m in members}
    one = time_engine(run, [Member("direct", "decreasing", 0)], "auto", warmup, epochs)
    stacked = time_engine(run, members, "auto", warmup, epochs)
    out.update({f"{dataset}_plain_{name}_s_per_epoch": value for name, value in plain.items()})
    out[f"{dataset}_engine_k1_s_per_epoch"] = one
    out[f"{dataset}_speedup_k1"] = plain["direct"] / one
    out[f"{dataset}_plain_three_s_per_epoch"] = sum(plain.values())
    out[f"{dataset}_engine_k3_s_per_epoch"] = stacked
    out[f"{dataset}_speedup_k3"] = sum(plain.values()) / stacked
    say(f"{dataset} ({teacher_kind}, CNN): plain loop per epoch " + ", ".join(f"{k} {v:.2f} s" for k, v in plain.items())
        + f"; engine, direct alone {one:.2f} s (×{plain['direct'] / one:.2f}); the three as one stacked model "
        f"{stacked:.2f} s against {sum(plain.values()):.2f} s separately (×{sum(plain.values()) / stacked:.2f}; "
        f"{epochs} epochs after {warmup})")
    return out


def bench(datasets=DEFAULT_DATASETS, ks=DEFAULT_KS, epochs: int = 100, warmup: int = 5, device: str = "cpu",
          teacher: str = "auto", progress: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark; returns one flat dict (the `bench --json` object)."""
    say = progress or (lambda text: None)
    dev = torch.device(device)
    out: dict = {"threads": torch.get_num_threads(), "device": describe_device(dev), "epochs_measured": epochs,
                 "warmup_epochs": warmup, "extrapolated_to_epochs": FULL_EPOCHS}
    generic_epochs = max(5, epochs // 5)
    for ds in datasets:
        if get_dataset(ds).kind == "image":  # the CNN's loop
            out.update(time_cnn(ds, dev, epochs, teacher, say))
            continue
        cfg = bench_config(ds, dev)
        run, teacher_kind = make_run(cfg, dev, teacher)
        d = run.split.dim
        m_g, m_p = batch_sizes(parse_alpha(cfg.alphas[0]), cfg.batch_size)
        hidden = run.teacher.module.hidden
        flops_epoch = cfg.batches_per_epoch * step_flops(d, hidden, cfg.student_hidden, m_g, m_p, cfg.direct_steps)
        out[f"{ds}_teacher"] = teacher_kind
        out[f"{ds}_gflop_per_run"] = flops_epoch * FULL_EPOCHS / 1e9

        single = time_engine(run, [Member("direct", cfg.alphas[0], 0)], "plain", warmup, epochs)
        out[f"single_{ds}_s"] = single * FULL_EPOCHS
        out[f"single_{ds}_gflops"] = flops_epoch / single / 1e9
        say(f"{ds}: plain loop, 1 student: {single * FULL_EPOCHS:.1f} s per {FULL_EPOCHS} epochs")
        for k in ks:
            members = [Member("direct", cfg.alphas[0], seed) for seed in range(k)]
            per_epoch = time_engine(run, members, "auto", warmup, epochs)
            generic = time_engine(run, members, "generic", min(warmup, 2), generic_epochs)
            achieved = k * flops_epoch / per_epoch / 1e9
            matmul = time_matmul(k * (m_g + m_p), d, hidden, dev)
            out[f"engine_k{k}_{ds}_s"] = per_epoch * FULL_EPOCHS
            if dev.type == "cuda":  # the same without CUDA graphs: what capturing the step buys
                FusedMLPStack.cuda_graphs = False
                try:
                    eager = time_engine(run, members, "auto", warmup, epochs)
                finally:
                    FusedMLPStack.cuda_graphs = True
                out[f"engine_eager_k{k}_{ds}_s"] = eager * FULL_EPOCHS
                say(f"{ds}: engine, {k} students, without CUDA graphs: {eager * FULL_EPOCHS:.1f} s per {FULL_EPOCHS} epochs")
            out[f"speedup_k{k}_{ds}"] = k * single / per_epoch
            out[f"generic_k{k}_{ds}_s"] = generic * FULL_EPOCHS
            out[f"generic_speedup_k{k}_{ds}"] = k * single / generic
            out[f"fused_over_generic_k{k}_{ds}"] = generic / per_epoch
            out[f"engine_k{k}_{ds}_gflops"] = achieved
            out[f"matmul_k{k}_{ds}_gflops"] = matmul
            out[f"engine_k{k}_{ds}_fraction_of_matmul"] = achieved / matmul
            rows = m_g + m_p + cfg.direct_steps * m_g  # rows whose hidden units go through σ, per step
            floor = time_sigmoid(k, rows, hidden + cfg.student_hidden, dev) * cfg.batches_per_epoch * FULL_EPOCHS
            out[f"sigmoid_floor_k{k}_{ds}_s"] = floor
            say(f"{ds}: engine, {k} students (fused MLP form): {per_epoch * FULL_EPOCHS:.1f} s per {FULL_EPOCHS} epochs, "
                f"×{k * single / per_epoch:.1f} vs {k} plain-loop runs, {achieved:.1f} GFLOP/s "
                f"({100 * achieved / matmul:.0f} % of torch.matmul on the same shapes: {matmul:.1f} GFLOP/s); "
                f"σ over its activations alone: {floor:.1f} s ({100 * floor / (per_epoch * FULL_EPOCHS):.0f} %); "
                f"generic form: {generic * FULL_EPOCHS:.1f} s (×{k * single / generic:.1f} vs plain; the fused form "
                f"×{generic / per_epoch:.2f} faster)")
        if 1 in ks:
            out[f"{ds}_fraction_of_matmul"] = out[f"engine_k1_{ds}_fraction_of_matmul"]
        # a Table 4 comparison (generator and direct, α dec and 1): one mixed model vs fast-path models
        members = list(TABLE_COMPARISON)
        mixed, split = time_comparison(run, members, warmup, epochs)
        out[f"comparison_mixed_{ds}_s"] = mixed * FULL_EPOCHS
        out[f"comparison_split_{ds}_s"] = split * FULL_EPOCHS
        out[f"comparison_speedup_{ds}"] = mixed / split
        say(f"{ds}: a Table 4 comparison (generator and direct × α dec, 1): one mixed model {mixed * FULL_EPOCHS:.1f} s, "
            f"one model per fast-path group {split * FULL_EPOCHS:.1f} s per {FULL_EPOCHS} epochs (×{mixed / split:.2f})")
        out[f"single_{ds}_fraction_of_matmul"] = out[f"single_{ds}_gflops"] / time_matmul(m_g + m_p, d, hidden, dev)
    for key in ("single_cpusmall_s", "engine_k50_cpusmall_s", "speedup_k50_cpusmall", "indoorloc_fraction_of_matmul"):
        out.setdefault(key, None)
    return out


def start_latency(repeats: int = 3, epochs: int = 2000, say: Callable[[str], None] | None = None) -> dict:
    """Start → first stored epoch of the Distill page's default run (friedman1), through the
    same door as the page's Start (jobs.submit), with a cold worker (a fresh process importing
    torch) and with a server's warm worker, alternately, `repeats` times each, in a scratch
    DFKD_HOME (the user's run store is not touched). Each run is stopped once its first epoch
    is stored. Returns {"cold_s": [...], "warm_s": [...], medians and their ratio}."""
    import os
    import statistics
    import tempfile

    from ..runs import jobs
    from ..runs.runstore import RunStore

    say = say or (lambda text: None)
    cfg = DistillConfig(dataset="friedman1", epochs=epochs)
    before = os.environ.get("DFKD_HOME")
    cold: list[float] = []
    warm: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dfkd-start-latency-") as home:
        os.environ["DFKD_HOME"] = home
        try:
            store = RunStore(home)

            def first_epoch() -> float:
                start = time.perf_counter()
                run_id = jobs.submit(cfg, store)
                while store.metrics(run_id).empty and store.get_run(run_id).active:
                    time.sleep(0.01)
                seconds = time.perf_counter() - start
                if store.metrics(run_id).empty:
                    raise RuntimeError(f"the run ended {store.get_run(run_id).status} before its first epoch: "
                                       f"{store.get_run(run_id).error}")
                jobs.stop(run_id, store, wait=True)
                return seconds

            for i in range(repeats):
                jobs.stop_keeping_warm()
                cold.append(first_epoch())
                jobs.keep_warm(store)
                if jobs.warm_worker(wait=300) is None:
                    raise RuntimeError("the warm worker did not get ready within 300 s")
                warm.append(first_epoch())
                say(f"start → first stored epoch, try {i + 1}: cold worker {cold[-1]:6.2f} s | warm worker {warm[-1]:6.2f} s")
        finally:
            jobs.stop_keeping_warm()
            if before is None:
                os.environ.pop("DFKD_HOME", None)
            else:
                os.environ["DFKD_HOME"] = before
    out = {"start_latency_cold_s": cold, "start_latency_warm_s": warm,
           "start_latency_cold_median_s": statistics.median(cold), "start_latency_warm_median_s": statistics.median(warm)}
    out["start_latency_cold_over_warm"] = out["start_latency_cold_median_s"] / out["start_latency_warm_median_s"]
    say(f"start → first stored epoch, median of {repeats}: cold {out['start_latency_cold_median_s']:.2f} s | "
        f"warm {out['start_latency_warm_median_s']:.2f} s (×{out['start_latency_cold_over_warm']:.1f}); "
        "the page draws it at its next poll (≤ 1 s later)")
    return out


USER_SAMPLERS = ("direct", "gaussian")  # the user-teacher bench's comparison (issue 19's acceptance)


def user_teacher_shape(module: torch.nn.Module) -> tuple[int, int] | None:
    """(hidden width, input dimension) of a torch teacher's first matrix (a user's TorchScript or
    state_dict MLP), or None when it has no 2-D parameter."""
    for p in module.parameters():
        if p.dim() == 2:
            return int(p.shape[0]), int(p.shape[1])
    return None


def builtin_twin(user: RunContext) -> RunContext:
    """The user's run with the built-in teacher of the same shape in place of theirs: a random
    MLPRegressor d → H → 1 (H: the first matrix of their model, else 500), the same split,
    config and probe. The loop's cost does not depend on the weights."""
    from ..models.networks import MLPRegressor
    from ..models.teachers import TorchTeacher

    shape = user_teacher_shape(user.teacher.module) if hasattr(user.teacher, "module") else None
    hidden = shape[0] if shape else 500
    gen_state = torch.get_rng_state()
    torch.manual_seed(12345)
    module = MLPRegressor(user.split.input_shape, hidden).to(user.device).eval()
    torch.set_rng_state(gen_state)
    return dataclasses.replace(user, teacher=TorchTeacher(module, "mlp"))


def time_user_teacher(teacher_file: str, *, data_file: str = "", target: str = "", input_spec: str = "",
                      activation: str = "", ks=(1,), epochs: int = 20, warmup: int = 2, device: str = "cpu",
                      samplers=USER_SAMPLERS, progress: Callable[[str], None] | None = None) -> dict:
    """`bench --teacher PATH`: a user's teacher side by side, in one run, with the built-in teacher
    of the same shape (builtin_twin) and the plain loop (with the user's teacher), for the
    paper's tabular setting with `samplers` × seeds (K members; α decreasing, student 50).
    Also the user's teacher with the MLP kernels refused (autograd through it), to show what they
    buy. Seconds per 2000 epochs, each K timed user, built-in, autograd, plain in turn."""
    say = progress or (lambda text: None)
    dev = torch.device(device)
    cfg = preset_config("paper-tabular", dataset="user", teacher_file=teacher_file, teacher_activation=activation,
                        data_file=data_file, target=target, input_spec=input_spec, samplers=tuple(samplers),
                        alphas=("decreasing",), student_hidden=50, epochs=FULL_EPOCHS, device=dev.type,
                        snapshot_epochs=())
    user = prepare_run(cfg, device=dev)
    twin = builtin_twin(user)
    through_autograd = dataclasses.replace(user)  # the user's teacher with the MLP kernels refused: autograd
    dtype = user.split.prior.mean.dtype
    through_autograd._teacher_calls = {(True, dtype): make_teacher_call(user.teacher, tuple(user.split.prior.shape),
                                                                        dtype, kernels=False)}
    shape = user_teacher_shape(user.teacher.module) if hasattr(user.teacher, "module") else None
    out: dict = {"threads": torch.get_num_threads(), "device": describe_device(dev), "epochs_measured": epochs,
                 "warmup_epochs": warmup, "extrapolated_to_epochs": FULL_EPOCHS, "user_teacher": user.teacher.kind,
                 "user_teacher_shape": list(shape) if shape else None, "samplers": list(samplers),
                 "user_teacher_call": type(teacher_call(user)).__name__}
    for k in ks:
        seeds = -(-k // len(samplers))
        members = [Member(s, "decreasing", seed) for seed in range(seeds) for s in samplers][:k]
        forms = " + ".join(sorted({form.form for form, _ in plan_stacks(user, members)}))
        mine = time_engine(user, members, "auto", warmup, epochs)
        builtin = time_engine(twin, members, "auto", warmup, epochs)
        slow = time_engine(through_autograd, members, "auto", warmup, epochs)
        plain = time_engine(user, members, "plain", min(warmup, 1), max(1, epochs // 4))
        out[f"user_autograd_engine_k{k}_s"] = slow * FULL_EPOCHS
        out[f"user_autograd_over_builtin_k{k}"] = slow / builtin
        out[f"user_engine_k{k}_s"] = mine * FULL_EPOCHS
        out[f"builtin_engine_k{k}_s"] = builtin * FULL_EPOCHS
        out[f"user_plain_k{k}_s"] = plain * FULL_EPOCHS
        out[f"user_over_builtin_k{k}"] = mine / builtin
        out[f"user_speedup_over_plain_k{k}"] = plain / mine
        out[f"user_forms_k{k}"] = forms
        say(f"your teacher, {k} students ({', '.join(samplers)}; {forms}): {mine * FULL_EPOCHS:.1f} s per {FULL_EPOCHS} "
            f"epochs; the built-in teacher of its shape {builtin * FULL_EPOCHS:.1f} s (yours ×{mine / builtin:.2f}); "
            f"yours through autograd {slow * FULL_EPOCHS:.1f} s (×{slow / builtin:.2f}); "
            f"the plain loop with yours {plain * FULL_EPOCHS:.1f} s (the engine ×{plain / mine:.1f} faster)")
    return out
