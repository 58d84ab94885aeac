"""The issue-19 acceptance files: cpusmall as a CSV (target y) and the built-in cpusmall teacher as a
TorchScript 12 -> 500 -> 1 tanh on raw units, its scaling folded into its weights."""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
import numpy as np, pandas as pd, torch
from torch import nn
from dfkd_core.data import load_split
from dfkd_core.models.teachers import get_teacher

split = load_split("cpusmall", seed=0)
teacher, info = get_teacher(split, "auto", torch.device("cpu"))
sd = {k: v.detach().double() for k, v in teacher.module.state_dict().items()}
print({k: tuple(v.shape) for k, v in sd.items()}, "test rmse", info.test_rmse)
ws = [v for k, v in sd.items() if k.endswith("weight")]
bs = [v for k, v in sd.items() if k.endswith("bias")]
(w1, w2), (b1, b2) = ws, bs
mean = torch.tensor(split.extra["x_mean"], dtype=torch.float64)
std = torch.tensor(split.extra["x_std"], dtype=torch.float64)
ym, ys = split.y_mean, split.y_std
class Raw(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, w1.shape[0]); self.fc2 = nn.Linear(w1.shape[0], 1)
    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))
raw = Raw().double()
with torch.no_grad():
    raw.fc1.weight.copy_(w1 / std); raw.fc1.bias.copy_(b1 - (w1 / std) @ mean)
    raw.fc2.weight.copy_(w2 * ys); raw.fc2.bias.copy_(b2 * ys + ym)
raw = raw.float().eval()
X = torch.cat([split.x_train, split.x_val, split.x_test]).double() * std + mean
Y = torch.cat([split.y_train, split.y_val, split.y_test]).double() * ys + ym
with torch.no_grad():
    pred = teacher.module(split.x_test).reshape(-1).double() * ys + ym
    pred_raw = raw(split.x_test.double().mul(std).add(mean).float()).reshape(-1).double()
print("max |raw - builtin| on test rows:", float((pred - pred_raw).abs().max()))
torch.jit.save(torch.jit.script(raw), "/tmp/measure/T.pt")
df = pd.DataFrame(X.numpy(), columns=[f"x{i}" for i in range(12)]); df["y"] = Y.numpy()
df.to_csv("/tmp/measure/cpusmall.csv", index=False)
print("rows", len(df))
