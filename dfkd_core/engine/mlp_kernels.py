"""Hand-written forward and backward passes for the paper's tanh MLPs (d → h → 1), for one
frozen network (the teacher) and for K networks stacked along a leading axis (students,
Kang & Kang generators), used by the fused MLP stack form (engine.fused_mlp) instead of autograd.

Why by hand: the loop is bound by per-op overhead and by the elementwise work on the
teacher's 500-wide hidden layer, not by matrix products. Three choices follow:

* tanh is evaluated as tanh(z) = 2·σ(2z) − 1, with the factors folded into the weights:
  for f(x) = w₂·tanh(W₁x + b₁) + b₂ and s = σ(2W₁x + 2b₁),
      f(x)   = (2w₂)·s + (b₂ − Σw₂)
      ∂f/∂x  = (s − s²) @ (4·w₂ ⊙ W₁)          (since 1 − tanh² = 4·s·(1 − s))
  so a forward pass is one GEMM, one σ and one GEMV, and the input gradient one more
  elementwise pass and one GEMM. torch.sigmoid is several times cheaper than torch.tanh
  on CPUs; in float64 the two agree to ~1e-16.
* The frozen teacher's folded weights are computed once; teacher evaluations are chunked
  so the (rows × hidden) activations stay in the CPU's L2 cache.
* Gradients are only ever computed for what the algorithm updates (students' and
  generators' parameters, synthetic points); nothing here builds an autograd graph.
"""
from __future__ import annotations

import torch
from torch import nn

CHUNK_ELEMENTS = 1 << 17  # activations per teacher chunk: 128 Ki floats = 512 KiB (float32), fits L2

class FrozenMLP:
    """A fixed MLPRegressor (the teacher) in σ form: forward(x) and forward_grad(x) → (f, ∂f/∂x)
    on flattened inputs augmented with a constant-1 column, x (N, d + 1), so that the hidden
    bias is part of the matrix product (no broadcast copy); chunked over rows. The last
    column of ∂f/∂x (the derivative with respect to the constant) is not meaningful."""

    kernels = True  # a hand-written teacher callable (engine.teacher_call)

    def __init__(self, module: nn.Module, chunk_rows: int | None = None) -> None:
        self._setup(module.fc1.weight.detach(), module.fc1.bias.detach(), module.fc2.weight.detach().reshape(-1),
                    module.fc2.bias.detach().reshape(()), chunk_rows)

    @classmethod
    def from_weights(cls, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                     chunk_rows: int | None = None) -> "FrozenMLP":
        """The network w₂·tanh(W₁x + b₁) + b₂ given by its weights (W₁ (H, d), b₁ (H,), w₂ (H,), b₂ 0-dim)."""
        self = cls.__new__(cls)
        self._setup(w1, b1, w2.reshape(-1), b2.reshape(()), chunk_rows)
        return self

    def _setup(self, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
               chunk_rows: int | None) -> None:
        self.hidden, self.dim = w1.shape
        self.dtype, self.device = w1.dtype, w1.device
        self.w_aug = (2.0 * torch.cat([w1, b1[:, None]], 1)).t().contiguous()  # (d + 1, H)
        self.w2x2 = 2.0 * w2
        self.c = b2 - w2.sum()  # 0-dim
        self.jac = (4.0 * w2[:, None] * torch.cat([w1, b1[:, None]], 1)).contiguous()  # (H, d + 1)
        self.chunk = chunk_rows or max(16, CHUNK_ELEMENTS // self.hidden)
        self._s = torch.empty(self.chunk, self.hidden, dtype=self.dtype, device=self.device)
        self._q = torch.empty_like(self._s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) for x (N, d + 1) → (N,)."""
        n = x.shape[0]
        out = torch.empty(n, dtype=self.dtype, device=self.device)
        for i in range(0, n, self.chunk):
            j = min(n, i + self.chunk)
            s = torch.mm(x[i:j], self.w_aug, out=self._s[: j - i]).sigmoid_()
            torch.addmv(self.c, s, self.w2x2, out=out[i:j])
        return out

    def forward_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(x) (N,), ∂f/∂x (N, d + 1)) for x (N, d + 1)."""
        n = x.shape[0]
        out = torch.empty(n, dtype=self.dtype, device=self.device)
        grad = torch.empty(n, self.dim + 1, dtype=self.dtype, device=self.device)
        for i in range(0, n, self.chunk):
            j = min(n, i + self.chunk)
            s = torch.mm(x[i:j], self.w_aug, out=self._s[: j - i]).sigmoid_()
            torch.addmv(self.c, s, self.w2x2, out=out[i:j])
            torch.mm(torch.addcmul(s, s, s, value=-1.0, out=self._q[: j - i]), self.jac, out=grad[i:j])
        return out, grad


class StackedMLPs:
    """K MLPRegressors d → h → 1 as one flat parameter vector `theta` (float, on the device)
    laid out block by block — A₁ = [W₁ | b₁] (K, h, d + 1), w₂ (K, h), b₂ (K,) — so an
    optimizer step is a handful of elementwise ops on one tensor. Inputs carry a constant-1
    last column (x (Kg, n, d + 1)), so b₁ is part of the batched matrix product and its
    gradient comes out of the same product as W₁'s. Methods take a member range [k0, k1)
    so groups of members can be evaluated on their own synthetic points."""

    def __init__(self, modules: list[nn.Module], device: torch.device, dtype: torch.dtype) -> None:
        first = modules[0]
        self.k = len(modules)
        self.h, self.d = first.fc1.weight.shape
        k, h, d = self.k, self.h, self.d
        self.sizes = (k * h * (d + 1), k * h, k)
        self.theta = torch.empty(sum(self.sizes), dtype=dtype, device=device)
        self.grad = torch.zeros_like(self.theta)
        self.a1, self.w2, self.b2 = self.views(self.theta)
        self.g_a1, self.g_w2, self.g_b2 = self.views(self.grad)
        with torch.no_grad():
            for i, m in enumerate(modules):
                self.a1[i, :, :d].copy_(m.fc1.weight)
                self.a1[i, :, d].copy_(m.fc1.bias)
                self.w2[i].copy_(m.fc2.weight.reshape(-1))
                self.b2[i].copy_(m.fc2.bias.reshape(()))
        # member index of every entry of theta (for per-member masked copies)
        ar = torch.arange(k, device=device)
        self.owner = torch.cat([ar.repeat_interleave(h * (d + 1)), ar.repeat_interleave(h), ar])
        # σ-form constants, rewritten in place by refresh(); per-group views cached
        self.a1x2 = torch.empty_like(self.a1)  # 2·A₁
        self.w2x2 = torch.empty_like(self.w2)  # 2·w₂
        self.w2x4 = torch.empty_like(self.w2)  # 4·w₂
        self.c = torch.empty(k, 1, 1, dtype=dtype, device=device)  # b₂ − Σw₂
        self.jac = torch.empty_like(self.a1)  # 4·w₂ ⊙ A₁
        self._views: dict = {}
        self.refresh()

    def views(self, flat: torch.Tensor):
        k, h, d = self.k, self.h, self.d
        a, b, _ = self.sizes
        return flat[:a].view(k, h, d + 1), flat[a:a + b].view(k, h), flat[a + b:].view(k)

    def refresh(self) -> None:
        """Recompute the σ-form constants after the parameters changed."""
        torch.mul(self.a1, 2.0, out=self.a1x2)
        torch.mul(self.w2, 2.0, out=self.w2x2)
        torch.mul(self.w2, 4.0, out=self.w2x4)
        torch.sub(self.b2, self.w2.sum(1), out=self.c.view(-1))
        torch.mul(self.a1, self.w2x4[:, :, None], out=self.jac)

    def _group(self, k0: int, k1: int):
        key = (k0, k1)
        if key not in self._views:
            self._views[key] = (self.a1x2[k0:k1].transpose(1, 2), self.c[k0:k1], self.w2x2[k0:k1, :, None],
                                self.jac[k0:k1])
        return self._views[key]

    def forward(self, x: torch.Tensor, k0: int = 0, k1: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (Kg, n, d + 1) → (f (Kg, n), s (Kg, n, h)) for members [k0, k1)."""
        a1x2t, c, w2x2, _ = self._group(k0, self.k if k1 is None else k1)
        s = torch.bmm(x, a1x2t).sigmoid_()
        return torch.baddbmm(c, s, w2x2).squeeze(2), s

    def input_grad(self, s: torch.Tensor, k0: int = 0, k1: int | None = None) -> torch.Tensor:
        """∂f/∂x (Kg, n, d + 1) from the σ activations of forward(); overwrites s."""
        jac = self._group(k0, self.k if k1 is None else k1)[3]
        return torch.bmm(s.addcmul_(s, s, value=-1.0), jac)

    def backward(self, x: torch.Tensor, s: torch.Tensor, g_out: torch.Tensor, cache: dict | None = None) -> None:
        """Write into self.grad the gradient of Σᵢ g_outᵢ·f(xᵢ) for all K members
        (x (K, n, d + 1), s from forward(x), g_out (K, n)); overwrites s. A caller that passes
        the same x, s and g_out tensors on every call may pass a dict `cache` in which the
        views (and a scratch buffer) are kept between calls."""
        v = cache
        if not v:
            v = dict(g_row=g_out[:, None, :], g_w2=self.g_w2[:, None, :], g_b2=self.g_b2[:, None],
                     q_t=s.transpose(1, 2), g_col=g_out[:, :, None], w2x4=self.w2x4[:, :, None],
                     gx=torch.empty_like(x) if self.d < self.h else None)
            if cache is not None:
                cache.update(v)
        torch.sum(g_out, 1, out=self.g_b2)
        torch.bmm(v["g_row"], s, out=v["g_w2"])  # Σ g·s
        self.g_w2.add_(self.g_w2).sub_(v["g_b2"])  # Σ g·tanh = 2Σ g·s − Σ g (x + x = 2x exactly)
        s.addcmul_(s, s, value=-1.0)  # q = s(1 − s) = (1 − tanh²)/4, in place
        if self.d < self.h:
            torch.bmm(v["q_t"], torch.mul(v["g_col"], x, out=v["gx"]), out=self.g_a1)
        else:
            torch.bmm(s.mul_(v["g_col"]).transpose(1, 2), x, out=self.g_a1)
        self.g_a1.mul_(v["w2x4"])

    def state_dict(self, k: int, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Member k's weights (from theta, or from a flat copy of it) in MLPRegressor's layout, on the CPU."""
        a1, w2, b2 = self.views(self.theta if flat is None else flat)
        d = self.d
        return {"fc1.weight": a1[k, :, :d].detach().cpu().clone(), "fc1.bias": a1[k, :, d].detach().cpu().clone(),
                "fc2.weight": w2[k].detach().cpu().clone().reshape(1, -1),
                "fc2.bias": b2[k].detach().cpu().clone().reshape(1)}

    def predict_shared(self, flat: torch.Tensor, x: torch.Tensor, rows: int = 1 << 20) -> torch.Tensor:
        """Every member of a flat parameter vector (laid out like theta) on the same points
        x (n, d) → (K, n)."""
        return self.predict_aug(flat, self.augment(x), rows)

    @staticmethod
    def augment(x: torch.Tensor) -> torch.Tensor:
        """2·[x | 1] (n, d + 1): the points predict_aug takes (the σ form's factor 2 is exact)."""
        return torch.cat([x, torch.ones_like(x[:, :1])], 1).mul_(2.0)

    def predict_aug(self, flat: torch.Tensor, xa2: torch.Tensor, rows: int = 1 << 20) -> torch.Tensor:
        """Every member on the same points given as xa2 = augment(x) (n, d + 1) → (K, n): per
        chunk of points one GEMM over all K·h hidden units (A₁ of all members is one (K·h, d + 1)
        block of flat, biases included), one σ, and the output layer as one batched product
        taken transposed (1 × h times h × n per member: MKL's batched GEMV with one output
        column, the other way round, is ~2× slower)."""
        a1, w2, b2 = self.views(flat)
        k, h, d = self.k, self.h, self.d
        w_all = a1.reshape(k * h, d + 1).t()
        w2x2, c = (w2 + w2)[:, None, :], (b2 - w2.sum(1))[:, None, None]
        n = xa2.shape[0]
        out = torch.empty(k, 1, n, dtype=flat.dtype, device=flat.device)
        step = max(1, rows // (k * h))
        for i in range(0, n, step):
            j = min(n, i + step)
            s = torch.mm(xa2[i:j], w_all).sigmoid_()  # (n, K·h)
            torch.baddbmm(c, w2x2, s.view(j - i, k, h).permute(1, 2, 0), out=out[:, :, i:j])
        return out.view(k, n)


class StackedGenerators:
    """K of Kang & Kang's generators z → hidden (tanh) → d, with the output layer that
    respects the prior (identity / sigmoid into [lower, upper] / softmax onto the simplex),
    stacked like StackedMLPs: flat `theta` with blocks G₁ (K, H, z), c₁ (K, H), G₂ (K, d, H), c₂ (K, d)."""

    def __init__(self, modules: list[nn.Module], device: torch.device, dtype: torch.dtype) -> None:
        first = modules[0]
        self.k = len(modules)
        self.hidden, self.z_dim = first.fc1.weight.shape
        self.d = first.fc2.weight.shape[0]
        self.kind = first.prior_kind
        k, hh, z, d = self.k, self.hidden, self.z_dim, self.d
        self.sizes = (k * hh * z, k * hh, k * d * hh, k * d)
        self.theta = torch.empty(sum(self.sizes), dtype=dtype, device=device)
        self.grad = torch.zeros_like(self.theta)
        self.square_avg = torch.zeros_like(self.theta)
        self.g1, self.c1, self.g2, self.c2 = self.views(self.theta)
        self.gg1, self.gc1, self.gg2, self.gc2 = self.views(self.grad)
        with torch.no_grad():
            for i, m in enumerate(modules):
                self.g1[i].copy_(m.fc1.weight)
                self.c1[i].copy_(m.fc1.bias)
                self.g2[i].copy_(m.fc2.weight)
                self.c2[i].copy_(m.fc2.bias)
        self.lower = first.lower.to(device, dtype)
        self.span = (first.upper - first.lower).to(device, dtype)

    def views(self, flat: torch.Tensor):
        k, hh, z, d = self.k, self.hidden, self.z_dim, self.d
        a, b, c, _ = self.sizes
        return (flat[:a].view(k, hh, z), flat[a:a + b].view(k, hh), flat[a + b:a + b + c].view(k, d, hh),
                flat[a + b + c:].view(k, d))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """z (K, n, z_dim) → (x (K, n, d), what backward() needs)."""
        s = torch.baddbmm(self.c1[:, None, :], z, self.g1.transpose(1, 2), beta=2.0, alpha=2.0).sigmoid_()
        bias = self.c2 - self.g2.sum(2)  # (K, d)
        out = torch.baddbmm(bias[:, None, :], s, self.g2.transpose(1, 2), alpha=2.0)
        if self.kind == "clipped_gaussian":
            sig = out.sigmoid_()
            x = self.lower + self.span * sig
            return x, (z, s, sig)
        if self.kind == "simplex":
            x = torch.softmax(out, dim=2)
            return x, (z, s, x)
        return out, (z, s, None)

    def backward(self, g_x: torch.Tensor, saved: tuple) -> None:
        """Write into self.grad the gradient of Σ g_x·x(z) (g_x (K, n, d))."""
        z, s, extra = saved
        if self.kind == "clipped_gaussian":
            g_o = g_x * self.span * extra * (1.0 - extra)
        elif self.kind == "simplex":
            g_o = extra * (g_x - (g_x * extra).sum(2, keepdim=True))
        else:
            g_o = g_x
        torch.sum(g_o, 1, out=self.gc2)
        torch.bmm(g_o.transpose(1, 2), s, out=self.gg2)  # Σ g·s   (K, d, H)
        self.gg2.mul_(2.0).sub_(self.gc2[:, :, None])  # Σ g·tanh = 2Σ g·s − Σ g
        g_a = torch.bmm(g_o, self.g2)  # (K, n, H)
        g_pre = g_a.mul_(s.addcmul_(s, s, value=-1.0)).mul_(4.0)
        torch.bmm(g_pre.transpose(1, 2), z, out=self.gg1)
        torch.sum(g_pre, 1, out=self.gc1)


class FusedTeacherStudents:
    """The direct-sampler fast path: the frozen teacher and K stacked students evaluated side
    by side on each member's own points, in row-major buffers that the whole step reuses.

    Every evaluation of a set of rows (points x with a constant-1 column, X (K, M, d + 1))
    is four ops whatever K is:
        A[..., :H]  = X @ 2[W₁ | b₁]ᵀ_T          one bmm; the teacher's matrix is expanded, not copied
        A[..., H:]  = X @ 2[W₁ | b₁]ᵀ_S          one baddbmm (β = 0) into the same buffer
        A           = σ(A)                        one σ over teacher and student units together
        Oᵀ          = c + Vᵀ @ Aᵀ                 one baddbmm: Oᵀ[:, 0] = T(x), Oᵀ[:, 1] = S(x)
    (Vᵀ is block diagonal: the teacher's 2w₂ in row 0, the student's in row 1; c holds
    b₂ − Σw₂ of each. The output product is taken transposed, 2 × n, because MKL's batched
    GEMM with 1 or 2 output columns is 5× slower than with 2 output rows.) The input gradient of an objective that is linear in (T, S) — the
    squared discrepancy, γ·S², plus β‖x‖² or β|x| — is then
        Dᵀ = Mobjᵀ @ Oᵀ                           (∂L/∂T, ∂L/∂S) per point, one bmm
        Q  = A − A²                               one addcmul over teacher and student units
        Gᵀ = 2β·Xᵀ + D_T ⊙ (4w₂_T ⊙ A₁_T)ᵀ Q_Tᵀ + D_S ⊙ 4(w₂_S ⊙ A₁_S)ᵀ Q_Sᵀ
    — two bmm and three small elementwise ops on (d + 1) × n: the per-point factors D are
    applied after the products, not to the (n × H) activations. The products are taken
    transposed (d + 1 rows of output), which MKL runs 2–3× faster than Q @ J when d is small. The student evaluations on x_p made on the first inner step are the ones the
    student step needs (the student only changes in the student step), so after the direct
    steps only x_g is evaluated again."""

    def __init__(self, teacher: FrozenMLP, students: StackedMLPs, rows: int, coef: tuple[float, float, float]) -> None:
        k, h, dd = students.k, students.h, students.d + 1
        hid, dev, dt = teacher.hidden, students.theta.device, students.theta.dtype
        self.st, self.hidden = students, hid
        self.w_t = teacher.w_aug.expand(k, dd, hid)  # 2[W₁ | b₁]ᵀ of the teacher, shared by all members
        self.jac_t = teacher.jac.t().contiguous().expand(k, dd, hid)  # (4w₂ ⊙ [W₁ | b₁])ᵀ
        self.vt = torch.zeros(k, 2, hid + h, dtype=dt, device=dev)
        self.vt[:, 0, :hid] = teacher.w2x2
        self.vt_s = self.vt[:, 1, hid:]  # the students' 2w₂, rewritten by refresh()
        self.c = torch.empty(k, 2, 1, dtype=dt, device=dev)
        self.c[:, 0, 0] = teacher.c
        self.c_s = self.c[:, 1, 0]  # the students' b₂ − Σw₂
        self.jac_s = torch.empty_like(students.a1)  # w₂ ⊙ A₁ (the 4 is the baddbmm's α)
        w_disc, w_ssq, self.beta_l2 = coef[0], coef[1], coef[2]
        # Dᵀ = mobjᵀ @ Oᵀ: ∂L/∂T = −2w(T − S), ∂L/∂S = 2w(T − S) + 2γS
        mobj_t = torch.tensor([[-2.0 * w_disc, 2.0 * w_disc], [2.0 * w_disc, -2.0 * w_disc + 2.0 * w_ssq]], dtype=dt, device=dev)
        self.mobj_t = mobj_t.expand(k, 2, 2)
        self.a = torch.empty(k, rows, hid + h, dtype=dt, device=dev)
        self.ot = torch.empty(k, 2, rows, dtype=dt, device=dev)
        self._cache: dict = {}
        self.a1_t = students.a1.transpose(1, 2)
        self.jac_s_t = self.jac_s.transpose(1, 2)
        self.w2_col = students.w2[:, :, None]
        self.refresh()

    def refresh(self) -> None:
        """Recompute the students' σ-form constants after their parameters changed (the ones
        forward, objective_grad and StackedMLPs.backward use; not StackedMLPs.refresh's others)."""
        st = self.st
        torch.add(st.w2, st.w2, out=self.vt_s)  # 2w₂ and 4w₂ by additions: exact, and no scalar operand
        torch.add(self.vt_s, self.vt_s, out=st.w2x4)
        torch.sub(st.b2, st.w2.sum(1), out=self.c_s)
        torch.mul(st.a1, self.w2_col, out=self.jac_s)

    def _views(self, n: int):
        if n not in self._cache:
            hid, a = self.hidden, self.a[:, :n]
            k, h = self.st.k, self.st.h
            dt, dev = a.dtype, a.device
            self._cache[n] = dict(
                a=a, a_t=a[..., :hid], a_s=a[..., hid:], a_tr=a.transpose(1, 2), ot=self.ot[..., :n],
                dt=torch.empty(k, 2, n, 1, dtype=dt, device=dev),
                q=torch.empty(k, n, hid + h, dtype=dt, device=dev),
                gt=torch.empty(k, self.st.d + 1, n, dtype=dt, device=dev),
                gs=torch.empty(k, self.st.d + 1, n, dtype=dt, device=dev), x=None)
            v = self._cache[n]
            v["d_t"] = v["dt"][..., 0]
            v["d_tt"], v["d_ts"] = v["d_t"][:, 0:1], v["d_t"][:, 1:2]
            v["q_tt"], v["q_st"] = v["q"][..., :hid].transpose(1, 2), v["q"][..., hid:].transpose(1, 2)
        return self._cache[n]

    def _x_t(self, v: dict, x: torch.Tensor) -> torch.Tensor:
        """x.transpose(1, 2), kept while the same x comes back."""
        if v["x"] is not x:
            v["x"], v["x_t"] = x, x.transpose(1, 2)
        return v["x_t"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher and students on the first n rows of every member, x (K, n, d + 1) →
        Oᵀ (K, 2, n) = (T, S) (a view of the shared buffer; the activations stay in self.a)."""
        v = self._views(x.shape[1])
        torch.bmm(x, self.w_t, out=v["a_t"])
        v["a_s"].baddbmm_(x, self.a1_t, beta=0.0, alpha=2.0)
        v["a"].sigmoid_()
        return torch.baddbmm(self.c, self.vt, v["a_tr"], out=v["ot"])

    def objective_grad(self, x: torch.Tensor, l1: float = 0.0) -> torch.Tensor:
        """∂/∂x of the linear objective at the points of the last forward(x), transposed:
        (K, d + 1, n) (the last row, for the constant column, is not meaningful)."""
        v = self._views(x.shape[1])
        q, gt, gs = v["q"], v["gt"], v["gs"]
        torch.bmm(self.mobj_t, v["ot"], out=v["d_t"])  # (K, 2, n): ∂L/∂T, ∂L/∂S
        torch.addcmul(v["a"], v["a"], v["a"], value=-1.0, out=q)
        torch.bmm(self.jac_t, v["q_tt"], out=gt)
        torch.bmm(self.jac_s_t, v["q_st"], out=gs)
        gt.mul_(v["d_tt"]).addcmul_(gs, v["d_ts"], value=4.0)
        if self.beta_l2 or l1:
            x_t = self._x_t(v, x)
            if self.beta_l2:
                gt.add_(x_t, alpha=2.0 * self.beta_l2)
            if l1:
                gt.add_(x_t.sign(), alpha=l1)
        return gt
