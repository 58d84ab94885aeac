"""The fused MLP stack form: the paper's tanh MLP students (d → h → 1) with hand-written kernels
(mlp_kernels) instead of autograd — the MLP family's faster form of the engine's step (`bench`
times it against the generic form). Any teacher: it is one callable of the step
(engine.teacher_call) — the MLP kernels for a tanh MLP teacher (then the fast path below fuses
teacher and students), autograd through any other torch module, a black box's values. The members
whose samplers declare a fused implementation (samplers.Sampler.fused) are trained as stacked
models — on a CPU one per sampler group that has a fused fast path (engine_parts), else one for
all; what a group does in the step is its part's (engine.fused_parts: one class per declared
implementation), never a switch on its name here.

One training step of Algorithm 1 for all K students at once:

1. noise   — each member draws its random numbers from its own torch.Generator seeded with
             context.stream_seed(member), in exactly the order and sizes of the plain
             loop (prior samples, y_rand, generator z, x_p; QMC points from the member's own
             scipy engine). This is the one per-member Python loop of the hot path and it
             only draws random numbers, no arithmetic; it is what makes one batched epoch
             equal to one epoch of the plain loop (tests/test_batched.py).
2. x_g     — searching parts run their inner steps together: for step τ the points of
             every 'direct' and 'generator' member still iterating go through ONE teacher
             call (forward + input gradient); each group's part then takes its own update
             (direct: the fresh optimizer of Algorithm 2, models.updates.FreshOptimizer, RMSprop
             by default, on every batch; generator: back-propagation into K stacked generators
             and their RMSprop, on the epoch's first batch only, as the paper's code does).
             Random samplers ('gaussian', 'lhs', 'halton', 'sobol') need no inner steps. The
             single-group fast path runs the same parts' updates in the student batch's rows.
3. student — ONE teacher call on the K·2m points [x_g | x_p]; per-sample loss weights carry
             eq. 7 (α/|x_g| on x_g, (1 − α)/|x_p| on x_p); hand-written gradients for the K
             students (engine.mlp_kernels) and one RMSprop update of the flat parameter vector.
4. epoch   — validation of all K students on the whole validation set and on the synthetic
             probe in one pass each; the best-so-far selections are kept on the device with
             masked copies; a single device→host transfer per epoch feeds the events.

Nothing in steps 1–3 reads a value back to the host, and nothing builds an autograd graph
(the teacher's parameters and x_g in the student step get no gradient); on a GPU the step is
captured as CUDA graphs and replayed (_cuda_graphs).
"""
from __future__ import annotations

import os
import warnings

import torch

from ..config import Member
from ..events import MemberResult
from ..models.updates import RMSPROP_ALPHA, RMSPROP_EPS, rmsprop_, scalar
from ..synth.objectives import TERMS, Objective, TermInputs, log_cosh, sampler_objective
from ..synth.samplers import SAMPLERS, SamplerContext
from ..synth.schedules import parse_alpha
from .context import EpochNumbers, MemberLayout, RunContext, batch_sizes, build_members, student_arch, update_best
from .fused_parts import FusedPart, fused_part
from .mlp_kernels import FusedTeacherStudents, StackedMLPs
from .teacher_call import teacher_call

# The fast path wins at small K (cpusmall, one thread, AMD EPYC, first version: K=1 0.94 → 0.74 ms/step, K=10
# 3.8 → 3.4 ms) but not yet at K=50 (17–19 → 17–22 ms/step: the (K, n, H) elementwise passes
# dominate there and MKL's batched GEMM falls back to per-member loops for some layouts).
FUSED_MAX_MEMBERS = 16


def students_fit(run: RunContext) -> bool:
    """Whether the run's students can take the fused MLP form at all: MLP students (d → h → 1)
    with a student loss and a direct optimizer it implements. The teacher never decides: any
    teacher is one callable (engine.teacher_call)."""
    cfg, arch = run.cfg, student_arch(run)
    if cfg.engine == "generic" or not (arch.startswith("mlp") and arch[3:].isdigit() and int(arch[3:]) > 0):
        return False
    return cfg.student_loss in ("mse", "logcosh") and cfg.direct_optimizer in ("rmsprop", "adam", "sgd")


def member_fits(run: RunContext, member: Member) -> bool:
    """Whether one member can take the fused MLP form: α ≡ 0 (its sampler is never called), or a
    sampler that declares a fused implementation — and, when it searches with the teacher's
    gradients, an objective whose every term declares its gradient (objectives.term)."""
    m_g, _ = batch_sizes(parse_alpha(member.alpha), run.cfg.batch_size)
    if not m_g:
        return True
    part = fused_part(member.sampler)
    if part is None:
        return False
    if part.searches:
        return all(getattr(TERMS.get(name), "grad", None) is not None for name, w in run.objective.terms if w != 0.0)
    return True


def supports(run: RunContext, members: list[Member]) -> bool:
    """True when the fused MLP form can train all these members (students_fit, member_fits)."""
    return bool(members) and students_fit(run) and all(member_fits(run, m) for m in members)


def _fusable(run: RunContext, part: type[FusedPart] | None, size: int) -> bool:
    """Whether `size` members of one (sampler, |x_g|) group can take the fast path
    (mlp_kernels.FusedTeacherStudents): the teacher given by the hand-written MLP kernels
    (teacher_call), a part the fast path implements (FusedPart.fast_path: direct with RMSprop
    inside, or the generator), an objective linear in (T, S) (every term declares a fused_coef), on a CPU at most
    FUSED_MAX_MEMBERS members (a GPU replays the step as a CUDA graph, where the fused kernels
    win at every K: `bench --device cuda`)."""
    objective = run.objective
    return ((size <= FUSED_MAX_MEMBERS or run.device.type != "cpu") and part is not None
            and part.fast_path(run.cfg) and getattr(teacher_call(run), "kernels", False)
            and objective.y_rand == "none"
            and all(getattr(TERMS.get(name), "fused_coef", None) for name, w in objective.terms if w != 0.0))


def engine_parts(run: RunContext, members: list[Member]) -> list[list[int]]:
    """How `members` (caller's indices) are split into stacked models: each (sampler, |x_g|)
    group that can take the fast path gets its own, the rest share one. On a CPU separate
    fast-path models are quicker than one mixed model (`bench`'s comparison_speedup_*:
    cpusmall, generator and direct at α dec and 1, one thread: ×1.1–1.2 per epoch; indoorloc,
    bound by the teacher's products: ×0.95–1.0); on a GPU, whose loop is bound by kernel
    launches, one model for all is kept."""
    if run.device.type != "cpu":
        return [list(range(len(members)))]
    groups: dict[tuple[str, int], list[int]] = {}
    for i, mem in enumerate(members):
        m_g, _ = batch_sizes(parse_alpha(mem.alpha), run.cfg.batch_size)
        groups.setdefault((mem.sampler if m_g else "none", m_g), []).append(i)
    fast = [idx for (kind, _), idx in groups.items() if _fusable(run, fused_part(kind), len(idx))]
    rest = sorted(i for idx in groups.values() if idx not in fast for i in idx)
    parts = fast + ([rest] if rest else [])
    return parts if len(parts) > 1 else [list(range(len(members)))]


class FusedMLPStack:
    """One stacked model of the fused MLP form: stacked students, sampler groups, buffers, selections."""

    form = "fused MLP"
    cuda_graphs = True  # capture the step as CUDA graphs on a GPU (a class attribute so `bench` can time both)

    @torch.no_grad()
    def __init__(self, run: RunContext, members: list[Member]) -> None:
        cfg, split, device = run.cfg, run.split, run.device
        self.ctx, self.cfg, self.device = run, cfg, device
        self.prior = split.prior.to(device)
        self.dtype = self.prior.mean.dtype
        self.shape, self.d = self.prior.shape, self.prior.dim
        self.objective = run.objective
        self.teacher = teacher_call(run)  # one callable for all K members' points (engine.teacher_call)
        self.layout = lay = MemberLayout(cfg, members)
        self.M = lay.M  # |x_g| + |x_p| is 2m for every α (batch_sizes)
        # internal order: members grouped by (sampler, |x_g|), contiguous, in order of appearance
        self.members, self.position = lay.members, lay.position
        self.m_g, self.m_p, self.kinds = lay.m_g, lay.m_p, lay.kinds
        K = self.K = lay.K

        # students (and generators, QMC engines) built exactly as every form builds them
        students, states, self.gens, rngs = build_members(run, self.members)
        self.students = StackedMLPs(students, device, self.dtype)
        self.square_avg = torch.zeros_like(self.students.theta)

        # [x_g | x_p] per member, with a constant-1 last column (biases live in the matrix products)
        self.x = torch.ones(K, self.M, self.d + 1, dtype=self.dtype, device=device)
        self.noise = torch.empty(K, self.M, self.d, dtype=self.dtype, device=device)  # the draws that land in x
        self.x_d = self.x[..., :self.d]

        # groups: one part each (fused_parts), the one its sampler declares; the registered
        # sampler's own objects hold QMC engines and generator networks
        self.groups: list[FusedPart] = []
        for kind, m_g, k0, k1 in lay.groups:
            part, objective, sampler = fused_part(kind), sampler_objective(run.objective, cfg, kind, m_g), None
            if part.needs_sampler:
                ctx = SamplerContext(run.teacher, self.prior, objective, cfg, device, self.gens[k0:k1], rngs[k0:k1],
                                     states[k0:k1])
                sampler = SAMPLERS.get(kind)(ctx)
            self.groups.append(part(self, kind, m_g, k0, k1, objective, sampler))
        self.group_of = [g for g in self.groups for _ in range(g.size)]
        self.grad_groups = [g for g in self.groups if g.searches and g.steps > 0]

        self.prior_is_identity = (self.prior.kind == "gaussian" and bool((self.prior.mean == 0).all())
                                  and bool((self.prior.std == 1).all()))
        # eq. 7 loss statistics: column 0 averages x_g rows, column 1 x_p rows
        self.stat_w = torch.as_tensor(lay.set_means(), dtype=self.dtype, device=device)
        # the student step's buffers, made once
        self.diff = torch.empty(K, self.M, dtype=self.dtype, device=device)
        self.loss = torch.empty_like(self.diff)
        self.loss_row = self.loss[:, None, :]
        self.g_out = self.diff if cfg.student_loss != "logcosh" else torch.empty_like(self.diff)
        self.den_theta = torch.empty_like(self.students.theta)  # RMSprop's √v + eps
        self.c_two = scalar(2.0, self.x)  # a 0-dim operand (see models.updates.scalar)
        self._bw_cache: dict = {}  # the fast path's backward views (the same s_act tensor every step)
        # teacher queries per member per epoch, as the plain loop counts them
        n = cfg.batches_per_epoch
        self.queries_per_epoch = [n * self.M + self.m_g[k] * self.group_of[k].steps_per_epoch(n) for k in range(K)]
        self.teacher_queries = [0] * K

        # selections (on the device): 'validation' and 'synthetic' best-so-far; 'last' is theta
        # stacked (row 0 validation, row 1 synthetic) so that validate() updates both at once
        self._best = torch.full((2, K), float("inf"), dtype=torch.float64, device=device)
        self._best_epoch = torch.full((2, K), -1, dtype=torch.long, device=device)
        self._best_theta = self.students.theta.repeat(2, 1)
        names = ("validation", "synthetic")
        self.best = {name: self._best[i] for i, name in enumerate(names)}
        self.best_epoch = {name: self._best_epoch[i] for i, name in enumerate(names)}
        self.best_theta = {name: self._best_theta[i] for i, name in enumerate(names)}
        self.step = 0  # the batch of the epoch being trained (generators learn on batch 0)
        self._graphs: list | bool | None = None  # CUDA graphs of the step (_cuda_graphs), made when first needed
        self.fused = self._make_fused()
        self._draws = self._draw_plan()

    def _draw_plan(self) -> list | None:
        """When every member only draws standard normal noise into fixed buffers (its part's
        normal_noise_only: direct without y_rand, gaussian, α ≡ 0), the (generator, view) pairs of
        one step in the reference order, made once: view.normal_(generator=gen) is what
        torch.randn(out=view) does after its (no-op) resize. None otherwise (_draw_noise's general loop)."""
        if self.objective.y_rand != "none" or not all(g.normal_noise_only for g in self.groups):
            return None
        plan = []
        for k in range(self.K):
            gen, grp, m_g, m_p = self.gens[k], self.group_of[k], self.m_g[k], self.m_p[k]
            plan += [(gen, view) for view in grp.normal_views(k - grp.k0)]
            if m_p:
                plan.append((gen, self.noise[k, m_g:].view(m_p, *self.shape)))
        return plan

    def _make_fused(self) -> FusedTeacherStudents | None:
        """The fast path (mlp_kernels.FusedTeacherStudents) when every member (at most
        FUSED_MAX_MEMBERS) uses the same gradient sampler with the same |x_g| — direct with
        RMSprop inside, or generator — and an objective linear in (T, S)."""
        if len(self.groups) != 1 or not _fusable(self.ctx, type(self.groups[0]), self.K):
            return None
        coef = {slot: 0.0 for slot in ("squared_discrepancy", "student_sq", "l2sq_input", "l1_input")}
        for name, w in self.groups[0].objective.terms:
            if w != 0.0:
                coef[TERMS.get(name).fused_coef] += w
        self.l1 = coef["l1_input"]
        g = self.groups[0]
        self.xg = self.x[:, :g.m_g]
        g.bind()  # the search runs in the student batch's rows (x₀ drawn into its noise)
        fu = FusedTeacherStudents(self.teacher, self.students, self.M,
                                  (coef["squared_discrepancy"], coef["student_sq"], coef["l2sq_input"]))
        # the step's views and buffers, made once
        self.grad_x = fu._views(g.m_g)["gt"].transpose(1, 2)[..., :self.d]
        out = fu._views(self.M)["ot"]
        self.out_t, self.out_s = out[:, 0], out[:, 1]
        self.s_act = fu._views(self.M)["a_s"]  # the students' σ activations on [x_g | x_p]
        return fu

    # ------------------------------------------------------------------ one step
    def _draw_noise(self) -> None:
        """Every member's random numbers for one step, in the plain loop's order: its part's, then x_p's."""
        if self._draws is not None:
            for gen, out in self._draws:
                out.normal_(generator=gen)
            return
        shape, x = self.shape, self.noise
        for k in range(self.K):
            gen, grp, m_g, m_p = self.gens[k], self.group_of[k], self.m_g[k], self.m_p[k]
            grp.draw(k - grp.k0, gen, self.step)
            if m_p:
                torch.randn((m_p, *shape), generator=gen, out=x[k, m_g:].view(m_p, *shape))

    def apply_prior(self, noise: torch.Tensor) -> torch.Tensor:
        """prior.sample's transform of standard normal noise (K, n, d), in place."""
        if self.prior_is_identity:
            return noise
        flat = noise.view(-1, *self.shape)
        flat.copy_(self.prior.project(self.prior.mean + self.prior.std * flat))
        return noise

    def _objective_grad(self, objective: Objective, x, t, s_pred, jac_t, jac_s, y_rand,
                        scale: float = 1.0) -> torch.Tensor:
        """∂/∂x of scale·objective(x, T(x), S(x), y_rand) per point, from the partial
        derivatives of the terms and the networks' input gradients; x (Kg, n, d)."""
        d_t = d_s = None
        x_terms = []

        def add(acc, value, coef):
            return value * coef if acc is None else acc.add_(value, alpha=coef)

        inputs = TermInputs(x[..., :self.d], t, s_pred, y_rand)
        for name, w in objective.terms:
            if w == 0.0:
                continue
            g_t, g_s, g_x = TERMS.get(name).grad(inputs)  # each term's gradient, declared once with the term
            w = w * scale
            if g_t is not None:
                d_t = add(d_t, g_t, w)
            if g_s is not None:
                d_s = add(d_s, g_s, w)
            if g_x is not None:
                x_terms.append((g_x, w))
        grad = torch.zeros_like(x) if d_t is None else jac_t * d_t[..., None]
        if d_s is not None:
            grad.addcmul_(jac_s, d_s[..., None])
        for g_x, w in x_terms:
            grad[..., :self.d].add_(g_x, alpha=w)
        return grad

    def _gradient_phase(self) -> int:
        """The inner steps of the searching parts, one teacher call per step τ for all of them;
        returns the number of steps. On the fast path the one group searches in the student
        batch's rows (FusedPart.bind) and the fused kernels give T, S and the objective's gradient."""
        if not self.grad_groups:
            return 0
        st, d, step, fu = self.students, self.d, self.step, self.fused
        if fu is not None:  # one group: T and S of [x₀ | x_p] first (x_p's stay valid for the student step), then of x_g
            g, xg, grad = self.grad_groups[0], self.xg, self.grad_x
            rounds = g.inner_steps(step)
            for tau in range(rounds):
                g.points(tau)
                fu.forward(xg if tau else self.x)
                fu.objective_grad(xg, self.l1)
                g.update(tau, grad if g.objective_scale == 1.0 else grad * g.objective_scale)
            return rounds
        rounds = max(g.inner_steps(step) for g in self.grad_groups)
        for tau in range(rounds):
            active = [g for g in self.grad_groups if tau < g.inner_steps(step)]
            points = [g.points(tau) for g in active]
            flat = [p.view(-1, d + 1) for p in points]
            t_all, j_all = self.teacher.forward_grad(flat[0] if len(flat) == 1 else torch.cat(flat))
            offset = 0
            for g, x in zip(active, points):
                n = g.size * g.m_g
                t = t_all[offset:offset + n].view(g.size, g.m_g)
                jac_t = j_all[offset:offset + n].view(g.size, g.m_g, d + 1)
                offset += n
                s_pred, s_act = st.forward(x, g.k0, g.k1)
                jac_s = st.input_grad(s_act, g.k0, g.k1)
                grad = self._objective_grad(g.objective, x, t, s_pred, jac_t, jac_s, g.y_rand_at(tau),
                                            scale=g.objective_scale)
                g.update(tau, grad[..., :d])
        return rounds

    def _fill_x(self) -> None:
        """Place every group's x_g in the student batch (x_p is already there)."""
        for g in self.groups:
            g.fill()

    def train_step(self, weights: torch.Tensor, acc: torch.Tensor, keep: bool):
        """One step of Algorithm 1 for all K students; returns (x, loss, T) when `keep`. The fast
        path (self.fused) is a branch of each phase: the same random numbers and arithmetic, fewer ops."""
        self._draw_noise()
        self.x_d.copy_(self.apply_prior(self.noise))  # x_p, and on the fast path the direct search's x₀
        for g in self.groups:  # every search's x₀, also one of no steps (direct_steps 0: x_g = x₀)
            g.start_batch()
        rounds = self._gradient_phase()
        self._fill_x()
        return self._student_step(weights, acc, keep, rounds)

    def _student_step(self, weights: torch.Tensor, acc: torch.Tensor, keep: bool, rounds: int):
        """ONE teacher call on [x_g | x_p] (on the fast path T and S of x_p were evaluated with the
        first x_g of a search), the K students' gradients by hand and one RMSprop update."""
        cfg, st, fu = self.cfg, self.students, self.fused
        if fu is not None:
            fu.forward(self.xg if rounds else self.x)
            t, s_pred, s_act = self.out_t, self.out_s, self.s_act
        else:
            t = self.teacher.forward(self.x.view(-1, self.d + 1)).view(self.K, self.M)
            s_pred, s_act = st.forward(self.x)
        diff = torch.sub(s_pred, t, out=self.diff)
        if cfg.student_loss == "logcosh":
            loss = log_cosh(diff)
            torch.tanh(diff, out=self.g_out).mul_(weights)
        else:
            loss = torch.square(diff, out=self.loss)
            diff.mul_(weights).mul_(self.c_two)  # g_out is diff's buffer here
        acc.baddbmm_(self.loss_row if loss is self.loss else loss[:, None, :], self.stat_w)
        kept = (self.x_d.clone(), loss.clone(), t.clone()) if keep else None
        st.backward(self.x, s_act, self.g_out, self._bw_cache if fu is not None else None)
        rmsprop_(st.theta, st.grad, self.square_avg, cfg.lr, cfg.weight_decay, RMSPROP_ALPHA, RMSPROP_EPS,
                 self.den_theta)
        if fu is not None:
            fu.refresh()
        else:
            st.refresh()
        return kept

    # ------------------------------------------------------------------ epochs
    def _loss_weights(self, epoch: int) -> tuple[torch.Tensor, list[float]]:
        """Per-sample weights of eq. 7 for this epoch (MemberLayout.loss_weights) on the device."""
        w, alphas = self.layout.loss_weights(epoch, self.cfg.epochs)
        return torch.as_tensor(w, dtype=self.dtype, device=self.device), alphas

    def predict(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.students.predict_shared(flat, x.reshape(x.shape[0], -1))

    def _metrics(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(RMSE, MAE) per member, float64, as teachers.evaluate computes them."""
        err = (self.predict(flat, x) - y.to(self.device)[None, :]).double()
        return err.pow(2).mean(1).sqrt(), err.abs().mean(1)

    def _validation_setup(self) -> None:
        """Validation points and probe points concatenated once (as mlp_kernels.StackedMLPs.augment
        takes them), their targets, and the (n, 2) matrix whose product with squared errors
        gives both mean squared errors (column 0: validation rows, column 1: probe rows)."""
        run, dev = self.ctx, self.device
        xv, xp = run.x_val.reshape(run.x_val.shape[0], -1), run.probe_x.reshape(run.probe_x.shape[0], -1)
        nv, npr = xv.shape[0], xp.shape[0]
        self._val_x = self.students.augment(torch.cat([xv.to(dev, self.dtype), xp.to(dev, self.dtype)]))
        self._val_y = torch.cat([run.y_val.to(dev, self.dtype).reshape(-1), run.probe_t.to(dev, self.dtype).reshape(-1)])
        mean = torch.zeros(nv + npr, 2, dtype=torch.float64, device=dev)
        mean[:nv, 0], mean[nv:, 1] = 1.0 / nv, 1.0 / npr
        self._val_mean = mean
        self._val_err = torch.empty(2 * self.K, nv + npr, dtype=torch.float64, device=dev)  # [err² ; |err|]

    def validate(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """RMSE and MAE on the validation set and RMSE against the teacher on the synthetic
        probe, in one pass over both point sets; the two best-so-far selections are updated
        together (rows of self._best: 0 validation, 1 synthetic)."""
        if not hasattr(self, "_val_x"):
            self._validation_setup()
        K, theta = self.K, self.students.theta
        err = torch.sub(self.students.predict_aug(theta, self._val_x), self._val_y).double()
        e = self._val_err
        torch.square(err, out=e[:K])
        torch.abs(err, out=e[K:])
        means = torch.mm(e, self._val_mean)  # (2K, 2): [MSE_val, MSE_probe ; MAE_val, ·]
        values = means[:K].t().sqrt()  # (2, K): RMSE on validation, RMSE on the probe
        better = update_best(values, self._best, self._best_epoch, epoch)
        torch.where(better[:, self.students.owner], theta, self._best_theta, out=self._best_theta)
        return values[0], means[K:, 0]

    @torch.no_grad()
    def run_epoch(self, epoch: int, validate: bool) -> EpochNumbers:
        """One epoch of all K students (and validation, when asked): one device→host transfer."""
        cfg, K = self.cfg, self.K
        weights, alphas = self._loss_weights(epoch)
        acc = torch.zeros(K, 1, 2, dtype=self.dtype, device=self.device)
        snap_epoch = epoch in self.ctx.snapshot_epochs
        kept = None
        graphs = None if snap_epoch else self._cuda_graphs(weights)
        if graphs is not None:  # the epoch's steps as graph replays: no launches, no host work per op
            self._graph_weights.copy_(weights)
            self._graph_acc.zero_()
            for step in range(cfg.batches_per_epoch):
                graphs[min(step, 1)].replay()
            acc = self._graph_acc
        else:
            for step in range(cfg.batches_per_epoch):
                self.step = step
                kept = self.train_step(weights, acc, snap_epoch and step == cfg.batches_per_epoch - 1) or kept
        for k in range(K):
            self.teacher_queries[k] += self.queries_per_epoch[k]
        self.ctx.teacher.queries += sum(self.queries_per_epoch)
        if validate:
            rmse, mae = self.validate(epoch)
        else:
            rmse = mae = torch.full((K,), float("nan"), dtype=torch.float64, device=self.device)
        n = cfg.batches_per_epoch
        host = torch.stack([rmse, mae, acc[:, 0, 0].double() / n, acc[:, 0, 1].double() / n]).cpu().numpy()
        snapshots = [None] * K
        if kept is not None:
            snapshots = self.layout.snapshots(epoch, *(v.cpu() for v in kept), self.shape)
        return EpochNumbers.from_internal(self.layout, host, alphas, snapshots)

    # ------------------------------------------------------------------ CUDA graphs
    def _cuda_graphs(self, weights: torch.Tensor) -> list | None:
        """On a GPU, one training step captured as CUDA graphs — one for an epoch's first batch
        (generators learn there), one for the others — made on the first epoch that needs them;
        None where graphs are off (CPU, DFKD_CUDA_GRAPHS=0, a sampler or a teacher callable that
        declares it works on the host: graph_safe False) or capture failed (then eager, with one warning)."""
        if self._graphs is None:
            self._graphs = False
            if (self.device.type == "cuda" and self.cuda_graphs and os.environ.get("DFKD_CUDA_GRAPHS", "1") != "0"
                    and getattr(self.teacher, "graph_safe", True)
                    and all(g.graph_safe for g in self.groups)):
                try:
                    self._graphs = self._capture(weights)
                except Exception as exc:  # a driver or op that cannot be captured: stay eager
                    warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); the engine runs eagerly")
        return self._graphs or None

    def _mutable_state(self) -> list[torch.Tensor]:
        """The tensors a training step carries to the next one (everything else is rewritten)."""
        state = [self.students.theta, self.square_avg]
        for g in self.groups:
            state += g.mutable_state()
        return state

    def _capture(self, weights: torch.Tensor) -> list:
        """Warm up on a side stream (then put the state and the random streams back as they were),
        and capture train_step for batch 0 and for a later batch into one memory pool."""
        self._graph_weights = weights.clone()
        self._graph_acc = torch.zeros(self.K, 1, 2, dtype=self.dtype, device=self.device)
        saved = [t.clone() for t in self._mutable_state()]
        rng = [gen.get_state() for gen in self.gens]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for step in (0, 1, 0, 1):
                self.step = step
                self.train_step(self._graph_weights, self._graph_acc, False)
        torch.cuda.current_stream(self.device).wait_stream(side)
        for tensor, value in zip(self._mutable_state(), saved):
            tensor.copy_(value)
        for gen, state in zip(self.gens, rng):
            gen.set_state(state)
        self.students.refresh()
        if self.fused is not None:
            self.fused.refresh()
        graphs, pool = [], None
        for step in (0, 1):
            graph = torch.cuda.CUDAGraph()
            for gen in self.gens:
                graph.register_generator_state(gen)
            self.step = step
            with torch.cuda.graph(graph, pool=pool):
                self.train_step(self._graph_weights, self._graph_acc, False)
            pool = graph.pool()
            graphs.append(graph)
        self.step = 0
        return graphs

    @torch.no_grad()
    def finish(self, last_epoch: int) -> list[MemberResult]:
        run, primary = self.ctx, self.cfg.selection
        flats = {"validation": self.best_theta["validation"], "last": self.students.theta,
                 "synthetic": self.best_theta["synthetic"]}
        scores = {}
        for name, flat in flats.items():
            rmse, mae = self._metrics(flat, run.x_test, run.y_test)
            scores[name] = (rmse.cpu().tolist(), mae.cpu().tolist())
        return self.layout.results(primary, last_epoch, self._best, self._best_epoch, scores, self.teacher_queries,
                                   lambda k: self.students.state_dict(k, flats[primary]))
