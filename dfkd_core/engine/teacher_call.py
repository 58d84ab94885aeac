"""The teacher as its own part of the engine's step: ONE callable, queried once per step for the
points of all K members, that gives the teacher's values and — for gradient samplers — their
gradients with respect to the inputs. Which callable a run gets depends on the teacher alone;
the students' stack form never does (plan_stacks chooses it from the students and their
samplers):

* the paper's tanh MLP (MLPRegressor, or a user's state_dict of one tanh hidden layer, whose
  input and output scaling is folded into its weights): hand-written kernels
  (mlp_kernels.FrozenMLP; `bench` times them against autograd through the same network);
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


def foldable_mlp(module: nn.Module) -> tuple[torch.Tensor, ...] | None:
    """(W₁, b₁, w₂, b₂) of a teacher that is one tanh hidden layer d → H → 1, with a user
    teacher's input and output scaling (models.user_models.TeacherBoundary over a state_dict
    LinearStack) folded into the weights, or None for any other module:
        z → x = z·σ_x + μ_x → y = w₂·tanh(W₁x + b₁) + b₂ → (y − μ_y)/σ_y
    is the MLP with W₁' = W₁·diag(σ_x), b₁' = b₁ + W₁μ_x, w₂' = w₂/σ_y, b₂' = (b₂ − μ_y)/σ_y."""
    if isinstance(module, MLPRegressor):
        return (module.fc1.weight.detach(), module.fc1.bias.detach(), module.fc2.weight.detach().reshape(-1),
                module.fc2.bias.detach().reshape(()))
    from ..models.user_models import LinearStack, TeacherBoundary

    if not (isinstance(module, TeacherBoundary) and isinstance(module.model, LinearStack)):
        return None
    stack = module.model
    if stack.activation != "tanh" or len(stack.layers) != 2 or len(module.input_shape) != 1:
        return None
    fc1, fc2 = stack.layers
    if fc1.bias is None or fc2.bias is None:
        return None
    with torch.no_grad():
        w1, b1 = fc1.weight.double(), fc1.bias.double()
        sx, mx = module.x_std.double(), module.x_mean.double()
        w2, b2 = fc2.weight.double().reshape(-1), fc2.bias.double().reshape(())
        dtype = fc1.weight.dtype
        return ((w1 * sx[None, :]).to(dtype), (b1 + w1 @ mx).to(dtype), (w2 / module.y_std).to(dtype),
                ((b2 - module.y_mean) / module.y_std).to(dtype))


def make_teacher_call(teacher: Teacher, shape: tuple[int, ...], dtype: torch.dtype, kernels: bool = True):
    """The step's teacher callable for `teacher` (see the module docstring). `kernels=False`
    takes autograd even where the hand-written MLP kernels apply (`bench` times both)."""
    if isinstance(teacher, TorchTeacher):
        weights = foldable_mlp(teacher.module) if kernels else None
        if weights is not None:
            if isinstance(teacher.module, MLPRegressor):
                call = FrozenMLP(teacher.module)  # the module's own tensors: results as before, bit for bit
            else:
                call = FrozenMLP.from_weights(*(w.to(dtype) for w in weights))
            call.kernels = True
            return call
        return AutogradTeacher(teacher.module, shape, dtype)
    return BlackBoxCall(teacher, shape, dtype)


def teacher_call(run, kernels: bool = True):
    """The run's teacher callable, made once per run and shared by its stacks."""
    cache = run.__dict__.setdefault("_teacher_calls", {})
    key = (kernels, run.split.prior.mean.dtype)
    if key not in cache:
        cache[key] = make_teacher_call(run.teacher, tuple(run.split.prior.shape), run.split.prior.mean.dtype, kernels)
    return cache[key]
