"""The words on the dashboard's pages: what DFKD is, each chart's caption, plain table headers
with units, and `plain()`, which shows any outside text (a URL's value, a file's name, an error
quoting one) as exactly its characters, never as markdown."""
from __future__ import annotations

import re
from typing import Any

import pandas as pd

MARKDOWN_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")  # every ASCII punctuation character
AUTOLINK_TRIGGERS = re.compile(r"(?i):|@|www(?=\.)")  # where GFM starts a bare link: http://, www., a@b.org
WORD_JOINER = "\u2060"  # invisible, neither space nor punctuation: no autolink can start right after it


def plain(text: Any) -> str:
    """`text` (a value from a URL, a file or a form, or a message quoting one) as markdown that
    shows exactly those characters, and nothing else: every ASCII punctuation character becomes a
    numeric character reference (&#58; for ':'), so no link, image, HTML, emphasis, heading,
    Streamlit directive (:red[…], :material/…:) or formula ($…$) can form. GFM turns bare
    http://…, www.… and e-mail addresses into links after decoding those references, so an
    invisible word joiner follows each ':' and '@' and each 'www' before a '.'. Each line stays
    a line (a hard break), its leading spaces dropped (no code block)."""
    lines = str(text).splitlines() or [""]
    return "  \n".join(
        MARKDOWN_PUNCTUATION.sub(lambda m: f"&#{ord(m.group())};",
                                 AUTOLINK_TRIGGERS.sub(lambda m: m.group() + WORD_JOINER, line.strip()))
        for line in lines)


WHAT_IS_DFKD = (
    "A **teacher** network was trained on real data that we no longer have; **data-free knowledge distillation** "
    "trains a smaller **student** to copy it from synthetic inputs alone, the teacher supplying each input's target "
    "(the paper's Figure 1). The synthetic batch **x_g** comes from a **sampler**: random draws (gaussian, lhs, ...), "
    "a **generator** network trained to produce inputs where student and teacher disagree (Figure 2), **direct** "
    "optimization of random points toward such inputs (Algorithm 2, Figure 3), or **evolution** for teachers that can "
    "only be queried. Each step mixes x_g with plain prior samples x_p, weighted by **α** (eq. 7: α on x_g, 1 − α on "
    "x_p), and the student's loss on x_g is what the samplers try to raise. Figures 4–7 compare the samplers on "
    "tabular data (losses, projections, validation curves), Figures 8–9 on MNIST digits."
)
PAGE_INTRO = {
    "distill": "This page runs that comparison on the dataset you choose: every sampler and α schedule trains "
               "its own student side by side, and the charts below follow them live.",
    "mnist": "This page runs it on digits: a CNN teacher that predicts the digit as a number, a smaller CNN "
             "student, and synthetic images you can look at with the teacher's prediction above each (Figure 8).",
}
CAPTIONS = {
    "val_rmse": "Each line is one sampler's student: its error on held-out real validation data, lower is better. "
                "The grey dashed line is the teacher on the same data; students rarely go below it.",
    "val_rmse_data_free": "Each line is one sampler's student: its distance to your teacher on validation points drawn "
                          "from your input spec (the teacher labels them: no real data), lower is better.",
    "val_mae": "Each line is one sampler's student: its mean absolute error on held-out real digits, lower is "
               "better (0.5 means it is off by half a digit on average).",
    "loss_xg": "How badly the student copies the teacher on each epoch's synthetic batch x_g (log scale). A sampler "
               "that keeps this high keeps finding the student's weak spots (Figure 7).",
    "boxplots": "Per-point student loss on the last synthetic batch of each snapshot epoch (log scale); a box per "
                "sampler. Higher boxes: harder points for the student (Figure 4).",
    "projection": "Grey: real training points; coloured: each sampler's synthetic batch at the chosen epoch, "
                  "squashed to 2-D. Points far from the grey cloud are inputs the real data never had (Figure 5).",
    "digits": "Synthetic images of one student per sampler; above each, the number the teacher predicts for it. "
              "Random noise gets middling predictions; good samplers reach many digits (Figure 8).",
    "histograms": "How the teacher's predictions on one synthetic batch spread out, a panel per sampler. A spread "
                  "over 0–9 means the batch covers every digit; a pile-up means it does not (Figure 9).",
    "constraint": "Each synthetic amino-acid composition must be fractions that sum to 1, none negative; this "
                  "checks the chosen batch.",
    "results": "Each dot is a sampler's students on the real test set (mean ± sd over seeds); the dashed line is "
               "the teacher's test figure.",
    "results_data_free": "Each dot is a sampler's students on test points drawn from your input spec and labelled by "
                         "your teacher (mean ± sd over seeds): how far they are from the teacher, 0 being a perfect copy.",
    "teacher_data_free": "A data-free run has no real data: its validation and test points are drawn from your input "
                         "spec and labelled by your teacher, so the teacher is the reference the students are measured "
                         "against, not a competitor with an error of its own.",
    "selections": "Mean ± sd over seeds. The paper selects the student with the best validation RMSE (which needs "
                  "real validation data); the data-free columns select without it. Selections that chose the same "
                  "students share a column.",
    "selections_data_free": "Mean ± sd over seeds. Every selection here is data-free: the validation points, too, are "
                            "drawn from your input spec. Selections that chose the same students share a column.",
}
PLAIN_COLUMNS = {  # raw column -> header with units, for the tables the pages show
    "sampler": "sampler",
    "points": "points",
    "nn_dist_median": "median distance to nearest real point (input units)",
    "nn_dist_max": "largest distance to nearest real point (input units)",
    "real_nn_median": "real points' own median nearest-neighbour distance (input units)",
    "row_sum_min": "smallest row sum (1 on the simplex)",
    "row_sum_max": "largest row sum (1 on the simplex)",
    "feature_min": "smallest fraction (≥ 0 on the simplex)",
    "feature_max": "largest fraction",
    "on_simplex": "on the simplex?",
    "member": "student (sampler|α|seed)",
    "teacher_queries": "points sent to the teacher",
}


def plain_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The table with headers in plain words and units (PLAIN_COLUMNS); unknown columns keep their names."""
    return table.rename(columns=PLAIN_COLUMNS)
