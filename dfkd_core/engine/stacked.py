"""The generic stack form: K students of any architecture (MLP, the MNIST CNN, RBF, ...) as one
stacked model — parameters stacked along a leading axis (torch.func.stack_module_state),
evaluated with vmap(functional_call) — trained one step of Algorithm 1 at a time for all K:
each sampler group draws its x_g (samplers work on stacked members), every member's x_p comes
from its own stream, the teacher (whatever it is) is queried ONCE for all K·2m points, and one
RMSprop (elementwise, so each member's update is its own) updates every student. A hook
(ModuleStack.on_batch) may look at each batch between its sampling and the update (BatchView)."""
from __future__ import annotations

import os
import warnings
from typing import Callable

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from ..config import Member
from ..events import MemberResult, Snapshot
from ..synth.objectives import sampler_objective
from ..synth.samplers import SAMPLERS, SamplerContext
from .compiled import maybe_compile
from .context import (EpochNumbers, MemberLayout, RunContext, StopRequested, build_members, student_arch,
                      student_loss_per_sample, update_best)

EVAL_POINTS = 1 << 14  # member × point evaluations per chunk when validating (bounds a CNN's activations)
SELECTIONS = ("validation", "synthetic")  # the best-so-far selections kept on the device ('last' is the params)


class GroupView:
    """Members [k0, k1) of a ModuleStack as a sampler sees them (samplers.Students): in eval mode,
    differentiable in x, with the current weights."""

    def __init__(self, stack: "ModuleStack", k0: int, k1: int) -> None:
        self.stack, self.k0, self.k1 = stack, k0, k1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.stack.sampler_call(x, self.k0, self.k1)

    def member(self, k: int):
        k = self.k0 + k
        return lambda x: self.stack.forward(x[None], k, k + 1)[0]


def _tensor_slots(module: torch.nn.Module) -> dict[str, tuple[dict, str]] | None:
    """Each parameter's and buffer's name → (its owner's _parameters or _buffers, its key there), for
    ModuleStack._swapped_call; None when a name is not a plain entry (e.g. a parametrization)."""
    slots = {}
    for names, table in ((module.named_parameters(remove_duplicate=False), "_parameters"),
                         (module.named_buffers(remove_duplicate=False), "_buffers")):
        for name, _ in names:
            owner, _, key = name.rpartition(".")
            entries = getattr(module.get_submodule(owner), table)
            if key not in entries or name in slots:
                return None
            slots[name] = (entries, key)
    return slots


class BatchView:
    """One batch of a ModuleStack as its on_batch hook sees it: drawn ([x_g | x_p] per member), not
    yet labelled by the teacher nor learned from. `epoch` and `batch` (its index in the epoch) say
    where it is; members are named by their index in the caller's order (the stack's `members`)."""

    def __init__(self, stack: "ModuleStack", x: torch.Tensor, epoch: int, batch: int) -> None:
        self.stack, self.x, self.epoch, self.batch = stack, x, epoch, batch

    def x_g(self, i: int) -> torch.Tensor:
        """Member i's synthetic points (m_g, *shape); empty when its α is 0."""
        k = self.stack.layout.position[i]
        return self.x[k, :self.stack.layout.m_g[k]]

    def x_p(self, i: int) -> torch.Tensor:
        """Member i's prior points (m_p, *shape); empty when its α is 1."""
        k = self.stack.layout.position[i]
        return self.x[k, self.stack.layout.m_g[k]:]

    def starts(self, i: int) -> torch.Tensor | None:
        """Where member i's x_g began before its sampler's search (Sampler.last_start: direct's prior draw,
        evolution's first population), or None for a sampler that records none."""
        stack, k = self.stack, self.stack.layout.position[i]
        for (kind, m_g, k0, k1), sampler in zip(stack.layout.groups, stack.samplers):
            if k0 <= k < k1:
                return None if sampler is None or sampler.last_start is None else sampler.last_start[k - k0]
        return None

    def student(self, i: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """Member i as it is before this batch's update: (n, *shape) → (n,), in eval mode,
        differentiable in x only (ModuleStack.sampler_call)."""
        k = self.stack.layout.position[i]
        return lambda x: self.stack.sampler_call(x[None], k, k + 1)[0]


class ModuleStack:
    """One stacked model of `members` for any student architecture (see the module docstring)."""

    form = "stacked (torch.func)"
    should_stop: "Callable[[], bool] | None" = None  # set by the epoch loop: read between batches
    # set by the epoch loop when a page waits for the first digits: a snapshot epoch's first batch
    # (Snapshot.early, caller's member order) is handed to it as soon as it is trained
    early_snapshots: "Callable[[list[Snapshot | None]], None] | None" = None
    # called with every batch between its sampling and the update (BatchView); None: nothing is
    # called or built, and a hook's epochs run eagerly (no CUDA graphs: a hook is host work)
    on_batch: "Callable[[BatchView], None] | None" = None

    def __init__(self, run: RunContext, members: list[Member], compile: str | None = None) -> None:
        """`compile`: 'auto', 'on' or 'off' (None: DFKD_COMPILE), see engine.compiled."""
        cfg, dev = run.cfg, run.device
        self.run, self.cfg, self.device = run, cfg, dev
        self.layout = lay = MemberLayout(cfg, members)
        self.members = members
        self.prior = run.split.prior.to(dev)
        self.shape = self.prior.shape
        self.K, self.M = lay.K, lay.M
        modules, states, self.gens, rngs = build_members(run, lay.members)
        self.base = modules[0]  # the architecture; weights come from self.params
        # a model's preferred activation layout (DigitCNN: channels-last, faster on CPUs); vmap cannot
        # ask for it (NYI there: its batching rule runs the K convolutions as one grouped convolution
        # in its own layout), so it is used where one member runs alone (_members)
        self._layout = getattr(self.base, "memory_format", None)
        self.params, self.buffers = stack_module_state(modules)
        self._slots = _tensor_slots(self.base)
        steps, family = cfg.epochs * cfg.batches_per_epoch, student_arch(run).rstrip("0123456789")
        # the student step (forward, loss and, through autograd, its backward) and the samplers'
        # evaluations of a group of students: compiled when the policy says so (engine.compiled)
        policy = dict(steps=steps, family=family, device=dev.type, mode=compile)
        self.train_loss = maybe_compile(self._train_loss, name="student step", **policy)
        self.group_forward = maybe_compile(self._members, name="samplers' student calls", **policy)
        self.dtype = next(iter(self.params.values())).dtype
        self.opt = torch.optim.RMSprop(list(self.params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                       capturable=dev.type == "cuda")
        self.samplers = []
        self.views = []
        for kind, m_g, k0, k1 in lay.groups:
            self.views.append(GroupView(self, k0, k1))
            if kind == "none":
                self.samplers.append(None)
                continue
            ctx = SamplerContext(run.teacher, self.prior, sampler_objective(run.objective, cfg, kind, m_g), cfg, dev,
                                 self.gens[k0:k1], rngs[k0:k1], states[k0:k1])
            self.samplers.append(SAMPLERS.get(kind)(ctx))
        self.set_means = torch.as_tensor(lay.set_means(), dtype=self.dtype, device=dev)
        self.teacher_queries = np.zeros(self.K)
        self.best = torch.full((len(SELECTIONS), self.K), float("inf"), dtype=torch.float64, device=dev)
        self.best_epoch = torch.full((len(SELECTIONS), self.K), -1, dtype=torch.long, device=dev)
        self.best_params = [{n: p.detach().clone() for n, p in self.params.items()} for _ in SELECTIONS]
        self._graphs: list | bool | None = None  # CUDA graphs of the step (_cuda_graphs), made when first needed

    # ------------------------------------------------------------------ the stacked model
    def forward(self, x: torch.Tensor, k0: int = 0, k1: int | None = None, train: bool = False,
                params: dict | None = None, shared: bool = False) -> torch.Tensor:
        """Members [k0, k1) on x (Kg, n, *shape) (or, `shared`, all on the same x (n, *shape)) → (Kg, n)."""
        k1 = self.K if k1 is None else k1
        params = self.params if params is None else params
        self._mode(train)
        p = {n: t[k0:k1] for n, t in params.items()}
        b = {n: t[k0:k1] for n, t in self.buffers.items()}
        return self._members(p, b, x, shared)

    def _mode(self, train: bool) -> None:
        """The base (every member) in train or eval mode; nothing to do when it is in it already
        (Module.train walks every submodule: a measurable part of a small MLP's call)."""
        if self.base.training != train:
            self.base.train(train)

    def sampler_call(self, x: torch.Tensor, k0: int, k1: int) -> torch.Tensor:
        """Members [k0, k1) in eval mode on x (Kg, n, *shape) → (Kg, n), differentiable in x only
        (a sampler never trains the students: their weights enter detached, so neither eager nor a
        compiled backward computes gradients for them)."""
        self._mode(False)
        p = {n: t[k0:k1].detach() for n, t in self.params.items()}
        b = {n: t[k0:k1] for n, t in self.buffers.items()}
        return self.group_forward(p, b, x)

    def _members(self, params: dict, buffers: dict, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Every member of the given stacked weights (Kg, ...) on its own x (Kg, n, *shape), or on
        the same x (n, *shape) when `shared`, in the base's current mode → (Kg, n)."""
        single = next(iter(params.values())).shape[0] == 1
        if self._layout is not None:
            self.base.memory_format = self._layout if single else torch.contiguous_format
        if single:  # one member: the module itself (vmap's overhead buys nothing)
            p = {n: t[0] for n, t in params.items()}
            b = {n: t[0] for n, t in buffers.items()}
            if self._slots is None or torch.compiler.is_compiling():
                return functional_call(self.base, (p, b), (x if shared else x[0],))[None]
            return self._swapped_call(p | b, x if shared else x[0])[None]

        def one(p_, b_, x_):
            return functional_call(self.base, (p_, b_), (x_,))

        return vmap(one, in_dims=(0, 0, None if shared else 0), randomness="different")(params, buffers, x)

    def _swapped_call(self, tensors: dict, x: torch.Tensor) -> torch.Tensor:
        """The base on x with `tensors` in place of its parameters and buffers: what functional_call
        does (the same swap of each owner's entry), without its per-call name resolution and tied-weight
        search (about 80 µs a call: a sixth of a small MLP's training step on a CPU)."""
        saved = []
        try:
            for name, tensor in tensors.items():
                table, key = self._slots[name]
                saved.append((table, key, table[key]))
                table[key] = tensor
            return self.base(x)
        finally:
            for table, key, original in saved:
                table[key] = original

    def _train_loss(self, params: dict, buffers: dict, x: torch.Tensor, t: torch.Tensor,
                    weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample student losses (K, M) in train mode and their eq. 7 weighted sum."""
        per_sample = student_loss_per_sample(self.cfg.student_loss, self._members(params, buffers, x), t)
        return per_sample, (per_sample * weights).sum()

    # ------------------------------------------------------------------ one step, one epoch
    def _draw_batch(self) -> torch.Tensor:
        """[x_g | x_p] (K, M, *shape): each group's sampler, then each member's prior points."""
        lay, teacher = self.layout, self.run.teacher
        x = torch.empty(self.K, self.M, *self.shape, dtype=self.prior.mean.dtype, device=self.device)
        for (kind, m_g, k0, k1), sampler, view in zip(lay.groups, self.samplers, self.views):
            if sampler is None:
                continue
            before = teacher.queries
            x[k0:k1, :m_g] = sampler.sample(view, m_g)
            self.teacher_queries[k0:k1] += (teacher.queries - before) / (k1 - k0)
        for k in range(self.K):
            m_g, m_p = lay.m_g[k], lay.m_p[k]
            if m_p:
                x[k, m_g:] = self.prior.sample(m_p, self.gens[k])
        return x

    def _step(self, weights: torch.Tensor, acc: torch.Tensor, keep: bool, epoch: int = 0, batch: int = 0):
        """One batch of Algorithm 1 for all K; (epoch, batch) say where it is, for the on_batch hook."""
        x = self._draw_batch().detach()
        if self.on_batch is not None:
            self.on_batch(BatchView(self, x, epoch, batch))
        with torch.no_grad():
            t = self.run.teacher.predict(x.reshape(self.K * self.M, *self.shape)).reshape(self.K, self.M)
        self.teacher_queries += self.M
        params = list(self.params.values())
        self._mode(True)
        per_sample, total = self.train_loss(self.params, self.buffers, x, t, weights)
        grads = torch.autograd.grad(total, params)
        for p, g in zip(params, grads):
            p.grad = g
        self.opt.step()
        loss = per_sample.detach()
        acc += torch.einsum("km,kmj->kj", loss, self.set_means)
        return (x, loss, t) if keep else None

    def run_epoch(self, epoch: int, validate: bool) -> EpochNumbers:
        cfg, lay = self.cfg, self.layout
        w, alphas = lay.loss_weights(epoch, cfg.epochs)
        weights = torch.as_tensor(w, dtype=self.dtype, device=self.device)
        acc = torch.zeros(self.K, 2, dtype=self.dtype, device=self.device)
        for sampler in self.samplers:
            if sampler is not None:
                sampler.begin_epoch()
        keep_last = epoch in self.run.snapshot_epochs
        hand_early = self.early_snapshots if keep_last and cfg.batches_per_epoch > 1 else None
        kept = None

        def snapshots(kept: tuple, early: bool = False) -> list[Snapshot]:  # internal member order
            x, loss, t = (v.detach().cpu() for v in kept)
            return lay.snapshots(epoch, x, loss, t, tuple(x.shape[2:]), early)
        graphs = None if keep_last or epoch == 0 else self._cuda_graphs(weights)
        if graphs is not None:  # the epoch's steps as graph replays: no launches, no host work per op
            self._graph_weights.copy_(weights)
            self._graph_acc.zero_()
            for step in range(cfg.batches_per_epoch):
                graph, queries, per_member = graphs[min(step, 1)]
                graph.replay()
                self.run.teacher.queries += queries  # what the captured step's teacher calls counted
                self.teacher_queries += per_member
            acc = self._graph_acc
        else:
            for step in range(cfg.batches_per_epoch):
                if step and self.should_stop is not None and self.should_stop():
                    raise StopRequested  # between batches: a long (CNN) epoch does not hold up Stop
                first = step == 0 and hand_early is not None
                kept = self._step(weights, acc, keep_last and (first or step == cfg.batches_per_epoch - 1),
                                  epoch, step) or kept
                if first:  # the first digits, seconds in, instead of an epoch later
                    early = snapshots(kept, early=True)
                    hand_early([early[lay.position[orig]] for orig in range(self.K)])
                    kept = None
        if validate:
            rmse, mae = self.validate(epoch)
        else:
            rmse = mae = torch.full((self.K,), float("nan"), dtype=torch.float64, device=self.device)
        n = cfg.batches_per_epoch
        host = torch.stack([rmse, mae, acc[:, 0].double() / n, acc[:, 1].double() / n]).cpu().numpy()
        return EpochNumbers.from_internal(lay, host, alphas, snapshots(kept) if kept is not None else [None] * self.K)

    # ------------------------------------------------------------------ CUDA graphs
    def _cuda_graphs(self, weights: torch.Tensor) -> list | None:
        """On a GPU, one training step captured as CUDA graphs — one for an epoch's first batch
        (generators learn there), one for the others — made on the second epoch (the first, run
        eagerly, is their warm-up: optimizer states and caches exist by then); None where graphs
        are off (CPU, DFKD_CUDA_GRAPHS=0, a sampler that declares it works on the host: graph_safe False,
        an on_batch hook) or capture failed (then eager, with one warning)."""
        if self.on_batch is not None:
            return None
        if self._graphs is None:
            self._graphs = False
            if (self.device.type == "cuda" and os.environ.get("DFKD_CUDA_GRAPHS", "1") != "0"
                    and all(sampler is None or sampler.graph_safe for sampler in self.samplers)):
                try:
                    self._graphs = self._capture(weights)
                except Exception as exc:  # an op or a teacher that cannot be captured: stay eager
                    warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); the engine runs eagerly")
        return self._graphs or None

    def _capture(self, weights: torch.Tensor) -> list:
        """Capture _step for batch 0 and for a later batch into one memory pool, with every member's
        random stream registered; each with the teacher queries it makes (counted while capturing)."""
        self._graph_weights = weights.clone()
        self._graph_acc = torch.zeros(self.K, 2, dtype=self.dtype, device=self.device)
        teacher = self.run.teacher
        graphs, pool = [], None
        for sampler in self.samplers:
            if sampler is not None:
                sampler.begin_epoch()  # batch 0 first: a generator learns there, and not in the later batch
        for _ in (0, 1):
            graph = torch.cuda.CUDAGraph()
            for gen in self.gens:
                graph.register_generator_state(gen)
            queries, per_member = teacher.queries, self.teacher_queries.copy()
            with torch.cuda.graph(graph, pool=pool):
                self._step(self._graph_weights, self._graph_acc, False)
            pool = graph.pool()
            graphs.append((graph, teacher.queries - queries, self.teacher_queries - per_member))
            teacher.queries, self.teacher_queries = queries, per_member  # capturing ran nothing
        return graphs

    # ------------------------------------------------------------------ evaluation and selections
    @torch.no_grad()
    def predict_all(self, x: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """Every member on the same points x (n, *shape) → (K, n), in chunks."""
        rows = max(1, EVAL_POINTS // self.K)
        parts = [self.forward(x[i:i + rows].to(self.device), params=params, shared=True)
                 for i in range(0, x.shape[0], rows)]
        return torch.cat(parts, 1)

    def _errors(self, x: torch.Tensor, y: torch.Tensor, params: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(RMSE, MAE) per member, float64, as teachers.evaluate computes them."""
        err = (self.predict_all(x, params) - y.to(self.device)[None, :]).double()
        return err.pow(2).mean(1).sqrt(), err.abs().mean(1)

    @torch.no_grad()
    def validate(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        run = self.run
        rmse, mae = self._errors(run.x_val, run.y_val)
        probe, _ = self._errors(run.probe_x, run.probe_t)
        better = update_best(torch.stack([rmse, probe]), self.best, self.best_epoch, epoch)
        for i, kept in enumerate(self.best_params):
            for name, p in self.params.items():
                mask = better[i].view(-1, *([1] * (p.dim() - 1)))
                torch.where(mask, p.detach(), kept[name], out=kept[name])
        return rmse, mae

    def state_dict(self, k: int, params: dict) -> dict[str, torch.Tensor]:
        out = {n: p[k].detach().cpu().clone() for n, p in params.items()}
        out.update({n: b[k].detach().cpu().clone() for n, b in self.buffers.items()})
        return {n: out[n] for n in self.base.state_dict()}

    def finish(self, last_epoch: int) -> list[MemberResult]:
        run, primary = self.run, self.cfg.selection
        chosen = {"validation": self.best_params[0], "synthetic": self.best_params[1],
                  "last": {n: p.detach() for n, p in self.params.items()}}
        scores = {}
        for name, params in chosen.items():
            rmse, mae = self._errors(run.x_test, run.y_test, params)
            scores[name] = (rmse.cpu().tolist(), mae.cpu().tolist())
        return self.layout.results(primary, last_epoch, self.best, self.best_epoch, scores,
                                   [int(round(q)) for q in self.teacher_queries],
                                   lambda k: self.state_dict(k, chosen[primary]))
