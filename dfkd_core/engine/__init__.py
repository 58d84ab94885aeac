"""The one way to train: prepare a run (context), stack its students (stacked: any architecture
through torch.func; fused_mlp + mlp_kernels: the paper's MLPs with hand-written kernels), and
run THE epoch loop (loop.run_distillation) that every front end drives."""
from .loop import run_distillation

__all__ = ["run_distillation"]
