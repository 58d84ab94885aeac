"""A student the user can take away: TorchScript and ONNX files that take the teacher's raw
inputs (input and target scaling folded in), the state_dict, a model.json card, and what the
distillation bought — parameters, file size and latency of teacher and student beside their error."""
from __future__ import annotations

import io
import json
import os
import shutil
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import DistillConfig
from ..data.split import Split
from ..errors import ModelError
from ..files_out import plain_folder, write_csv, write_file
from ..models.networks import count_parameters
from ..models.teachers import TorchTeacher, build_model, default_student_arch
from ..models import sandbox

# the card's "load_in_pytorch": the user's code, kept as text beside this module (this module loads no model)
LOAD_SNIPPET = Path(__file__).with_name("student_card_load.txt")
LATENCY_BATCHES = (1, 1000)
TEST_ROWS_LIMIT = 100_000  # test_rows.csv holds at most this many rows


class RawInputStudent(nn.Module):
    """The student on the teacher's raw inputs: x → (x − μ_x)/σ_x → student → y·σ_y + μ_y, shape (n,)."""

    def __init__(self, student: nn.Module, x_mean, x_std, y_mean: float, y_std: float, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.student = student
        self.register_buffer("x_mean", torch.as_tensor(np.asarray(x_mean, dtype=np.float32)).reshape(-1))
        self.register_buffer("x_std", torch.as_tensor(np.asarray(x_std, dtype=np.float32)).reshape(-1))
        self.y_mean, self.y_std = float(y_mean), float(y_std)
        self.input_shape = list(input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.flatten(1) - self.x_mean) / self.x_std
        return self.student(z.reshape([-1] + self.input_shape)) * self.y_std + self.y_mean


def split_scaling(split: Split) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(x_mean, x_std, y_mean, y_std) that convert the engine's standardized units to the raw ones."""
    d = split.dim
    x_mean = np.asarray(split.extra.get("x_mean", np.zeros(d)), dtype=np.float64)
    x_std = np.asarray(split.extra.get("x_std", np.ones(d)), dtype=np.float64)
    return x_mean, x_std, float(split.y_mean), float(split.y_std)


def raw_student(cfg: DistillConfig, split: Split, state_dict: dict) -> RawInputStudent:
    arch = default_student_arch(split, cfg.student_hidden) if cfg.student == "auto" else cfg.student
    student = build_model(arch, split, torch.Generator().manual_seed(0))
    student.load_state_dict(state_dict)
    x_mean, x_std, y_mean, y_std = split_scaling(split)
    return RawInputStudent(student.eval(), x_mean, x_std, y_mean, y_std, split.input_shape).eval()


def _latency(fn, x: np.ndarray, repeats: int = 5) -> float:
    """Median seconds of fn(x) over `repeats` calls after three warm-ups (TorchScript optimizes on its second call)."""
    for _ in range(3):
        fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _torch_fn(module: nn.Module):
    def call(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.as_tensor(x, dtype=torch.float32)).numpy()
    return call


def write_test_rows(cfg: DistillConfig, split: Split, path: Path) -> bool:
    """test_rows.csv: the test rows exactly as the user's file holds them (its own text, its own
    column order), or for a registered dataset its rows in raw units; False when there are none to write."""
    real = bool(split.extra.get("real_data", split.extra.get("rows", 0) > 0))
    if not real or len(split.input_shape) != 1 or len(split.x_test) > TEST_ROWS_LIMIT:
        return False
    if cfg.data_file and "test_file_rows" in split.extra:
        from ..data.user import source_rows

        write_csv(path, source_rows(cfg.data_file, split.extra["test_file_rows"]))  # formula-like text neutralised
        return True
    import pandas as pd

    x_mean, x_std, y_mean, y_std = split_scaling(split)
    d = split.dim
    table = pd.DataFrame(split.x_test.reshape(len(split.x_test), -1).double().numpy() * x_std + x_mean,
                         columns=list(split.extra.get("features", [f"x{i + 1}" for i in range(d)])))
    table[split.extra.get("target", "y")] = split.y_test.double().numpy() * y_std + y_mean
    write_csv(path, table)  # the user's column names: formula-like ones neutralised
    return True


def export_student(cfg: DistillConfig, split: Split, state_dict: dict, out_dir: str | Path, *, member: str,
                   selection: dict, teacher_fn=None, teacher_info: dict | None = None, test_rows: bool = True) -> dict:
    """Write student.pt (TorchScript), student.onnx, state_dict.pt, model.json (and test_rows.csv
    unless `test_rows` is False: export_run writes it once) into out_dir; return the card.
    teacher_fn(raw (n, d) numpy) → (n,) is timed beside the student. Every file is written in a
    fresh folder inside out_dir and renamed into place: a link planted at one of these names is
    replaced, never followed."""
    import tempfile

    final = plain_folder(out_dir)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=final) as tmp:
        card = _write_student(cfg, split, state_dict, Path(tmp), member=member, selection=selection,
                              teacher_fn=teacher_fn, teacher_info=teacher_info, test_rows=test_rows)
        for item in sorted(Path(tmp).iterdir()):
            try:
                os.replace(item, final / item.name)
            except OSError:  # another file system (the teacher box's own view of the folder): copy, then rename
                write_file(final / item.name, lambda part, item=item: shutil.copyfile(item, part))
    return card


def _write_student(cfg: DistillConfig, split: Split, state_dict: dict, out: Path, *, member: str,
                   selection: dict, teacher_fn=None, teacher_info: dict | None = None, test_rows: bool = True) -> dict:
    module = raw_student(cfg, split, state_dict)
    x_mean, x_std, y_mean, y_std = split_scaling(split)
    d = split.dim
    example = torch.as_tensor(split.x_test[:4].reshape(-1, d).double().numpy() * x_std + x_mean, dtype=torch.float32)
    try:
        scripted = torch.jit.script(module)
    except Exception:  # noqa: BLE001 - a student torch.jit.script cannot compile is traced instead
        scripted = torch.jit.trace(module, example)
    torch.jit.save(scripted, str(out / "student.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(out / "student.onnx"), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    torch.save({k: v.detach().cpu() for k, v in module.student.state_dict().items()}, out / "state_dict.pt")

    # the raw test rows and the student's error on them, in the target's units
    raw_x = split.x_test.reshape(len(split.x_test), -1).double().numpy() * x_std + x_mean
    raw_y = split.y_test.double().numpy() * y_std + y_mean
    student_raw = _torch_fn(scripted)
    pred = np.concatenate([student_raw(raw_x[i:i + 4096]) for i in range(0, len(raw_x), 4096)]).astype(np.float64)
    student_rmse_raw = float(np.sqrt(np.mean((pred - raw_y) ** 2)))
    student_mae_raw = float(np.mean(np.abs(pred - raw_y)))
    features = list(split.extra.get("features", [f"x{i + 1}" for i in range(d)]))
    real = bool(split.extra.get("real_data", split.extra.get("rows", 0) > 0))
    if test_rows:
        write_test_rows(cfg, split, out / "test_rows.csv")

    probe = {b: np.repeat(raw_x[:1], b, axis=0) if len(raw_x) else np.zeros((b, d)) for b in LATENCY_BATCHES}
    student_card = {
        "architecture": describe_architecture(module.student), "parameters": count_parameters(module.student),
        "file_bytes": (out / "student.pt").stat().st_size, "onnx_bytes": (out / "student.onnx").stat().st_size,
        "latency_seconds": {f"batch_{b}": _latency(student_raw, probe[b]) for b in LATENCY_BATCHES},
        "test_rmse": selection.get("test_rmse"), "test_mae": selection.get("test_mae"),
        "test_rmse_raw": student_rmse_raw, "test_mae_raw": student_mae_raw,
    }
    teacher_card = dict(teacher_info or {})
    reference = teacher_card.pop("reference_student", None)  # the data-trained reference, beside the teacher
    for key in ("test_rmse", "test_mae"):  # the engine's errors are standardized; these are in the target's units
        if isinstance(teacher_card.get(key), float):
            teacher_card[f"{key}_raw"] = teacher_card[key] * y_std
    if teacher_fn is not None:
        try:
            teacher_card["latency_seconds"] = {f"batch_{b}": _latency(teacher_fn, probe[b], repeats=3) for b in LATENCY_BATCHES}
        except Exception as exc:  # noqa: BLE001 - a teacher that cannot be timed is noted, not fatal
            teacher_card["latency_seconds"] = f"not measured: {exc}"
    card = {
        "format": "dfkd-lab student 1",
        "member": member,
        "inputs": {"names": features, "shape": list(split.input_shape), "units": "the teacher's raw units",
                   "scaling": {"x_mean": x_mean.tolist(), "x_std": x_std.tolist()}},
        "output": {"name": split.extra.get("target", "y"), "y_mean": y_mean, "y_std": y_std,
                   "note": "the student returns y in the target's units: standardized prediction × y_std + y_mean"},
        "student": student_card,
        "teacher": teacher_card,
        **({"reference_student": reference} if reference else {}),
        "metrics_note": ("test_rmse / test_mae are on the standardized target (as the paper's tables); *_raw are in the "
                         "target's units on the test rows (test_rows.csv)" if real else
                         "strictly data-free: 'test' errors are disagreement with the teacher on held-out synthetic points"),
        "selection": {"rule": cfg.selection, **{k: v for k, v in selection.items() if k not in ("test_rmse", "test_mae")}},
        "real_data": real,
        "split": {k: split.extra.get(k) for k in ("n_train", "n_val", "n_test", "source")},
        "configuration": cfg.to_dict(),
        "files": sorted(p.name for p in out.iterdir() if p.is_file()) + ["model.json"],
        "test_rows": ("test_rows.csv beside this file" if test_rows else "test_rows.csv at the top of the export folder")
        if real and len(split.input_shape) == 1 else "none (no real rows)",
        "load_in_pytorch": LOAD_SNIPPET.read_text(encoding="utf-8").format(d=d),
    }
    card = without_server_paths(card)
    (out / "model.json").write_text(json.dumps(card, indent=2, default=_json_default), encoding="utf-8")
    return card


def without_server_paths(value):
    """The card with every absolute file path on this machine replaced by the file's own name (a
    user's stored file by the name it was uploaded under): model.json travels, the server's folders
    stay here. URLs and relative names are kept."""
    import os

    if isinstance(value, dict):
        return {k: without_server_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(without_server_paths(v) for v in value)
    if isinstance(value, Path) or (isinstance(value, str) and "\n" not in value and os.path.isabs(value)):
        from ..data.user import original_name

        return original_name(value)
    return value


ACTIVATION_NAMES = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.GELU: "gelu", nn.ELU: "elu",
                    nn.LeakyReLU: "leaky_relu", nn.SiLU: "silu", nn.Softplus: "softplus"}


def describe_architecture(module: nn.Module) -> str:
    """'MLP: Linear(14→50), tanh, Linear(50→1)': the layers in order with their activations, so the
    state_dict can be rebuilt from the card (an MLP whose activation is a function, not a module,
    names it from its `activation` attribute)."""
    parts = []
    for m in module.modules():
        if isinstance(m, nn.Linear):
            parts.append(f"Linear({m.in_features}→{m.out_features})")
        elif type(m) in ACTIVATION_NAMES:
            parts.append(ACTIVATION_NAMES[type(m)])
    linear = [i for i, p in enumerate(parts) if p.startswith("Linear")]
    act = getattr(module, "activation", None)
    act = act if isinstance(act, str) else getattr(act, "__name__", None)
    if act and len(linear) > 1 and len(parts) == len(linear):  # activations applied as functions between the layers
        parts = [x for i, p in enumerate(parts) for x in ([p, act] if i < len(parts) - 1 else [p])]
    return f"{type(module).__name__}: " + (", ".join(parts) if parts else str(module).replace("\n", " ")[:200])


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def teacher_summary(run_teacher, info, cfg: DistillConfig, split: Split | None = None) -> tuple[dict, object]:
    """(card part, raw-input function) of a run's teacher: kind, parameters, file size, errors."""
    from ..models.user_models import raw_teacher_function

    card = {"kind": getattr(run_teacher, "kind", "teacher"), "test_rmse": info.test_rmse, "test_mae": info.test_mae,
            "file": info.extra.get("file", Path(info.path).name if info.path else ""), "parameters": None, "file_bytes": None}
    if info.extra.get("reference"):  # the same student trained on the real labels (userrun.reference_student)
        card["reference_student"] = {**info.extra["reference"],
                                     "test_rmse_raw": info.extra["reference"]["test_rmse"] * float(split.y_std)
                                     if split is not None else None}
    if info.extra.get("units_choice"):  # which units the teacher was given, and why (userrun.choose_units)
        card["units"] = dict(info.extra["units_choice"])
        if card["units"].get("warning"):
            card["warning"] = card["units"]["warning"]
    if info.path and Path(info.path).is_file():
        card["file_bytes"] = Path(info.path).stat().st_size
    fn = None
    if cfg.teacher_file and cfg.teacher_query_budget and cfg.teacher_file.startswith(("http://", "https://")):
        card["latency_seconds"] = "not measured: the HTTP teacher's queries are budgeted (--query-budget)"
        return card, False
    if cfg.teacher_file and info.loaded is not None:  # the run's own load of the file (user_models), not a second one
        kind, model = info.loaded
        if isinstance(model, nn.Module):
            card["parameters"] = count_parameters(model)
        fn = raw_teacher_function(kind, model)
        if info.extra.get("units") == "standardized":  # timed on the raw rows it is given in the run: scaled first
            x_mean, x_std, _, _ = split_scaling(split) if split is not None else (0.0, 1.0, 0.0, 1.0)
            plain = fn

            def fn(raw: np.ndarray) -> np.ndarray:
                return plain((np.asarray(raw, dtype=np.float64).reshape(len(raw), -1) - x_mean) / x_std)
    elif isinstance(run_teacher, TorchTeacher):
        card["parameters"] = count_parameters(run_teacher.module)
        fn = None  # the product's own teacher works standardized; timed below through the engine's teacher
    return card, fn


def export_run(cfg: DistillConfig, members: list[dict], out_dir: str | Path, *, run=None) -> dict:
    """Export every student of a finished run: one folder per member under out_dir, and the
    member with the lowest validation RMSE (no test data involved) also at out_dir's top level.
    `members`: dicts with member, sampler, alpha, seed, test_rmse, test_mae, best_epoch,
    best_val_rmse and state_dict. `run`: the run's RunContext, else prepared again from cfg."""
    from ..engine.context import prepare_run

    if not members:
        raise ModelError("The run has no finished student to export.")
    run = run or prepare_run(cfg, reference=False)  # a stored run exported again: no reference student retrained
    teacher_card, teacher_fn = teacher_summary(run.teacher, run.teacher_info, run.cfg, run.split)
    if teacher_fn is False:  # not to be timed
        teacher_fn = None
    elif teacher_fn is None:
        x_mean, x_std, _, _ = split_scaling(run.split)
        teacher = run.teacher

        def teacher_fn(raw: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                z = torch.as_tensor((raw - x_mean) / x_std, dtype=torch.float32).reshape(-1, *run.split.input_shape)
                return teacher.predict(z.to(run.device)).cpu().numpy()
    out = Path(out_dir)
    if out.is_symlink():
        plain_folder(out)  # refused: an export never writes through a link
    if out.is_dir() and any(out.iterdir()):
        raise ModelError(f"The export folder {str(out)!r} is not empty: the students would end up beside what is there. "
                         "Give a new or empty folder.")
    out.mkdir(parents=True, exist_ok=True)
    write_test_rows(run.cfg, run.split, out / "test_rows.csv")  # once, at the top: every student's errors are on these rows
    cards, folders = {}, {}
    best = min(members, key=lambda m: (m["best_val_rmse"] if np.isfinite(m["best_val_rmse"]) else np.inf))
    for m in members:
        folder = out / f"{m['sampler']}-{str(m['alpha']).replace(':', '_').replace(',', '_')}-seed{m['seed']}"
        selection = {"test_rmse": m["test_rmse"], "test_mae": m["test_mae"], "best_epoch": m["best_epoch"],
                     "best_val_rmse": m["best_val_rmse"]}
        cards[m["member"]] = export_student(run.cfg, run.split, m["state_dict"], folder, member=m["member"],
                                            selection=selection, teacher_fn=teacher_fn, teacher_info=teacher_card,
                                            test_rows=False)
        folders[m["member"]] = str(folder)
        if m is best:
            for item in sorted(folder.iterdir()):
                if item.is_file() and not item.is_symlink():
                    write_file(out / item.name, lambda tmp, item=item: shutil.copyfile(item, tmp))
    return {"best": best["member"], "students": cards, "folders": folders}


def member_dicts(result) -> list[dict]:
    """export_run's member dicts from a DistillResult."""
    return [{"member": m.member, "sampler": m.sampler, "alpha": m.alpha, "seed": m.seed, "test_rmse": m.test_rmse,
             "test_mae": m.test_mae, "best_epoch": m.best_epoch, "best_val_rmse": m.best_val_rmse,
             "state_dict": m.state_dict} for m in result.members if m.state_dict is not None]


def export_stored_run(run_id: str, member: str, store=None) -> bytes:
    """A zip (bytes) of one stored run's student export, for the Runs page's download button.
    A run on a user's teacher file is exported by a boxed child process (the export loads the
    teacher: never in the dashboard's server)."""
    import tempfile

    from .runstore import RunStore
    from ..models.user_models import user_model_file

    store = store or RunStore()
    cfg, m = _stored_member(store, run_id, member)
    with tempfile.TemporaryDirectory() as tmp:
        if user_model_file(cfg) and sandbox.confined() is None:
            _export_in_box(store, run_id, member, tmp)
        else:
            export_run(cfg, [m], tmp)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for item in sorted(Path(tmp).iterdir()):
                if item.is_file():
                    zf.write(item, f"student/{item.name}")
        return buffer.getvalue()


def _stored_member(store, run_id: str, member: str) -> tuple[DistillConfig, dict]:
    info = store.get_run(run_id)
    cfg = info.config or DistillConfig.from_dict(info.config_dict)
    row = store.results(run_id).set_index("member").loc[member]
    m = {"member": member, "sampler": row["sampler"], "alpha": row["alpha"], "seed": int(row["seed"]),
         "test_rmse": float(row["test_rmse"]), "test_mae": float(row["test_mae"]), "best_epoch": int(row["best_epoch"]),
         "best_val_rmse": float(row["best_val_rmse"]), "state_dict": store.load_weights(run_id, member)}
    return cfg, m


def _export_in_box(store, run_id: str, member: str, out_dir: str) -> None:
    """export_boxed_main in a child process that boxes itself (writes only out_dir)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, DFKD_HOME=str(store.home))
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    code = "import sys; from dfkd_core.runs.export import export_boxed_main; sys.exit(export_boxed_main(sys.argv[1:]))"
    try:
        done = subprocess.run([sys.executable, "-c", code, run_id, member, out_dir], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=600)
    except (subprocess.TimeoutExpired, OSError) as exc:
        raise ModelError(f"The export of run {run_id!r} did not finish: {exc}.") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise ModelError(lines[-1].removeprefix("error: ") if lines else f"The export of run {run_id!r} failed.")


def export_boxed_main(argv: list[str]) -> int:
    """The child of _export_in_box: read the run, box this process (writes only the out folder)
    before the user's teacher loads, export the member."""
    import sys

    from ..errors import DfkdError
    from ..runs.runstore import RunStore
    from ..models.user_models import plan_cli_box

    run_id, member, out_dir = argv
    try:
        sandbox.own_process()
        cfg, m = _stored_member(RunStore(), run_id, member)
        plan_cli_box(cfg, [out_dir])
        export_run(cfg, [m], out_dir)
    except DfkdError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0
