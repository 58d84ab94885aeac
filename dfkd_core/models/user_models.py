"""Teachers the user brings — a TorchScript file, a state_dict of Linear layers, a skops
regressor or an HTTP endpoint — loaded without ever unpickling, probed before training, and
wrapped so that the teacher sees inputs in its own units while the engine works standardized."""
from __future__ import annotations

import json
import pickle  # only for pickle.UnpicklingError: nothing here is ever unpickled
import time
import warnings
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.split import Split
from ..data.user import (NAN_POLICIES, USER_DATASET, original_name, read_input_spec, read_table, spec_scaling,
                        spec_split, store_user_file, table_split)
from ..errors import ConfigError, DfkdError, ModelError
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
        raise ModelError(f"The teacher file {name} is not a TorchScript archive, a state_dict or a skops file: it holds "
                         "pickled Python objects (files holding pickled objects are refused, never loaded).") from None
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
        raise ModelError(f"The 'teacher_activation' parameter must be one of {', '.join(map(repr, ACTIVATIONS))} "
                         f"for a state_dict teacher (the file holds weights, not its activation). Got {activation!r} instead.")
    return kind, LinearStack(layers, activation or "identity").eval()


def _load_skops(path: Path):
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"The teacher file {str(path)!r} is not a readable skops file ({_first_line(exc)}).") from None
    refused = [t for t in untrusted if not t.startswith(SKOPS_TRUSTED_PREFIXES)]
    if refused:
        raise ModelError(f"The skops file {str(path)!r} holds types outside scikit-learn, numpy and scipy, which are "
                         f"never loaded: {', '.join(refused[:5])}.")
    try:
        model = sio.load(path, trusted=untrusted)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"The skops file {str(path)!r} cannot be loaded ({_first_line(exc)}).") from None
    if not callable(getattr(model, "predict", None)):
        raise ModelError(f"The skops file {str(path)!r} must hold a regressor with predict(). Got {type(model).__name__} instead.")
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


class HttpModel:
    """A black box on the user's machine: POST {"inputs": [[...], ...]} as JSON, receive
    {"predictions": [...]} (or a bare list). Timeout per request, retries on connection
    errors and 5xx, and a budget on the number of points sent (0 = none)."""

    max_batch = 10_000  # points per request

    def __init__(self, url: str, *, timeout: float = 10.0, retries: int = 2, query_budget: int = 0) -> None:
        self.url, self.timeout, self.retries, self.query_budget = url, float(timeout), int(retries), int(query_budget)
        self.sent = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if self.query_budget and self.sent + len(x) > self.query_budget:
            raise ModelError(f"The HTTP teacher's query budget of {self.query_budget} points is spent "
                             f"({self.sent} sent, {len(x)} more asked for).")
        parts = [self._post(x[i:i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        self.sent += len(x)
        return np.concatenate(parts) if parts else np.zeros(0)

    def _post(self, x: np.ndarray) -> np.ndarray:
        body = json.dumps({"inputs": x.tolist()}).encode()
        last = ""
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = json.loads(response.read().decode() or "null")
                break
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} {exc.reason}"
                if exc.code < 500:
                    raise ModelError(f"The HTTP teacher at {self.url} refused the request: {last}.") from None
            except (TimeoutError, OSError) as exc:  # URLError is an OSError; socket timeouts too
                reason = getattr(exc, "reason", exc)
                last = "no answer within the timeout" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else str(reason)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ModelError(f"The HTTP teacher at {self.url} must answer JSON. Got something else.") from None
            if attempt < self.retries:
                time.sleep(min(0.2 * 2**attempt, 2.0))
        else:
            raise ModelError(f"The HTTP teacher at {self.url} failed after {self.retries + 1} tries "
                             f"(timeout {self.timeout:g} s): {last}.")
        preds = payload.get("predictions") if isinstance(payload, dict) else payload
        try:
            out = np.asarray(preds, dtype=np.float64)
        except (TypeError, ValueError):
            raise ModelError(f"The HTTP teacher at {self.url} must answer a list of numbers. Got {str(payload)[:80]!r}.") from None
        return out.reshape(out.shape[0], -1) if out.ndim == 2 else out


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
        raise ModelError(f"The teacher {source} must accept inputs of {dim} features (the data's columns). "
                         f"A batch of shape {tuple(probe.shape)} failed: {_first_line(exc)}") from None
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


def user_teacher_for(kind: str, model, split: Split, source: str | Path,
                     device: torch.device | str = "cpu") -> tuple[Teacher, TeacherInfo]:
    """Wrap a loaded user model for this split, probe it, and measure it on the split's test rows."""
    dim = split.dim
    if isinstance(model, LinearStack) and model.in_features != dim:
        raise ModelError(f"The teacher {original_name(source)!r} takes {model.in_features} inputs (its first layer), "
                         f"but the data has {dim} features. They must match.")
    x_mean = np.asarray(split.extra.get("x_mean", np.zeros(dim)), dtype=np.float64)
    x_std = np.asarray(split.extra.get("x_std", np.ones(dim)), dtype=np.float64)
    teacher = wrap_user_model(kind, model, split, x_mean, x_std, split.y_mean, split.y_std)
    if isinstance(teacher, TorchTeacher):
        teacher.module.to(device)
    probe = split.prior.sample(PROBE_SIZE, torch.Generator(device=split.prior.mean.device).manual_seed(5)).to(device)
    label = repr(original_name(source)) if kind != "http" else str(source)
    check_teacher(teacher, probe, dim, label)
    rmse, mae = evaluate(teacher.predict, split.x_test.to(device), split.y_test.to(device))
    val, _ = evaluate(teacher.predict, split.x_val.to(device), split.y_val.to(device))
    teacher.queries = 0
    name = original_name(source) if kind != "http" else str(source)
    return teacher, TeacherInfo(kind, rmse, mae, val, True, 0.0, str(source), {"file": name, "kind": kind})


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


# ---------------------------------------------------------------- runs on the user's teacher / data
def uses_user_inputs(cfg) -> bool:
    return bool(cfg.teacher_file or cfg.data_file or cfg.input_spec)


def validate_user_fields(cfg) -> None:
    """DistillConfig.validate's check of the user-input fields (teacher_file ... input_spec)."""
    if cfg.nan_policy not in NAN_POLICIES:
        raise ConfigError(f"The 'nan_policy' parameter must be one of {', '.join(map(repr, NAN_POLICIES))}. Got {cfg.nan_policy!r} instead.")
    if cfg.teacher_activation and cfg.teacher_activation not in ACTIVATIONS:
        raise ConfigError(f"The 'teacher_activation' parameter must be one of {', '.join(map(repr, ACTIVATIONS))}. "
                          f"Got {cfg.teacher_activation!r} instead.")
    timeout = cfg.teacher_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        raise ConfigError(f"The 'teacher_timeout' parameter must be a float in (0, 600] seconds. Got {timeout!r} instead.")
    budget = cfg.teacher_query_budget
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ConfigError(f"The 'teacher_query_budget' parameter must be an int >= 0 (0: no limit). Got {budget!r} instead.")
    if cfg.data_file and cfg.input_spec:
        raise ConfigError("Give either the 'data_file' parameter or the 'input_spec' parameter, not both. "
                          f"Got {cfg.data_file!r} and {cfg.input_spec!r}.")
    if (cfg.data_file or cfg.input_spec) and cfg.dataset != USER_DATASET:
        raise ConfigError(f"The 'dataset' parameter must be {USER_DATASET!r} for a run on your own data or input spec. "
                          f"Got {cfg.dataset!r} instead.")
    if cfg.dataset == USER_DATASET and not (cfg.data_file or cfg.input_spec):
        raise ConfigError(f"The {USER_DATASET!r} dataset needs the 'data_file' or the 'input_spec' parameter. Got neither.")
    if cfg.data_file and not cfg.target:
        raise ConfigError(f"The 'target' parameter must name the target column of {original_name(cfg.data_file)!r}. Got nothing.")
    if cfg.input_spec:
        if not cfg.teacher_file:
            raise ConfigError("The 'teacher_file' parameter is needed with an input spec: with no data, no teacher can be trained here.")
        if cfg.selection == "validation":
            raise ConfigError("With an input spec there is no real data to validate on: the 'selection' parameter must be "
                              "'synthetic' or 'last'. Got 'validation' instead.")
    if cfg.teacher_file and (cfg.teacher_file.startswith(("http://", "https://")) or Path(cfg.teacher_file).is_file()):
        from ..synth.samplers import SAMPLERS
        from ..synth.schedules import parse_alpha

        if any(parse_alpha(a).constant != 0.0 for a in cfg.alphas):  # α = 0 never calls the sampler
            gradient_samplers_refused(teacher_source_kind(cfg.teacher_file), cfg.samplers,
                                      lambda s: SAMPLERS.get(s).needs_gradients)


def store_user_inputs(cfg):
    """The config with its teacher / data / spec files copied under DFKD_HOME/user_files
    (content-addressed) and pointing there, so workers and later sessions find them."""
    changes = {}
    if cfg.teacher_file and not cfg.teacher_file.startswith(("http://", "https://")):
        if not Path(cfg.teacher_file).expanduser().is_file():
            raise ModelError(f"The teacher file {cfg.teacher_file!r} does not exist.")
        changes["teacher_file"] = store_user_file(cfg.teacher_file, "teacher")
    if cfg.data_file:
        changes["data_file"] = store_user_file(cfg.data_file, "data")
    if cfg.input_spec:
        changes["input_spec"] = store_user_file(cfg.input_spec, "input spec")
    changes = {k: v for k, v in changes.items() if v != getattr(cfg, k)}
    return cfg.replace(**changes) if changes else cfg


def prepare_user_run(cfg, device: torch.device, data_dir=None,
                     teacher_progress: Callable[[int, float], None] | None = None) -> tuple[Split, Teacher, TeacherInfo]:
    """The split and the teacher of a run on the user's teacher and/or data: a table split by
    the paper's protocol, or a data-free split of the input spec labelled by the teacher; the
    product's own teacher is trained on the user's table when no teacher file is given."""
    from ..data import load_split
    from .teachers import get_teacher

    options = dict(activation=cfg.teacher_activation, timeout=cfg.teacher_timeout, query_budget=cfg.teacher_query_budget)
    if cfg.input_spec:
        spec = read_input_spec(cfg.input_spec)
        kind, model = load_user_model(cfg.teacher_file, **options)
        if isinstance(model, LinearStack) and model.in_features != len(spec.features):
            raise ModelError(f"The teacher {original_name(cfg.teacher_file)!r} takes {model.in_features} inputs (its first layer), "
                             f"but the input spec has {len(spec.features)} features. They must match.")
        x_mean, x_std = spec_scaling(spec)
        probe_split = spec_split_probe(spec)
        check_teacher(wrap_user_model(kind, model, probe_split, x_mean, x_std, 0.0, 1.0), probe_split.x_val, len(spec.features),
                      repr(original_name(cfg.teacher_file)))
        split = spec_split(spec, raw_teacher_function(kind, model), cfg.split_seed, name=f"{USER_DATASET}-{Path(cfg.input_spec).stem}")
        teacher, info = user_teacher_for(kind, model, split, cfg.teacher_file, device)
        return split, teacher, info
    if cfg.data_file:
        table = read_table(cfg.data_file, cfg.target, cfg.nan_policy)
        split = table_split(table, cfg.split_seed, name=f"{USER_DATASET}-{Path(cfg.data_file).stem}")
    else:
        split = load_split(cfg.dataset, seed=cfg.split_seed, data_dir=data_dir)
    if cfg.teacher_file:
        teacher, info, _, _ = load_user_teacher(cfg.teacher_file, split, device=device, **options)
        return split, teacher, info
    teacher, info = get_teacher(split, cfg.teacher, device, progress=teacher_progress)
    return split, teacher, info


def spec_split_probe(spec) -> Split:
    """A few prior points of the spec as a Split (only to probe the teacher before labelling)."""
    from ..data.user import spec_prior

    prior = spec_prior(spec)
    z = prior.sample(PROBE_SIZE, torch.Generator().manual_seed(5))
    return Split("probe", "tabular", z, torch.zeros(len(z)), z, torch.zeros(len(z)), z, torch.zeros(len(z)), prior)


# ---------------------------------------------------------------- the dashboard's "Your model" section
def store_upload(name: str, data: bytes, role: str) -> str:
    """An uploaded file stored under DFKD_HOME/user_files (content-addressed, its name kept)."""
    import tempfile

    if not data:
        raise ModelError(f"The uploaded {role} file {name!r} is empty.")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(data)
        return store_user_file(path, role)


def table_columns(path: str | Path) -> list[str]:
    """The header of a stored CSV / Parquet file (for the target picker)."""
    import pandas as pd

    try:
        if Path(path).suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        return [str(c).strip() for c in pd.read_csv(path, nrows=0).columns]
    except Exception as exc:  # noqa: BLE001
        from ..errors import DatasetError

        raise DatasetError(f"The data file {original_name(path)!r} cannot be read as a table: {_first_line(exc)}") from None


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


def user_run_config(base, *, teacher_file: str = "", teacher_activation: str = "", data_file: str = "", target: str = "",
                    nan_policy: str = "refuse", input_spec: str = "", teacher_timeout: float | None = None,
                    teacher_query_budget: int | None = None):
    """The form's config turned into a run on the user's teacher and data (or input spec), validated."""
    changes = dict(dataset=USER_DATASET, teacher_file=teacher_file, teacher_activation=teacher_activation,
                   data_file=data_file, target=target, nan_policy=nan_policy, input_spec=input_spec)
    if teacher_timeout is not None:
        changes["teacher_timeout"] = teacher_timeout
    if teacher_query_budget is not None:
        changes["teacher_query_budget"] = teacher_query_budget
    if input_spec and base.selection == "validation":
        changes["selection"] = "synthetic"
    if not (data_file or input_spec):
        raise ConfigError("Upload a data file (CSV or Parquet) or give an input spec. Got neither.")
    return base.replace(**changes).validate()
