"""The dashboard's façade: everything the pages call, without Streamlit (the pages import
nothing else of dfkd_core). Its modules, each with one concern:

    texts        the words on the pages (captions, plain table headers) and plain(), which shows
                 outside text as exactly its characters
    forms        the Distill form: widget specs with help from DistillConfig's field metadata, the
                 config the widgets assemble and its URL, registered samplers / terms, datasets,
                 the case-study configs (MNIST, black-box)
    views        stored runs as pages show them: start / stop, the runs table, one run's view,
                 snapshots, digits, test metrics per sampler
    projections  real vs synthetic points, computed in a worker process off the page's thread
    compare      several runs side by side, exports (CSV, HTML figure, weights, the student's zip), delete
    yours        "Your model": the user's teacher, data or input spec as a run, and reopening one
    paper        the paper's Tables 3-6 beside our stored reproduction, with paired verdicts over seeds
    sweep_figures  a stored sweep (experiments/sweep.py): its table and the metric against each swept field
    figures      plotly figures of the paper's Figs. 4-9; live_curves a streaming run's epoch curves
                 (Vega-Lite: the spec fixed, the rows replaced in place); embedding (UMAP / PCA); ui (the pages'
                 shared Streamlit widgets: the only module here that imports Streamlit)
    playground   the sampler playground's state for its page (imports torch: the page imports it);
                 playground_views its Vega-Lite charts (fixed specs, new data per frame: no flicker)"""
from __future__ import annotations

from ..config import MAX_OBJECTIVE_TERMS, DistillConfig, Member  # noqa: F401 (the Distill page reads MAX_OBJECTIVE_TERMS)
from ..errors import ConfigError, DfkdError  # noqa: F401 (pages catch DfkdError)
from ..models.http_teacher import note_server_address  # noqa: F401 (the app says where it listens: HTTP teacher hosts)
from ..paths import data_dir, home_dir  # noqa: F401 (the frame and the Datasets page name the folders)
from .compare import (compare_metrics, compare_results, delete_runs, export_zip, figure_html,  # noqa: F401
                      members_with_weights, metrics_csv, weights_bytes)
from .forms import (ALPHA_CHOICES, BLACKBOX_SAMPLERS, CHOICES, DEFAULT, MAIN_FIELDS, MNIST_SAMPLERS,  # noqa: F401
                    SECTIONS, USER_FIELDS, FieldSpec, advanced_sections, alpha_curves, available_datasets,
                    blackbox_config, catalog, catalog_table, check_dataset, config_from_query, config_from_widgets,
                    dataset_choices, dataset_note, default_weight, field_spec, form_config, mnist_config,
                    objective_from_widgets, objective_widgets, preset_names, preset_values, query_for,
                    sampler_help, sampler_names, snapshot_plan, term_help, term_names, term_summary,
                    widget_value, widget_values)
from .paper import (PAIRED_HELP, PAPER_TABLES, VERDICT_HELP, active_reproduction, executor_line,  # noqa: F401
                    paper_claims, paper_table, reproduction_cells, reproduction_paired, reproduction_table,
                    start_reproduction, stored_reproductions, table_caption, table_defaults)
from .projections import (hold_projection, is_plane, plane_projection, projection, projection_later,  # noqa: F401
                          projection_unavailable, umap_warming)
from .texts import (AUTOLINK_TRIGGERS, CAPTIONS, MARKDOWN_PUNCTUATION, PAGE_INTRO, PLAIN_COLUMNS,  # noqa: F401
                    WHAT_IS_DFKD, WORD_JOINER, error_line, plain, plain_columns)
from .views import (ACTIVE, STATUSES, RunView, as_image, case_study_runs, constraint_table, digit_figure, digit_items,  # noqa: F401
                    epoch_widget, keep_warm, load_view, recover, result_summary, run_active, run_config, run_exists,
                    run_status_line, runs_table, snapshot, snapshot_frame, store, stop, submit, synthetic_batches,
                    teacher_bar, teacher_queries, teacher_row, view_summary)
from .yours import (activation_names, discard_uploads, gradient_free_reason, note_parts, query_plan_caption,  # noqa: F401
                    spec_constraints, spec_table_rows, store_upload, submit_uploads, submit_with_inputs_of, table_columns,
                    teacher_unit_names, upload_run_config, user_inputs, user_inputs_note)

