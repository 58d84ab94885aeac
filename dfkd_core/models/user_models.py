"""Teachers the user brings — a TorchScript file, a state_dict of Linear layers, a skops
regressor or an HTTP endpoint — loaded without ever unpickling, probed before training, and
wrapped so that the teacher sees inputs in its own units while the engine works standardized."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import pickle  # only for pickle.UnpicklingError: nothing here is ever unpickled
import re
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.split import Split
from ..data.user import original_name, table_columns_of
from ..errors import ConfigError, DfkdError, ModelError
from .http_teacher import HttpModel
from . import sandbox
from .teachers import BlackBoxTeacher, Teacher, TeacherInfo, TorchTeacher, build_model, evaluate

# Hidden activations of a state_dict teacher (the file stores weights, not the activation).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "softplus": F.softplus,
    "gelu": F.gelu, "elu": F.elu, "leaky_relu": F.leaky_relu, "silu": F.silu, "identity": lambda x: x,
}
TEACHER_KINDS = ("torchscript", "state_dict", "skops", "http")
GRADIENT_FREE_REASON = "it is a black box (no gradients reach its inputs)"
PROBE_SIZE = 64  # inputs sent to the teacher before training to check its output
PICKLE_HINT = ("its weights with torch.save(model.state_dict(), path) (then give --teacher-activation), or the whole "
               "model with torch.jit.save(torch.jit.script(model), path); see docs/your-model.md")
DEFAULT_CALL_DEADLINE_S = 120.0  # one call of a user's teacher, unless DFKD_TEACHER_DEADLINE_S says otherwise
CHECK_TIMEOUT_S = 120.0  # the model checker process's wall-clock limit


# ---------------------------------------------------------------- the teacher's boundary
def one_per_row(out: torch.Tensor, n: int) -> torch.Tensor:
    """(n,) or (n, 1) → (n,); any other shape is a ModelError saying what came."""
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.dim() != 1 or out.shape[0] != n:
        raise ModelError(f"The teacher must return one value per input, shape ({n},) or ({n}, 1). "
                         f"Got shape {tuple(out.shape)} instead.")
    return out


class TeacherNotFinite(ModelError):
    """The teacher answered NaN or inf: the run ends 'failed' with this reason."""

    def __init__(self, bad: int, total: int) -> None:
        super().__init__(f"The teacher returned NaN or inf for {bad} of {total} inputs during the run; a teacher must "
                         "return finite numbers everywhere the samplers look.")
        self.bad, self.total = bad, total


def require_finite(out: torch.Tensor) -> None:
    """Raise TeacherNotFinite when `out` holds NaN or inf. On a GPU this reads one number back
    (a sync); while a CUDA graph is being captured it is skipped (the replays are not checked)."""
    if out.is_cuda and torch.cuda.is_current_stream_capturing():
        return
    bad = int((~torch.isfinite(out.detach())).sum())
    if bad:
        raise TeacherNotFinite(bad, out.numel())


class CallDeadline:
    """A wall-clock deadline on every call of a user's teacher (DFKD_TEACHER_DEADLINE_S, default
    DEFAULT_CALL_DEADLINE_S): a watchdog thread ends the process when one call overruns, after
    `on_expire(message)` recorded why (a run's worker marks its run failed; the CLI prints it)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.depth = 0
        self.thread: threading.Thread | None = None
        self.on_expire: Callable[[str], None] = _print_and_exit

    @staticmethod
    def seconds() -> float:
        return sandbox.env_positive("DFKD_TEACHER_DEADLINE_S", DEFAULT_CALL_DEADLINE_S)

    def __enter__(self) -> None:
        if self.depth == 0:
            if self.thread is None:
                self.thread = threading.Thread(target=self._watch, name="dfkd-teacher-deadline", daemon=True)
                self.thread.start()
            self.started = time.monotonic()
        self.depth += 1

    def __exit__(self, *exc) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.started = None

    def _watch(self) -> None:
        while True:
            time.sleep(0.25)
            started, limit = self.started, self.seconds()
            if started is not None and time.monotonic() - started > limit:
                self.on_expire(f"The teacher call exceeded {limit:g} s (DFKD_TEACHER_DEADLINE_S): its forward never "
                               "returned in time, so the run was ended.")
                os._exit(1)


@contextlib.contextmanager
def memory_reason():
    """A teacher call that runs out of memory (RLIMIT_AS in the box) ends with the reason."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc):
            from ..caps import memory_budget_gb

            raise ModelError(f"The teacher ran out of memory: one call needs more than the run's budget of "
                             f"{memory_budget_gb():g} GB (DFKD_MAX_MEMORY_GB).") from None
        raise


def _print_and_exit(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    os._exit(2)


DEADLINE = CallDeadline()


class TeacherBoundary(nn.Module):
    """Standardized inputs z → the teacher's own units x = z·σ_x + μ_x → its output y →
    standardized (y − μ_y)/σ_y of shape (n,). Gradients flow through when the model is torch."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], x_mean: torch.Tensor, x_std: torch.Tensor,
                 y_mean: float, y_std: float) -> None:
        super().__init__()
        self.model = model
        self.input_shape = tuple(input_shape)
        self.register_buffer("x_mean", x_mean.reshape(-1).float().clone())
        self.register_buffer("x_std", x_std.reshape(-1).float().clone())
        self.y_mean, self.y_std = float(y_mean), float(y_std)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.flatten(1) * self.x_std + self.x_mean
        if len(self.input_shape) > 1:
            x = x.reshape(-1, *self.input_shape)
        with DEADLINE, memory_reason():
            out = one_per_row(self.model(x), z.shape[0])
        require_finite(out)
        return (out - self.y_mean) / self.y_std


class LinearStack(nn.Module):
    """A feed-forward network rebuilt from a state_dict: Linear layers in the file's order,
    the stated activation between them, none after the last."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor | None]], activation: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for weight, bias in layers:
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            with torch.no_grad():
                layer.weight.copy_(weight)
                if bias is not None:
                    layer.bias.copy_(bias)
            self.layers.append(layer)
        self.activation = activation
        self.act = ACTIVATIONS[activation]

    @property
    def in_features(self) -> int:
        return self.layers[0].in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


def linear_layers(state: dict, source: str) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(weight, bias) pairs of a state_dict in its order, whatever the key names: a 2-D tensor
    is a weight, a 1-D tensor right after it with its output size is its bias."""
    tensors = [(k, v) for k, v in state.items()]
    layers: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    for key, value in tensors:
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"The state_dict in {source} must hold only tensors. Got {type(value).__name__} under {key!r} instead.")
        value = value.detach().float()
        if value.dim() == 2:
            layers.append((value, None))
        elif value.dim() == 1 and layers and layers[-1][1] is None and value.shape[0] == layers[-1][0].shape[0]:
            layers[-1] = (layers[-1][0], value)
        else:
            raise ModelError(f"The state_dict in {source} must be a feed-forward network of Linear layers. "
                             f"Got {key!r} of shape {tuple(value.shape)}, which is no Linear weight or bias "
                             "(save other architectures with torch.jit.save).")
    if not layers:
        raise ModelError(f"The state_dict in {source} must hold at least one Linear layer. Got no 2-D weight.")
    for i in range(1, len(layers)):
        if layers[i][0].shape[1] != layers[i - 1][0].shape[0]:
            raise ModelError(f"The state_dict's layers in {source} must chain: layer {i + 1} takes "
                             f"{layers[i][0].shape[1]} inputs but layer {i} gives {layers[i - 1][0].shape[0]}.")
    if layers[-1][0].shape[0] != 1:
        raise ModelError(f"The state_dict's last layer in {source} must have one output (a regressor). "
                         f"Got {layers[-1][0].shape[0]} outputs instead.")
    return layers


# ---------------------------------------------------------------- what a file is
def teacher_source_kind(source: str | Path) -> str:
    """'http' for an http(s):// URL, else by the file's content: 'skops', 'torchscript' or
    'state_dict' (anything else is tried as a state_dict and refused there)."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        return "http"
    path = Path(text)
    if not path.is_file():
        raise ModelError(f"The teacher file {text!r} does not exist.")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelError(f"The teacher file {text!r} is a damaged zip archive ({exc}).") from None
        if "schema.json" in names:
            return "skops"
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return "torchscript"
    return "state_dict"


# ---------------------------------------------------------------- what a user's file may hold
ARCHIVE_MAX_ENTRIES = 10_000
ARCHIVE_MAX_RATIO = 100  # uncompressed / compressed, for entries above ARCHIVE_RATIO_FROM bytes
ARCHIVE_RATIO_FROM = 1 << 20


def check_archive(path: str | Path, what: str) -> None:
    """A zip archive's directory checked before anything in it is expanded: at most
    ARCHIVE_MAX_ENTRIES entries, sizes that fit the file and the memory budget
    (DFKD_MAX_MEMORY_GB), compression ratios at most ARCHIVE_MAX_RATIO (no zip bomb)."""
    path = Path(path)
    name = repr(original_name(path))
    size = path.stat().st_size
    budget = sandbox.memory_budget_bytes()
    try:
        with zipfile.ZipFile(path) as zf:  # reads the central directory only
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(f"The {what} file {name} is a damaged zip archive ({_first_line(exc)}).") from None
    if len(infos) > ARCHIVE_MAX_ENTRIES:
        raise ModelError(f"The {what} file {name} must hold at most {ARCHIVE_MAX_ENTRIES} entries. Got {len(infos)} instead.")
    total = 0
    for info in infos:
        entry = info.filename[:80]
        if info.compress_size > size or info.header_offset + info.compress_size > size:
            raise ModelError(f"The {what} file {name} is a damaged zip archive: its entry {entry!r} claims more bytes than the file holds.")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise ModelError(f"The {what} file {name} is refused: its stored entry {entry!r} declares {info.file_size} bytes "
                             f"but holds {info.compress_size}.")
        if info.file_size > budget:
            raise ModelError(f"The {what} file {name} is refused: its entry {entry!r} expands to {info.file_size / 1e9:.3g} GB, "
                             f"above the memory budget of {budget / 1e9:g} GB (DFKD_MAX_MEMORY_GB).")
        if info.file_size > ARCHIVE_RATIO_FROM and info.file_size > ARCHIVE_MAX_RATIO * max(info.compress_size, 1):
            raise ModelError(f"The {what} file {name} is refused: its entry {entry!r} is compressed "
                             f"{info.file_size / max(info.compress_size, 1):.0f}:1 (at most {ARCHIVE_MAX_RATIO}:1; a zip bomb?).")
        total += info.file_size
    if total > budget:
        raise ModelError(f"The {what} file {name} is refused: it expands to {total / 1e9:.3g} GB, above the memory budget "
                         f"of {budget / 1e9:g} GB (DFKD_MAX_MEMORY_GB).")


# TorchScript: every node of every method (and of every submodule's, __setstate__ included) must be
# one of these prim:: ops or an aten:: op that computes on tensors, numbers, lists and strings only.
SCRIPT_PRIM_OPS = frozenset({
    "prim::Constant", "prim::If", "prim::Loop", "prim::GetAttr", "prim::SetAttr", "prim::ListConstruct", "prim::ListUnpack",
    "prim::TupleConstruct", "prim::TupleUnpack", "prim::TupleIndex", "prim::TupleSlice", "prim::DictConstruct",
    "prim::DictIndex", "prim::NumToTensor", "prim::RaiseException", "prim::Uninitialized", "prim::unchecked_cast",
    "prim::isinstance", "prim::dtype", "prim::device", "prim::layout", "prim::shape", "prim::requires_grad", "prim::is_cuda",
    "prim::is_cpu", "prim::is_mps", "prim::is_xpu", "prim::is_meta", "prim::is_sparse", "prim::is_quantized", "prim::data",
    "prim::min", "prim::max", "prim::abs", "prim::BroadcastSizes", "prim::ConstantChunk", "prim::CreateObject",
    "prim::Enter", "prim::Exit", "prim::AutogradAdd", "prim::AutogradZero", "prim::type", "prim::StringIndex",
    "prim::TypeCheck", "prim::rangelist", "prim::NumToTensor", "prim::id", "prim::EnumName", "prim::EnumValue",
    "prim::unchecked_unwrap_optional", "prim::Guard", "prim::grad", "prim::name",
})
# aten:: ops refused by name: files, threads and futures, global state, unchecked indexing
SCRIPT_DENIED_OPS = frozenset({
    "aten::from_file", "aten::save", "aten::wait", "aten::record_stream", "aten::set_", "aten::set", "aten::manual_seed",
    "aten::seed", "aten::initial_seed", "aten::warn", "aten::_print", "aten::_unsafe_index", "aten::_unsafe_index_put",
    "aten::_unsafe_masked_index", "aten::_unsafe_masked_index_put_accumulate", "aten::_cufft_clear_plan_cache",
    "aten::_cufft_set_plan_cache_max_size", "aten::is_set_to", "aten::set_data", "aten::_test_warn_in_autograd",
})
# a schema taking or giving one of these is no pure computation (storages, streams, futures, C++ objects)
SCRIPT_REFUSED_TYPES = ("Storage", "Stream", "Future[", "RRef[", "Capsule", "__torch__.torch.classes", "Await[")
GRAD_MODE_CONTEXTS = ("__torch__.torch.autograd.grad_mode.no_grad", "__torch__.torch.autograd.grad_mode.enable_grad")


@functools.lru_cache(maxsize=1)
def script_aten_ops() -> frozenset[str]:
    """The aten:: ops a teacher file may use: every aten op of this torch whose every overload
    computes on tensors, numbers, lists and strings — no filename, storage, stream, future or
    C++ object — less SCRIPT_DENIED_OPS and sparse constructors (their indices go unchecked)."""
    refused, names = set(), set()
    for schema in torch._C._jit_get_all_schemas():
        if not schema.name.startswith("aten::"):
            continue
        names.add(schema.name)
        for arg in list(schema.arguments) + list(schema.returns):
            if arg.name in ("filename", "file") or any(t in str(arg.type) for t in SCRIPT_REFUSED_TYPES):
                refused.add(schema.name)
    return frozenset(n for n in names - refused - SCRIPT_DENIED_OPS if "sparse" not in n)


def script_refusals(module) -> list[str]:
    """Why a loaded TorchScript module may not run: '<op> in <module>.<method>' for every node
    outside the allow-list (empty: every node is a pure tensor or control-flow op)."""
    allowed = script_aten_ops()
    found: list[str] = []

    def walk(block, where: str) -> None:
        for node in block.nodes():
            kind = node.kind()
            ok = kind in SCRIPT_PRIM_OPS or kind in allowed
            if kind in ("prim::Enter", "prim::Exit"):  # `with torch.no_grad():` only
                ok = any(str(node.inputs().__next__().type()).startswith(c) for c in GRAD_MODE_CONTEXTS)
            if not ok and f"{kind} in {where}" not in found:
                found.append(f"{kind} in {where}")
            for sub in node.blocks():
                walk(sub, where)

    for mod_name, sub in module.named_modules():
        c = sub._c
        ctype = c._type()
        for hooks in ("_get_forward_hooks", "_get_forward_pre_hooks"):
            if getattr(ctype, hooks, lambda: [])():
                found.append(f"a forward hook in {mod_name or 'the module'}")
        for method in c._method_names():
            walk(c._get_method(method).inlined_graph, f"{mod_name}.{method}" if mod_name else method)
    return found


def gate_script_module(module, name: str) -> None:
    """Refuse a TorchScript teacher that holds any op outside the allow-list, naming it."""
    refusals = script_refusals(module)
    if refusals:
        more = f" (and {len(refusals) - 3} more)" if len(refusals) > 3 else ""
        raise ModelError(f"The teacher file {name} is refused: it holds {', '.join(refusals[:3])}{more}; a teacher may only "
                         "compute on tensors (no file, process or unknown ops).")


# skops: the exact types a teacher file may hold (scikit-learn regressors, their parts, numpy)
SKOPS_TYPES = frozenset({
    "builtins.dict", "builtins.list", "builtins.str", "builtins.tuple", "builtins.int", "builtins.float", "builtins.bool",
    "builtins.NoneType", "numpy.ndarray", "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32", "numpy.uint64",
    "numpy.uint8", "numpy.intp", "numpy.bool_", "numpy.dtype", "numpy.random._generator.Generator",
    "numpy.random.mtrand.RandomState",
    "sklearn._loss._loss.CyHalfPoissonLoss", "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss._loss.CyHalfTweedieLossIdentity", "sklearn._loss._loss.CyAbsoluteError", "sklearn._loss._loss.CyHuberLoss",
    "sklearn._loss._loss.CyPinballLoss", "sklearn._loss.link.IdentityLink", "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogLink", "sklearn._loss.loss.HalfPoissonLoss", "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.loss.HalfTweedieLossIdentity", "sklearn._loss.loss.AbsoluteError", "sklearn._loss.loss.HuberLoss",
    "sklearn._loss.loss.PinballLoss",
    "sklearn.decomposition._pca.PCA", "sklearn.dummy.DummyRegressor",
    "sklearn.ensemble._bagging.BaggingRegressor", "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._forest.RandomForestRegressor", "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", "sklearn.ensemble._weight_boosting.AdaBoostRegressor",
    "sklearn.gaussian_process._gpr.GaussianProcessRegressor", "sklearn.gaussian_process.kernels.ConstantKernel",
    "sklearn.gaussian_process.kernels.DotProduct", "sklearn.gaussian_process.kernels.Matern",
    "sklearn.gaussian_process.kernels.Product", "sklearn.gaussian_process.kernels.RBF",
    "sklearn.gaussian_process.kernels.RationalQuadratic", "sklearn.gaussian_process.kernels.Sum",
    "sklearn.gaussian_process.kernels.WhiteKernel", "sklearn.gaussian_process.kernels.ExpSineSquared",
    "sklearn.kernel_ridge.KernelRidge", "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._bayes.ARDRegression", "sklearn.linear_model._bayes.BayesianRidge",
    "sklearn.linear_model._coordinate_descent.ElasticNet", "sklearn.linear_model._coordinate_descent.Lasso",
    "sklearn.linear_model._coordinate_descent.LassoCV", "sklearn.linear_model._coordinate_descent.ElasticNetCV",
    "sklearn.linear_model._glm.glm.PoissonRegressor", "sklearn.linear_model._glm.glm.TweedieRegressor",
    "sklearn.linear_model._huber.HuberRegressor", "sklearn.linear_model._least_angle.Lars",
    "sklearn.linear_model._least_angle.LassoLars", "sklearn.linear_model._quantile.QuantileRegressor",
    "sklearn.linear_model._ridge.Ridge", "sklearn.linear_model._ridge.RidgeCV",
    "sklearn.linear_model._stochastic_gradient.SGDRegressor", "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._regression.KNeighborsRegressor", "sklearn.neighbors._regression.RadiusNeighborsRegressor",
    "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer", "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.MaxAbsScaler", "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.RobustScaler", "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._polynomial.PolynomialFeatures", "sklearn.svm._classes.LinearSVR", "sklearn.svm._classes.NuSVR",
    "sklearn.svm._classes.SVR", "sklearn.tree._classes.DecisionTreeRegressor", "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
})
# how skops rebuilds a node: objects, containers, arrays, trees — never a function, method or partial
SKOPS_LOADERS = frozenset({"ObjectNode", "DictNode", "ListNode", "TupleNode", "JsonNode", "TypeNode", "NdArrayNode",
                           "RandomStateNode", "RandomGeneratorNode", "TreeNode", "LossNode", "DTypeNode"})
SKOPS_SCHEMA_MAX_BYTES = 64 * 2**20


def skops_types(path: str | Path) -> tuple[list[str], list[str]]:
    """(types held, refusals) of a skops file, read from its schema.json (the archive checked
    first): every node's qualified type must be in SKOPS_TYPES and its loader in SKOPS_LOADERS."""
    name = repr(original_name(path))
    check_archive(path, "skops")
    try:
        with zipfile.ZipFile(path) as zf:
            if zf.getinfo("schema.json").file_size > SKOPS_SCHEMA_MAX_BYTES:
                raise ModelError(f"The skops file {name} has a schema above {SKOPS_SCHEMA_MAX_BYTES >> 20} MB.")
            schema = json.loads(zf.read("schema.json"))
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged zip, bad JSON
        raise ModelError(f"The teacher file {name} is not a readable skops file ({_first_line(exc)}).") from None
    types: set[str] = set()
    refused: list[str] = []
    stack, seen = [schema], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > 5_000_000:
            raise ModelError(f"The skops file {name} has too many nodes.")
        if isinstance(node, dict):
            if "__module__" in node and "__class__" in node:
                qualified = f"{node['__module__']}.{node['__class__']}"
                loader = str(node.get("__loader__", ""))
                if qualified not in SKOPS_TYPES and qualified not in refused:
                    refused.append(qualified)
                elif loader and loader not in SKOPS_LOADERS and f"{qualified} ({loader})" not in refused:
                    refused.append(f"{qualified} ({loader})")
                types.add(qualified)
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return sorted(types), refused


def load_user_model(source: str | Path, *, activation: str = "", timeout: float = 10.0, retries: int = 2,
                    query_budget: int = 0) -> tuple[str, object]:
    """(kind, model): an nn.Module for 'torchscript' / 'state_dict', a numpy function
    (n, d) → (n,) for 'skops' / 'http'. Raises ModelError with a one-line reason.

    A file's archive is checked before anything in it expands; the CLI and a run's worker load
    it only after a confined checker process has loaded and gated it (a TorchScript file runs
    its __setstate__ while it loads), and then inside their own box (sandbox.py)."""
    kind = teacher_source_kind(source)
    name = repr(original_name(source))
    if kind == "http":
        return kind, HttpModel(str(source), timeout=timeout, retries=retries, query_budget=query_budget)
    if kind in ("torchscript", "skops") or zipfile.is_zipfile(source):  # torch.save's zip too
        check_archive(source, "teacher")
    _box_before_loading(source, kind, activation)
    if kind == "torchscript":
        try:
            module = torch.jit.load(str(source), map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - any failure is a bad file
            raise ModelError(f"The teacher file {name} is not a loadable TorchScript archive ({_first_line(exc)}).") from None
        gate_script_module(module, name)
        return kind, module.eval()
    if kind == "skops":
        return kind, _load_skops(Path(source))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on pickle protocols
            blob = torch.load(str(source), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message would suggest weights_only=False: never here
        raise ModelError(f"The teacher file {name} holds pickled Python objects (a whole module saved with torch.save?): "
                         f"pickled objects are refused, never loaded. Save {PICKLE_HINT}.") from None
    except Exception as exc:  # noqa: BLE001 - truncated zip, plain text ...
        raise ModelError(f"The teacher file {name} is not a TorchScript archive, a state_dict or a skops file "
                         f"(files holding pickled objects are refused, never loaded): {_first_line(exc)}") from None
    if isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict):  # `teach`'s format: arch + state_dict
        if str(blob.get("arch", "")).startswith("mlp") and not activation:
            activation = "tanh"
        blob = blob["state_dict"]
    if not isinstance(blob, dict):
        raise ModelError(f"The teacher file {name} must hold a state_dict (a dict of tensors). Got {type(blob).__name__} instead.")
    layers = linear_layers(blob, name)
    if len(layers) > 1 and activation not in ACTIVATIONS:
        got = f" Got {activation!r} instead." if activation else ""
        raise ModelError(f"The teacher file {name} is a state_dict of {len(layers)} Linear layers, which holds weights, not "
                         f"its hidden activation: give it with --teacher-activation (on the page: Hidden activation), one of "
                         f"{', '.join(ACTIVATIONS)}.{got}")
    return kind, LinearStack(layers, activation or "identity").eval()


_checking = False  # this process is the model checker (check_main)
_checked: set[tuple[str, int, int]] = set()  # files this process had checked: (path, size, mtime)
_answers: dict[tuple, dict] = {}  # the checker's answers, by (path, size, mtime, activation, budget)


def _box_before_loading(source: str | Path, kind: str, activation: str) -> None:
    """Where a user's file may be loaded: in the checker (boxed, writes nothing); in a run's worker
    or the CLI after the checker passed it, inside their box; never in the Streamlit server; in
    any other process (a notebook, the tests) gated but unboxed, as the caller's own business."""
    if _checking:
        return
    if sandbox.confined() is not None or sandbox.planned() is not None:
        if kind in ("torchscript", "skops"):
            stat = Path(source).stat()
            key = (str(Path(source).resolve()), stat.st_size, int(stat.st_mtime_ns))
            if key not in _checked:
                check_model_file(source, activation)
                _checked.add(key)
        sandbox.enter_for_model([str(source)])
        return
    if _in_streamlit_server():
        raise ModelError("A user's model is never loaded in the dashboard's server process: it is checked and run "
                         "in a confined process of its own.")


def _in_streamlit_server() -> bool:
    """This process serves the dashboard (Streamlit's runtime exists; looked up, never imported here)."""
    runtime = sys.modules.get("streamlit.runtime")
    if runtime is None:
        return False
    try:
        return bool(runtime.exists())
    except Exception:  # noqa: BLE001 - another streamlit: assume a server
        return True


def check_model_file(source: str | Path, activation: str = "") -> dict:
    """Load and gate a teacher file in a short-lived confined process (never this one): reads only
    the Python install and the file, writes nothing, no network, memory capped by
    DFKD_MAX_MEMORY_GB, CHECK_TIMEOUT_S wall clock. {'kind', 'in_features'}; ModelError when refused."""
    name = repr(original_name(source))
    stat = Path(source).stat()
    key = (str(Path(source).resolve()), stat.st_size, stat.st_mtime_ns, activation, os.environ.get("DFKD_MAX_MEMORY_GB", ""))
    if key in _answers:  # a page rerun asks again about the same stored upload
        answer = _answers[key]
        if answer.get("error"):
            raise ModelError(answer["error"])
        return dict(answer)
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    code = "import sys; from dfkd_core.models.user_models import check_main; sys.exit(check_main(sys.argv[1:]))"
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(Path(source).resolve()), activation], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=CHECK_TIMEOUT_S, cwd="/")
    except subprocess.TimeoutExpired:
        raise ModelError(f"The teacher file {name} could not be checked within {CHECK_TIMEOUT_S:g} s (its loading hangs).") from None
    except OSError as exc:
        raise ModelError(f"The model checker process could not start: {exc.strerror} ({exc.filename}).") from None
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"status {proc.returncode}"
        last = proc.stderr.decode(errors="replace").strip().splitlines()
        said = f": {last[-1][:200]}" if last else ""
        raise ModelError(f"The teacher file {name} could not be checked: the confined checker ended with {how}{said} "
                         "(over the memory budget DFKD_MAX_MEMORY_GB or its time?).")
    answer = {"error": str(answer["error"]).splitlines()[0][:600]} if answer.get("error") else answer
    if len(_answers) > 256:
        _answers.clear()
    _answers[key] = answer
    if answer.get("error"):
        raise ModelError(answer["error"])
    return dict(answer)


def check_main(argv: list[str]) -> int:
    """The checker process (check_model_file): box itself, then load and gate; one JSON line out."""
    global _checking
    _checking = True
    path, activation = argv[0], (argv[1] if len(argv) > 1 else "")
    try:
        box = sandbox.model_box([path], write=[])
        box.cpu_seconds = int(CHECK_TIMEOUT_S)
        sandbox.enter(box)
        kind, model = load_user_model(path, activation=activation or "tanh")
        answer = {"kind": kind, "in_features": stated_input_dim(kind, model)}
    except DfkdError as exc:
        answer = {"error": str(exc)}
    except MemoryError:
        answer = {"error": f"The teacher file {original_name(path)!r} needs more memory than the budget "
                           f"(DFKD_MAX_MEMORY_GB) to load."}
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        answer = {"error": f"The teacher file {original_name(path)!r} cannot be loaded ({_first_line(exc)})."}
    print(json.dumps(answer), flush=True)
    return 0


def _load_skops(path: Path):
    import skops.io as sio

    name = repr(original_name(path))
    types, refused = skops_types(path)
    if refused:
        raise ModelError(f"The skops file {name} holds types that are never loaded (only listed "
                         f"scikit-learn regressors and numpy types are): {', '.join(refused[:5])}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = sio.load(path, trusted=types)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"The skops file {name} cannot be loaded ({_first_line(exc)}).") from None
    if not callable(getattr(model, "predict", None)):
        raise ModelError(f"The skops file {name} must hold a regressor with predict(). Got {type(model).__name__} instead.")
    names = getattr(model, "feature_names_in_", None)
    if names is not None:  # fitted on a DataFrame: give it one with the same columns
        import pandas as pd

        def predict(x):
            return model.predict(pd.DataFrame(np.asarray(x).reshape(len(x), -1), columns=list(names)))
    else:
        def predict(x):
            return model.predict(x)
    predict.n_features_in_ = getattr(model, "n_features_in_", None)  # what teacher_input_dim reads
    return predict


# ---------------------------------------------------------------- the engine's teacher
def wrap_user_model(kind: str, model, split: Split, x_mean: np.ndarray, x_std: np.ndarray,
                    y_mean: float, y_std: float) -> Teacher:
    """The Teacher the engine uses: standardized in and out, the user's units at the boundary."""
    xm = torch.as_tensor(np.asarray(x_mean, dtype=np.float64)).float()
    xs = torch.as_tensor(np.asarray(x_std, dtype=np.float64)).float()
    if kind in ("torchscript", "state_dict"):
        for p in model.parameters():
            p.requires_grad_(False)
        return TorchTeacher(TeacherBoundary(model, split.input_shape, xm, xs, y_mean, y_std), kind)
    xm64, xs64 = xm.double().numpy(), xs.double().numpy()

    def predict(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
        with DEADLINE, memory_reason():
            out = np.asarray(model(z * xs64 + xm64), dtype=np.float64)
        out = one_per_row(torch.from_numpy(out.copy()), len(z)).numpy()
        bad = int((~np.isfinite(out)).sum())
        if bad:
            raise TeacherNotFinite(bad, len(out))
        return (out - y_mean) / y_std

    return BlackBoxTeacher(predict, kind=kind)


def raw_teacher_function(kind: str, model) -> Callable[[np.ndarray], np.ndarray]:
    """The user's model on raw inputs (n, d) → (n,) as numpy (for labelling spec points and latency)."""
    if kind in ("torchscript", "state_dict"):
        def predict(x: np.ndarray) -> np.ndarray:
            with torch.no_grad(), DEADLINE, memory_reason():
                out = model(torch.as_tensor(np.asarray(x, dtype=np.float32)))
            out = one_per_row(out, len(x))
            require_finite(out)
            return out.double().numpy()
        return predict

    def black_box(x: np.ndarray) -> np.ndarray:
        with DEADLINE, memory_reason():
            out = one_per_row(torch.from_numpy(np.asarray(model(x), dtype=np.float64).copy()), len(x))
        require_finite(out)
        return out.numpy()
    return black_box


def check_teacher(teacher: Teacher, probe: torch.Tensor, dim: int, source: str) -> None:
    """Call the teacher on probe inputs before training: a wrong input dimension, a wrong output
    shape, NaN or inf answers are refused here, saying what was expected and what came."""
    try:
        with torch.no_grad():
            out = teacher.predict(probe)
    except TeacherNotFinite as exc:
        raise ModelError(f"The teacher {source} must return finite numbers. Got NaN or inf for {exc.bad} of "
                         f"{exc.total} probe inputs.") from None
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - a shape mismatch inside the user's model
        expects = expected_inputs(teacher, exc)
        if expects is not None and expects != dim:
            raise ModelError(f"The teacher {source} expects {expects} inputs, but the data has {dim} features "
                             "(columns besides the target). They must match, in the teacher's order.") from None
        raise ModelError(f"The teacher {source} must accept inputs of {dim} features (the data's columns). "
                         f"A batch of shape {tuple(probe.shape)} failed: {_model_error_line(exc)}") from None
    bad = int((~torch.isfinite(out)).sum())
    if bad:
        raise ModelError(f"The teacher {source} must return finite numbers. Got NaN or inf for {bad} of {len(out)} probe inputs.")
    teacher.queries = 0


def load_user_teacher(source: str | Path, split: Split, *, activation: str = "", device: torch.device | str = "cpu",
                      timeout: float = 10.0, retries: int = 2, query_budget: int = 0) -> tuple[Teacher, TeacherInfo, str, object]:
    """The user's teacher for this split, checked on the split's inputs: (teacher, info, kind, raw model).
    Units at the boundary come from split.extra (x_mean, x_std) and split.y_mean / y_std."""
    start = time.perf_counter()
    kind, model = load_user_model(source, activation=activation, timeout=timeout, retries=retries, query_budget=query_budget)
    teacher, info = user_teacher_for(kind, model, split, source, device)
    info.seconds = time.perf_counter() - start
    return teacher, info, kind, model


TEACHER_UNITS = ("auto", "raw", "standardized")  # DistillConfig.teacher_units: what the teacher's inputs and output are


def teacher_scaling(split: Split, units: str = "raw") -> tuple[np.ndarray, np.ndarray, float, float]:
    """(x_mean, x_std, y_mean, y_std) at the teacher's boundary. 'raw': the teacher takes the data's
    own units and answers in the target's; 'standardized': it takes (x − μ)/σ and answers (y − μ_y)/σ_y,
    the engine's own units (on an input spec its answers are standardized by the split like raw ones)."""
    dim = split.dim
    if units == "standardized":
        real = bool(split.extra.get("real_data", True))
        return np.zeros(dim), np.ones(dim), (0.0 if real else split.y_mean), (1.0 if real else split.y_std)
    x_mean = np.asarray(split.extra.get("x_mean", np.zeros(dim)), dtype=np.float64)
    x_std = np.asarray(split.extra.get("x_std", np.ones(dim)), dtype=np.float64)
    return x_mean, x_std, split.y_mean, split.y_std


def check_input_count(model, dim: int, source: str | Path, what: str = "the data has") -> None:
    """A state_dict teacher states its input count: refuse a mismatch before any call."""
    if isinstance(model, LinearStack) and model.in_features != dim:
        raise ModelError(f"The teacher {original_name(source)!r} expects {model.in_features} inputs (its first layer), "
                         f"but {what} {dim} features. They must match.")


def user_teacher_for(kind: str, model, split: Split, source: str | Path,
                     device: torch.device | str = "cpu", units: str = "raw") -> tuple[Teacher, TeacherInfo]:
    """Wrap a loaded user model for this split (in `units`: see teacher_scaling), probe it, and
    measure it on the split's test rows."""
    dim = split.dim
    check_input_count(model, dim, source)
    x_mean, x_std, y_mean, y_std = teacher_scaling(split, units)
    teacher = wrap_user_model(kind, model, split, x_mean, x_std, y_mean, y_std)
    if isinstance(teacher, TorchTeacher):
        teacher.module.to(device)
    probe = split.prior.sample(PROBE_SIZE, torch.Generator(device=split.prior.mean.device).manual_seed(5)).to(device)
    label = repr(original_name(source)) if kind != "http" else str(source)
    check_teacher(teacher, probe, dim, label)
    rmse, mae = evaluate(teacher.predict, split.x_test.to(device), split.y_test.to(device))
    val, _ = evaluate(teacher.predict, split.x_val.to(device), split.y_val.to(device))
    teacher.queries = 0
    name = original_name(source) if kind != "http" else str(source)
    return teacher, TeacherInfo(kind, rmse, mae, val, True, 0.0, str(source), {"file": name, "kind": kind, "units": units},
                                loaded=(kind, model))


def load_product_teacher_file(path: str | Path, split: Split, device: torch.device | str = "cpu") -> tuple[Teacher, TeacherInfo]:
    """A file written by `teach` for one of our architectures (a CNN too), or any user teacher."""
    blob = None
    if teacher_source_kind(path) == "state_dict":
        try:
            blob = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - load_user_teacher gives the message
            blob = None
    if isinstance(blob, dict) and str(blob.get("arch", "")).startswith(("cnn", "rbf")):
        try:
            module = build_model(blob["arch"], split)
            module.load_state_dict(blob["state_dict"])
        except (ConfigError, RuntimeError, KeyError) as exc:
            raise ModelError(f"The teacher file {str(path)!r} does not fit {split.name!r}: {_first_line(exc)}") from None
        teacher = TorchTeacher(module.to(device), blob["arch"][:3])
        rmse, mae = evaluate(teacher.predict, split.x_test.to(device), split.y_test.to(device))
        val, _ = evaluate(teacher.predict, split.x_val.to(device), split.y_val.to(device))
        teacher.queries = 0
        return teacher, TeacherInfo(blob["arch"], rmse, mae, val, True, 0.0, str(path))
    teacher, info, _, _ = load_user_teacher(path, split, activation="", device=device)
    return teacher, info


def gradient_samplers_refused(kind: str, samplers, needs_gradients: Callable[[str], bool]) -> None:
    """Refuse 'direct' / 'generator' for a black-box teacher, giving the reason."""
    wanted = [s for s in samplers if needs_gradients(s)]
    if wanted and kind in ("skops", "http"):
        raise ModelError(f"The {', '.join(map(repr, wanted))} sampler(s) need the teacher's gradients, but the {kind} "
                         f"teacher cannot give them: {GRADIENT_FREE_REASON}. Use 'evolution' or a random sampler "
                         "(gaussian, lhs, halton, sobol).")


_SHAPES = re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")


def _model_error_line(exc: BaseException) -> str:
    """The line of a model's exception that says what went wrong: for TorchScript the interpreter's
    last line (its first, "The following operation failed in the TorchScript interpreter.", says nothing)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and "TorchScript interpreter" in lines[0]:
        line = lines[-1]
        return line if len(line) <= 200 else line[:197] + "..."
    return _first_line(exc)


def expected_inputs(teacher, exc: BaseException) -> int | None:
    """How many inputs a torch teacher that failed on a batch expects, when the error or its first
    weight says it (a matrix product of (n, d) by (k, h) expects k); None when nothing says."""
    found = _SHAPES.search(str(exc))
    if found:
        return int(found.group(3))
    module = getattr(teacher, "module", None)
    inner = getattr(module, "model", None)
    if isinstance(inner, nn.Module):
        for param in inner.parameters():
            if param.dim() == 2:
                return int(param.shape[1])
            break
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


# ---------------------------------------------------------------- the box of a process that runs a user's model
_store_keeper = None  # a run worker's SQLite connection held open while it is boxed (its -wal / -shm stay put)


def user_model_file(cfg) -> str:
    """The run's teacher file when it is one (not an HTTP endpoint, not the product's teacher)."""
    teacher = cfg.teacher_file or ""
    return teacher if teacher and not teacher.startswith(("http://", "https://")) else ""


def box_run_worker(cfg, run_dir: str | Path, db_path: str | Path, fail: Callable[[str], None]) -> str:
    """Confine a run's worker process (for good) before it loads the user's teacher file: it may
    read the system, the teacher, the run's data and DFKD_DATA_DIR, write only its run folder
    and the run store's database files (opened now; a connection stays open so they remain),
    no network; a teacher call past its deadline ends the run through `fail(reason)`. Returns a
    line for the worker's log ('' when the run's teacher is no user file: nothing to box)."""
    global _store_keeper
    if not user_model_file(cfg) or not sandbox.owns_process():  # work() called inside another program: no box
        return ""
    import sqlite3

    run_dir = Path(run_dir).resolve()
    _store_keeper = sqlite3.connect(str(db_path), check_same_thread=False)
    _store_keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opens the -wal and -shm files
    tmp = run_dir / "tmp"
    tmp.mkdir(exist_ok=True)
    _private_temp(tmp)  # temporary files and torch.compile's cache live in the run folder
    cuda = cfg.device != "cpu" and torch.cuda.is_available()
    box = sandbox.model_box([p for p in (cfg.teacher_file, cfg.data_file, cfg.input_spec) if p],
                            write=[str(run_dir)], memory=not cuda)
    box.write += [f"{db_path}{suffix}" for suffix in ("", "-wal", "-shm") if Path(f"{db_path}{suffix}").exists()]
    box.file_bytes = max(box.file_bytes, 2 * Path(db_path).stat().st_size + 2**30)  # the store itself may grow
    if cuda:
        box.devices = sandbox.gpu_devices()

    def expire(message: str) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)
        fail(message)

    DEADLINE.on_expire = expire
    sandbox.enter(box)
    return sandbox.describe()


def plan_cli_box(cfg, write_dirs: list[str], store=None) -> None:
    """The CLI about to distill a user's teacher file: it will box itself when it loads it, then
    write only `write_dirs` (--export's folder, created now). Only in `python -m dfkd_core`'s own
    process: main() called inside another program (the tests) loads as a library does. With
    `store` (the CLI stores its run), the box may also write the store's database files (a
    connection held open keeps its -wal / -shm) and its runs folder."""
    if not user_model_file(cfg) or not sandbox.owns_process():
        return
    dirs = []
    for d in write_dirs:
        if d:
            Path(d).mkdir(parents=True, exist_ok=True)
            dirs.append(str(Path(d).resolve()))
    import atexit
    import shutil
    import tempfile

    _sweep_box_temps(Path(tempfile.gettempdir()))
    # temporary files and torch.compile's cache: private, emptied at exit (the box cannot remove the
    # folder itself from /tmp: the next boxed CLI sweeps it, by the pid in its name)
    tmp = tempfile.mkdtemp(prefix=f"{BOX_TEMP_PREFIX}{os.getpid()}-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    _private_temp(Path(tmp))
    cuda = cfg.device != "cpu" and torch.cuda.is_available()
    global _store_keeper
    if store is not None:
        import sqlite3

        store.runs_dir.mkdir(parents=True, exist_ok=True)
        _store_keeper = sqlite3.connect(str(store.db_path), check_same_thread=False)
        _store_keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opens the -wal and -shm files
        dirs += [str(store.runs_dir.resolve())] + [f"{store.db_path.resolve()}{suffix}" for suffix in ("", "-wal", "-shm")
                                                    if Path(f"{store.db_path}{suffix}").exists()]
    box = sandbox.model_box([p for p in (cfg.data_file, cfg.input_spec) if p], write=dirs + [tmp], memory=not cuda)
    if cuda:
        box.devices = sandbox.gpu_devices()
    sandbox.plan(box)


BOX_TEMP_PREFIX = "dfkd-box-"


def _sweep_box_temps(folder: Path) -> None:
    """Remove the private temporary folders of boxed CLI processes that have ended (their pid,
    in the folder's name, is not running); a folder whose name has no pid is removed when empty."""
    import shutil

    for path in folder.glob(f"{BOX_TEMP_PREFIX}*"):
        pid = path.name[len(BOX_TEMP_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit():
                path.rmdir()  # only when empty
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # alive but not ours, not empty, or not a folder: left alone
            pass


def _private_temp(tmp: Path) -> None:
    """Temporary files and torch.compile's cache of a boxed process go to `tmp` (never a shared
    cache another process would load code from)."""
    import tempfile

    tempfile.tempdir = str(tmp)
    os.environ["TMPDIR"] = str(tmp)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor")
    os.environ["TRITON_CACHE_DIR"] = str(tmp / "triton")


# ---------------------------------------------------------------- the dashboard's "Your model" section
def table_columns(path: str | Path) -> list[str]:
    """The header of a stored CSV / Parquet file (for the target picker); a headerless file is refused."""
    return table_columns_of(path)


def teacher_endpoint(url: str) -> str:
    """The URL the user typed for an HTTP teacher, checked: http(s):// and a host."""
    from urllib.parse import urlsplit

    text = (url or "").strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelError(f"The endpoint URL must start with http:// or https:// and name a host. Got {text!r} instead.")
    return text


def teacher_input_dim(path: str | Path, activation: str = "") -> int | None:
    """The input dimension a stored teacher file states, read without running it: a state_dict's
    first layer; a TorchScript module's first parameter when it is a matrix (out × in: a Linear
    layer's weight); a skops regressor's n_features_in_. None when the file does not say it (a
    first convolution, an endpoint) or cannot be read. The file is loaded by the confined checker
    process, never by the caller (the dashboard's server)."""
    try:
        answer = check_model_file(path, activation or "tanh")
    except DfkdError:
        return None
    dim = answer.get("in_features")
    return int(dim) if isinstance(dim, int) else None


def stated_input_dim(kind: str, model) -> int | None:
    """teacher_input_dim's answer for a loaded model (computed in the checker process)."""
    if isinstance(model, LinearStack):
        return model.in_features
    if kind == "torchscript":
        first = next(iter(model.parameters()), None)
        return int(first.shape[1]) if first is not None and first.dim() == 2 else None
    n = getattr(model, "n_features_in_", None)
    return int(n) if isinstance(n, (int, np.integer)) and n > 0 else None

