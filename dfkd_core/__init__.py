"""DFKD Lab's engine: data-free knowledge distillation of regression networks
(Zhou & Chiam 2023), usable without Streamlit. Data flows one way, each floor importing only the floors
above it here (tests/test_architecture.py checks it and lists the few known exceptions):

    errors, registry, paths, device     the ground floor: error types, registries of parts, folders, CPU/GPU
    files_out   files written for people: CSV formula cells neutralised, written via a new file and a
                rename (a planted link is never followed), JSON with null for NaN
    config      DistillConfig (every hyperparameter, the paper's defaults) and presets; the one place every
                setting is read and checked (CLI, --set, config files, URL, widgets)
    caps        model strings ('mlp500', 'cnn10', 'rbf100') and their size caps; the budgets' environment variables
    limits      memory / work budgets checked before a run starts (re-exports caps)
    events      what a run reports: TeacherProgress, RunStarted, EpochMetrics, Snapshot, MemberResult
    data/       catalog (the DatasetSpec registry), parsers, download, protocol (the paper's split)
                → split (train/val/test + priors); user: the user's CSV / Parquet or input spec
    models/     networks (MLP, the MNIST CNN, RBF network, Kang & Kang's generator);
                teachers (trained, cached, shipped: shipped.py + shipped_teachers/; teacher_batch
                trains several seeds stacked; updates: RMSprop, Adam and Algorithm 2's fresh optimizer of
                the points, in place, each written once); user_models (the user's teacher: TorchScript, Linear
                state_dict, skops, HTTP — never unpickled; TorchScript gated by an op allow-list, skops by
                exact types, archives checked before they expand); sandbox (the box a user's model runs
                in: Landlock, seccomp, rlimits); http_teacher (the HTTP teacher: allowed hosts only, no
                redirects, one deadline per request, capped answers)
    synth/      samplers (one registry; each works on stacked members), objectives (registered
                terms; the config's objective is a list of (term, weight) pairs), schedules (α, eq. 7)
    userrun     a user's run in one place (CLI and page): their teacher / data / spec / target / units / activation
                checked, stored once, made a configuration; the run's split and teacher in the units that fit
                ('auto' scores raw and standardized on the validation rows); an HTTP teacher's query plan
    engine/     THE way to train: context (RunContext, prepare_run, member layout), loop (the one
                epoch loop: run_distillation), stacked (the generic stack form: any architecture
                through torch.func), fused_mlp + mlp_kernels (the paper's MLPs with hand-written
                kernels; fused_parts: what each sampler group does there, one class per declared
                implementation),
                teacher_call (the teacher as one callable of the step: MLP kernels,
                autograd through any torch module, or a black box's values); on a GPU both forms replay their step as CUDA graphs; compiled (the
                torch.compile policy of the generic form: DFKD_COMPILE, eager fallback)
    runs/       runstore (SQLite (WAL) + artifact files: the one source of truth for runs),
                jobs (runs in worker processes: queued rows dispatched as slots free, a server's warm
                worker, Stop's request → SIGTERM → SIGKILL, recovery of dead workers; a CLI run stored in
                process), live (what a polling page reads: new epochs only, the previous projection held
                until the next is ready), export (a run's student to take away: TorchScript + ONNX on raw
                inputs, model.json card)
    experiments/ reproduce (the paper's Tables 3-6 from one command), bench (side-by-side timings),
                runner (the one runner of multi-run jobs: local processes, a Dask LocalCluster or a Dask
                scheduler; results stored by the driver alone), sweep (a grid over config fields × seeds,
                stored as one sweep), paired (two methods compared seed by seed: t interval, Wilcoxon),
                plain_loop (the plain PyTorch loop: bench's baseline, the tests' oracle),
                playground (samplers on a function of two inputs, one step at a time),
                compile_timing (the generic form eager against compiled, side by side),
                browser (the dashboard's server and Debian's chromium, one launcher for the browser
                tests and `bench --dashboard`, and that bench's measurements)
    dashboard/  the pages' façade, without Streamlit: texts (captions, plain()), forms (widget specs,
                the config and its URL), views (stored runs as pages show them), projections (real vs
                synthetic points in a worker), compare (several runs, exports, delete), yours (the
                user's teacher and data), paper (Tables 3-6 beside ours), figures (plotly figures of
                the paper's Figs. 4-9), live_curves (a streaming run's epoch curves as Vega-Lite: a fixed
                spec, rows replaced in place), embedding (UMAP / PCA), playground + playground_views (the sampler
                playground: its state; its Vega-Lite charts, fixed specs with new data per frame),
                sweep_figures (a stored sweep: table and metric against each swept field); ui: the pages'
                shared Streamlit widgets
    cli         `python -m dfkd_core <command>`; one module per command in commands/: distill, bench,
                reproduce, sweep, datasets, runs, teach, worker (a run's worker process)
"""
