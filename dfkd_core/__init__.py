"""DFKD Lab's engine: data-free knowledge distillation of regression networks
(Zhou & Chiam 2023), usable without Streamlit. Data flows one way:

    data/        DatasetSpec registry, parsers, downloads → Split (train/val/test + Prior)
    teachers     Teacher: trained torch MLP/CNN (cached) or black box (SVR, callable)
    user_models  the user's teacher: TorchScript, Linear state_dict, skops, HTTP (never unpickled);
                 data/user.py: the user's CSV / Parquet or input spec, stored under DFKD_HOME
    export       the student to take away: TorchScript + ONNX on raw inputs, model.json card
    shipped      teachers shipped in the package (weights, checksums, the commands that made them)
    models       MLP, the MNIST CNN, RBF network, Kang & Kang's generator
    samplers     Sampler registry: gaussian, lhs, halton, sobol, generator, direct, evolution
    objectives   the synthetic-data loss: registered terms, weighted by DistillConfig.objective's pairs
    schedules    α schedules (eq. 7)
    config       DistillConfig (every hyperparameter, the paper's defaults) and presets; the one
                 place every setting is read and checked (CLI, --set, config files, URL, widgets)
    limits       caps on model sizes; memory / work budgets checked before a run starts
    distill      Algorithm 1: run_distillation(cfg) → events → DistillResult (reference path)
    batched      K students as one batched model (fastmlp: the MLP fast path)
    events       what a run reports: TeacherProgress, RunStarted, EpochMetrics, Snapshot, MemberResult
    runstore     RunStore: SQLite (WAL) + artifact files; the one source of truth for runs
    jobs         runs in worker processes, queue, stop, recovery of dead workers
    figures      plotly figures of the paper's Figs. 4-9 from stored runs
    projection   UMAP / PCA of real vs synthetic points
    reproduce    the paper's Tables 3-6 from one command
    playground   samplers on a function of two inputs, one step at a time (the playground page)
    bench        side-by-side timings of the reference and batched engines
    cli          `python -m dfkd_core <command>`; one module per command in commands/
    errors       DfkdError → ConfigError, DatasetError, ModelError, RegistryError
"""
