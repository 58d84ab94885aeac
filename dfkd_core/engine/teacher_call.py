"""The teacher as its own part of the engine's step: ONE callable, queried once per step for the
points of all K members, that gives the teacher's values and — for gradient samplers — their
gradients with respect to the inputs. Which callable a run gets depends on the teacher alone;
the students' stack form never does (plan_stacks chooses it from the students and their
samplers):

* the paper's tanh MLP (MLPRegressor, or a user's teacher of one tanh hidden layer — a state_dict,
  or a TorchScript whose only parameters are its two layers' weights and biases, checked on
  probe points to give the module's values and gradients — with the run's input and output
  scaling folded into its weights): hand-written kernels (mlp_kernels.FrozenMLP; `bench
  --teacher PATH` times them against the built-in teacher and the plain loop);
* any other differentiable torch module (a TorchScript file, a state_dict MLP of any depth and
  activation, the MNIST CNN): autograd through the module (AutogradTeacher);
* a black box (an SVR, a skops model, an HTTP endpoint): its values only (BlackBoxCall).

Every callable takes points augmented with a constant-1 last column, x (N, d + 1), as the fused
MLP form keeps them, and returns f(x) (N,) and ∂f/∂x (N, d + 1) (the last column not meaningful).
The callable runs in the training process (no IPC): a worker confined before the user's model
loads keeps it in-process.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..models.networks import MLPRegressor
from ..models.teachers import Teacher, TorchTeacher
from .mlp_kernels import FrozenMLP


class AutogradTeacher:
    """Any differentiable torch module as the step's teacher: one forward (and, for gradients,
    one backward of the summed outputs) for all N rows; rows never mix in an eval-mode module,
    so the gradient of the sum is each row's own input gradient."""

    kernels = False

    def __init__(self, module: nn.Module, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        self.module, self.shape, self.dim, self.dtype = module, tuple(shape), math.prod(shape), dtype
        first = next(iter(module.parameters()), None)
        self.module_dtype = first.dtype if first is not None else dtype

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        """The module on rows x (N, d) → (N,) in the step's dtype."""
        inputs = x[:, :self.dim].to(self.module_dtype).reshape(-1, *self.shape)
        return self.module(inputs).reshape(-1).to(self.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) for x (N, d + 1) → (N,)."""
        with torch.no_grad():
            return self._call(x)

    def forward_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(x) (N,), ∂f/∂x (N, d + 1)) for x (N, d + 1): the constant column gets 0."""
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            out = self._call(leaf)
            (grad,) = torch.autograd.grad(out.sum(), leaf)
        return out.detach(), grad


class BlackBoxCall:
    """A teacher without gradients (values only): random and black-box samplers use it."""

    kernels = False
    graph_safe = False  # it answers on the host (numpy, HTTP): no CUDA graph can hold it

    def __init__(self, teacher: Teacher, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        self.teacher, self.shape, self.dim, self.dtype = teacher, tuple(shape), math.prod(shape), dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        queries = self.teacher.queries  # the stack counts its own queries
        with torch.no_grad():
            out = self.teacher.predict(x[:, :self.dim].reshape(-1, *self.shape)).reshape(-1).to(self.dtype)
        self.teacher.queries = queries
        return out

    def forward_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise TypeError("a black-box teacher gives no input gradients")  # prepare_run refuses such runs first


def _tanh_mlp_weights(model: nn.Module) -> tuple[tuple[torch.Tensor, ...], bool] | None:
    """((W₁, b₁, w₂, b₂), known) of a model that may be one tanh hidden layer d → H → 1: a
    state_dict LinearStack with 'tanh' is one (known True); a module whose parameters are exactly
    W₁ (H, d), b₁ (H,), W₂ (1, H), b₂ (1,) and nothing else (a TorchScript MLP with its scaling
    folded into the weights) may be one — known False: verified on probe points before use."""
    from ..models.user_models import LinearStack

    if isinstance(model, LinearStack):
        if model.activation != "tanh" or len(model.layers) != 2:
            return None
        fc1, fc2 = model.layers
        if fc1.bias is None or fc2.bias is None:
            return None
        return (fc1.weight, fc1.bias, fc2.weight.reshape(-1), fc2.bias.reshape(())), True
    params = [p.detach() for p in model.parameters()]
    if len(params) != 4 or any(True for _ in model.buffers()):
        return None
    w1, b1, w2, b2 = params
    hidden, d = w1.shape if w1.dim() == 2 else (0, 0)
    if not (hidden and b1.shape == (hidden,) and w2.shape == (1, hidden) and b2.shape == (1,)):
        return None
    return (w1, b1, w2.reshape(-1), b2.reshape(())), False


def foldable_mlp(module: nn.Module) -> tuple[tuple[torch.Tensor, ...], bool] | None:
    """((W₁, b₁, w₂, b₂), known) of a teacher that is (or, known False, may be: _tanh_mlp_weights)
    one tanh hidden layer d → H → 1, with a user teacher's input and output scaling
    (models.user_models.TeacherBoundary) folded into the weights, or None for any other module:
        z → x = z·σ_x + μ_x → y = w₂·tanh(W₁x + b₁) + b₂ → (y − μ_y)/σ_y
    is the MLP with W₁' = W₁·diag(σ_x), b₁' = b₁ + W₁μ_x, w₂' = w₂/σ_y, b₂' = (b₂ − μ_y)/σ_y."""
    if isinstance(module, MLPRegressor):
        return (module.fc1.weight.detach(), module.fc1.bias.detach(), module.fc2.weight.detach().reshape(-1),
                module.fc2.bias.detach().reshape(())), True
    from ..models.user_models import TeacherBoundary

    if not isinstance(module, TeacherBoundary) or len(module.input_shape) != 1:
        return None
    found = _tanh_mlp_weights(module.model)
    if found is None or found[0][0].shape[1] != module.input_shape[0]:
        return None
    (w1, b1, w2, b2), known = found
    with torch.no_grad():
        dtype = w1.dtype
        w1, b1, w2, b2 = (w.detach().double() for w in (w1, b1, w2, b2))
        sx, mx = module.x_std.double(), module.x_mean.double()
        return ((w1 * sx[None, :]).to(dtype), (b1 + w1 @ mx).to(dtype), (w2 / module.y_std).to(dtype),
                ((b2 - module.y_mean) / module.y_std).to(dtype)), known


PROBE_ROWS = 2048  # points on which a candidate MLP is checked against the module before it replaces it
PROBE_TOLERANCE = 1e-4  # relative to the outputs' (gradients') scale: σ-form rounding in float32 is ~1e-6


def same_function(call: FrozenMLP, reference: "AutogradTeacher", dim: int) -> bool:
    """Whether the kernels' candidate gives the module's values and input gradients on probe points
    (standard normal at scales 1, 3 and 10: the standardized inputs a run sends, and far beyond)."""
    gen = torch.Generator(device=call.device).manual_seed(2023)
    z = torch.randn(PROBE_ROWS, dim, generator=gen, device=call.device, dtype=torch.float64)
    z = z * torch.tensor([1.0, 3.0, 10.0], device=call.device, dtype=torch.float64).repeat_interleave(
        -(-PROBE_ROWS // 3))[:PROBE_ROWS, None]
    x = torch.cat([z, torch.ones(PROBE_ROWS, 1, device=call.device, dtype=torch.float64)], 1).to(call.dtype)
    try:
        f, g = call.forward_grad(x)
        f_ref, g_ref = reference.forward_grad(x.to(reference.dtype))
    except Exception:  # the module refuses such inputs: keep it whole
        return False
    f_ref, g_ref = f_ref.to(f.dtype), g_ref[:, :dim].to(g.dtype)
    if not (torch.isfinite(f_ref).all() and torch.isfinite(g_ref).all()):
        return False
    f_ok = (f - f_ref).abs().max() <= PROBE_TOLERANCE * (1.0 + f_ref.abs().max())
    g_ok = (g[:, :dim] - g_ref).abs().max() <= PROBE_TOLERANCE * (1.0 + g_ref.abs().max())
    return bool(f_ok and g_ok)


def make_teacher_call(teacher: Teacher, shape: tuple[int, ...], dtype: torch.dtype, kernels: bool = True):
    """The step's teacher callable for `teacher` (see the module docstring). `kernels=False`
    takes autograd even where the hand-written MLP kernels apply (`bench` times both)."""
    if isinstance(teacher, TorchTeacher):
        autograd = AutogradTeacher(teacher.module, shape, dtype)
        found = foldable_mlp(teacher.module) if kernels else None
        if found is None:
            return autograd
        weights, known = found
        if isinstance(teacher.module, MLPRegressor):
            return FrozenMLP(teacher.module)  # the module's own tensors: results as before, bit for bit
        call = FrozenMLP.from_weights(*(w.to(dtype) for w in weights))
        return call if known or same_function(call, autograd, math.prod(shape)) else autograd
    return BlackBoxCall(teacher, shape, dtype)


def teacher_call(run, kernels: bool = True):
    """The run's teacher callable, made once per run and shared by its stacks."""
    cache = run.__dict__.setdefault("_teacher_calls", {})
    key = (kernels, run.split.prior.mean.dtype)
    if key not in cache:
        cache[key] = make_teacher_call(run.teacher, tuple(run.split.prior.shape), run.split.prior.mean.dtype, kernels)
    return cache[key]
