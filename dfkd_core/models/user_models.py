"""Teachers the user brings — a TorchScript file, a state_dict of Linear layers, a skops
regressor or an HTTP endpoint — loaded without ever unpickling, probed before training, and
wrapped so that the teacher sees inputs in its own units while the engine works standardized."""
from __future__ import annotations

import pickle  # only for pickle.UnpicklingError: nothing here is ever unpickled
import re
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
from ..errors import ConfigError, DfkdError, ModelError, QueryBudgetSpent
from .http_teacher import HttpModel
from .teachers import BlackBoxTeacher, Teacher, TeacherInfo, TorchTeacher, build_model, evaluate

# Hidden activations of a state_dict teacher (the file stores weights, not the activation).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "softplus": F.softplus,
    "gelu": F.gelu, "elu": F.elu, "leaky_relu": F.leaky_relu, "silu": F.silu, "identity": lambda x: x,
}
TEACHER_KINDS = ("torchscript", "state_dict", "skops", "http")
GRADIENT_FREE_REASON = "it is a black box (no gradients reach its inputs)"
# skops files may only hold these types beyond skops' own trusted list: nothing that runs code
SKOPS_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.", "collections.OrderedDict", "collections.defaultdict")
PROBE_SIZE = 64  # inputs sent to the teacher before training to check its output
PICKLE_HINT = ("its weights with torch.save(model.state_dict(), path) (then give --teacher-activation), or the whole "
               "model with torch.jit.save(torch.jit.script(model), path); see docs/your-model.md")


# ---------------------------------------------------------------- the teacher's boundary
def one_per_row(out: torch.Tensor, n: int) -> torch.Tensor:
    """(n,) or (n, 1) → (n,); any other shape is a ModelError saying what came."""
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.dim() != 1 or out.shape[0] != n:
        raise ModelError(f"The teacher must return one value per input, shape ({n},) or ({n}, 1). "
                         f"Got shape {tuple(out.shape)} instead.")
    return out


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
        out = one_per_row(self.model(x), z.shape[0])
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


def load_user_model(source: str | Path, *, activation: str = "", timeout: float = 10.0, retries: int = 2,
                    query_budget: int = 0) -> tuple[str, object]:
    """(kind, model): an nn.Module for 'torchscript' / 'state_dict', a numpy function
    (n, d) → (n,) for 'skops' / 'http'. Raises ModelError with a one-line reason."""
    kind = teacher_source_kind(source)
    name = repr(original_name(source))
    if kind == "http":
        return kind, HttpModel(str(source), timeout=timeout, retries=retries, query_budget=query_budget)
    if kind == "torchscript":
        try:
            module = torch.jit.load(str(source), map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - any failure is a bad file
            raise ModelError(f"The teacher file {name} is not a loadable TorchScript archive ({_first_line(exc)}).") from None
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


def _load_skops(path: Path):
    import skops.io as sio

    name = repr(original_name(path))

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"The teacher file {name} is not a readable skops file ({_first_line(exc)}).") from None
    refused = [t for t in untrusted if not t.startswith(SKOPS_TRUSTED_PREFIXES)]
    if refused:
        raise ModelError(f"The skops file {name} holds types outside scikit-learn, numpy and scipy, which are "
                         f"never loaded: {', '.join(refused[:5])}.")
    try:
        model = sio.load(path, trusted=untrusted)
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
        out = np.asarray(model(z * xs64 + xm64), dtype=np.float64)
        out = one_per_row(torch.from_numpy(out.copy()), len(z)).numpy()
        return (out - y_mean) / y_std

    return BlackBoxTeacher(predict, kind=kind)


def raw_teacher_function(kind: str, model) -> Callable[[np.ndarray], np.ndarray]:
    """The user's model on raw inputs (n, d) → (n,) as numpy (for labelling spec points and latency)."""
    if kind in ("torchscript", "state_dict"):
        def predict(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                out = model(torch.as_tensor(np.asarray(x, dtype=np.float32)))
            return one_per_row(out, len(x)).double().numpy()
        return predict
    return lambda x: one_per_row(torch.from_numpy(np.asarray(model(x), dtype=np.float64).copy()), len(x)).numpy()


def check_teacher(teacher: Teacher, probe: torch.Tensor, dim: int, source: str) -> None:
    """Call the teacher on probe inputs before training: a wrong input dimension, a wrong output
    shape, NaN or inf answers are refused here, saying what was expected and what came."""
    try:
        with torch.no_grad():
            out = teacher.predict(probe)
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
    return teacher, TeacherInfo(kind, rmse, mae, val, True, 0.0, str(source), {"file": name, "kind": kind, "units": units})


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
    first convolution, an endpoint) or cannot be read."""
    try:
        kind, model = load_user_model(path, activation=activation or "tanh")
    except DfkdError:
        return None
    if isinstance(model, LinearStack):
        return model.in_features
    if kind == "torchscript":
        first = next(iter(model.parameters()), None)
        return int(first.shape[1]) if first is not None and first.dim() == 2 else None
    n = getattr(model, "n_features_in_", None)
    return int(n) if isinstance(n, (int, np.integer)) and n > 0 else None

