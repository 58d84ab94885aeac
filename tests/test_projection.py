"""Projections of real vs synthetic points: PCA fallback while UMAP warms up, the UMAP
cache (in-process and on disk) reused without refitting, nearest-real-point distances."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from dfkd_core.dashboard import embedding as projection


def blobs(n=400, d=5, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (3, d))
    return (centers[rng.integers(0, 3, n)] + rng.normal(0, 0.5, (n, d))).astype(np.float32)


@pytest.fixture(autouse=True)
def fresh_memory():
    projection.clear_memory_cache()
    yield


def test_base_subsamples_to_at_most_2000_rows_and_fits_pca_on_them():
    train = blobs(n=2500)
    base = projection.RealBase.build("k", train)
    assert base.rows.shape == (2000, 5)
    np.testing.assert_allclose(base.pca_rows, PCA(2, random_state=0).fit(base.rows).transform(base.rows), atol=1e-4)


def test_nearest_distance_matches_sklearn_on_the_whole_train_set():
    train, synth = blobs(), blobs(n=20, seed=1) * 3
    base = projection.RealBase.build("k", train)
    expected = NearestNeighbors(n_neighbors=1).fit(train).kneighbors(synth)[0][:, 0]
    np.testing.assert_allclose(base.nearest_distance(synth), expected, rtol=1e-5)


def test_auto_shows_pca_while_umap_is_not_ready(monkeypatch):
    started = []
    monkeypatch.setattr(projection, "warm_up", lambda key, base, seed=0: started.append(key) or False)
    base = projection.RealBase.build("pca-key", blobs())
    result = projection.project("pca-key", base, {"gaussian": np.zeros((7, 5)), "direct": np.ones((3, 1, 5))})
    assert result.method == "PCA"
    assert "background" in result.note
    assert started == ["pca-key"]
    assert result.points.groupby("source").size().to_dict() == {"direct": 3, "gaussian": 7, "real": 400}
    assert result.points.loc[result.points.source == "real", "nn_dist"].isna().all()
    assert list(result.summary.sampler) == ["gaussian", "direct"]
    assert (result.summary.nn_dist_median > 0).all()


def test_unknown_method_is_a_value_error():
    base = projection.RealBase.build("k", blobs())
    with pytest.raises(ValueError, match="'method' parameter must be 'auto', 'umap' or 'pca'. Got 'tsne'"):
        projection.project("k", base, {}, method="tsne")


def test_umap_is_not_imported_by_the_module():
    import subprocess
    import sys

    code = "import sys, dfkd_core.dashboard.embedding, dfkd_core.dashboard.figures; print('umap' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.fixture(scope="module")
def fitted_umap(tmp_path_factory):
    """Fit UMAP once for this module (the first fit costs 10–20 s): key, base, DFKD_HOME."""
    home = tmp_path_factory.mktemp("umap-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DFKD_HOME", str(home))
        projection.clear_memory_cache()
        key = "blobs-split0"
        base = projection.RealBase.build(key, blobs())
        before = projection.FIT_COUNTS[key]
        projection.warm_up(key, base)
        assert projection.wait_for_umap(key, timeout=300), projection.umap_error(key)
        assert projection.FIT_COUNTS[key] == before + 1
        model = projection._UMAPS[key]
    return dict(key=key, base=base, home=home, model=model, fits=projection.FIT_COUNTS[key])


def test_umap_projection_reuses_the_in_process_fit(fitted_umap):
    key, base = fitted_umap["key"], fitted_umap["base"]
    projection._UMAPS[key] = fitted_umap["model"]
    result = projection.project(key, base, {"direct": blobs(n=10, seed=3)}, method="auto")
    assert result.method == "UMAP"
    assert result.note == ""
    assert result.points.groupby("source").size().to_dict() == {"direct": 10, "real": 400}
    assert projection.FIT_COUNTS[key] == fitted_umap["fits"]


def test_umap_is_loaded_from_the_disk_cache_without_refitting(fitted_umap, monkeypatch):
    key, base = fitted_umap["key"], fitted_umap["base"]
    monkeypatch.setenv("DFKD_HOME", str(fitted_umap["home"]))
    assert projection.umap_path(key).exists()
    assert not projection.umap_ready(key)
    projection.fit_umap(key, base)
    assert projection.umap_ready(key)
    assert projection.FIT_COUNTS[key] == fitted_umap["fits"]
    np.testing.assert_allclose(projection._UMAPS[key].embedding_, fitted_umap["model"].embedding_)


def test_umap_rebuilt_from_the_disk_cache_transforms_like_the_original_fit(fitted_umap, monkeypatch):
    key, base = fitted_umap["key"], fitted_umap["base"]
    monkeypatch.setenv("DFKD_HOME", str(fitted_umap["home"]))
    rebuilt = projection.fit_umap(key, base)
    assert rebuilt is not fitted_umap["model"]
    synthetic = blobs(n=10, seed=4) * 1.5
    np.testing.assert_allclose(rebuilt.transform(synthetic), fitted_umap["model"].transform(synthetic), atol=1e-4)
