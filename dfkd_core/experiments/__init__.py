"""Experiments on the engine: the paper's tables (reproduce), timings (bench) and the plain
PyTorch loop they are measured and checked against (plain_loop)."""
