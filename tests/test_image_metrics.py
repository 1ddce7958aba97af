"""Image metrics on feature vectors against independent oracles and known toy answers.

Oracles are written differently from the implementation on purpose: the Fréchet distance via an
eigendecomposition of ``Σ1^{1/2} Σ2 Σ1^{1/2}`` and the diagonal closed form (not ``sqrtm``), KID
and IS with explicit loops over pairs/samples, precision/recall and density/coverage with
``scipy.spatial.distance.cdist`` and Python loops.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from lsgan_jax.metrics import image_metrics as im

TOY = im.FeatureSpace(weights="none (toy features)", resize="none", features="toy gaussian")


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _fd_eig(mu1, s1, mu2, s2) -> float:
    w, v = np.linalg.eigh(s1)
    s1_half = (v * np.sqrt(w)) @ v.T
    ev = np.linalg.eigvalsh(s1_half @ s2 @ s1_half)
    tr_sqrt = np.sqrt(np.clip(ev, 0.0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


# ---------------------------------------------------------------------------------------------
# Fréchet distance / FID
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 4, 32])
def test_frechet_distance_matches_eigendecomposition(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _spd(rng, d), _spd(rng, d)
    got = im.frechet_distance(mu1, s1, mu2, s2)
    np.testing.assert_allclose(got, _fd_eig(mu1, s1, mu2, s2), rtol=1e-9, atol=1e-10)
    # symmetric in its two Gaussians
    np.testing.assert_allclose(im.frechet_distance(mu2, s2, mu1, s1), got, rtol=1e-9)


@pytest.mark.parametrize("d", [2, 16, 64])
def test_frechet_distance_matches_scipy_sqrtm_reference(d):
    """pytorch-fid's own formula with `scipy.linalg.sqrtm` on random Gaussians (float64)."""
    from scipy import linalg

    rng = np.random.default_rng(100 + d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d) * 0.5
    s1, s2 = _spd(rng, d), _spd(rng, d)
    covmean = linalg.sqrtm(s1 @ s2).real
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)
    np.testing.assert_allclose(im.frechet_distance(mu1, s1, mu2, s2), ref, rtol=1e-7, atol=1e-8)


def test_frechet_distance_diagonal_closed_form_and_special_cases():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.1, 3.0, size=d), rng.uniform(0.1, 3.0, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = im.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert math.isclose(im.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]), 4.0 + 1.0)
    # identical Gaussians -> 0; a pure shift -> |dmu|^2
    s = _spd(rng, d)
    assert abs(im.frechet_distance(mu1, s, mu1, s)) < 1e-9
    np.testing.assert_allclose(im.frechet_distance(mu1, s, mu2, s), np.sum((mu1 - mu2) ** 2))


def test_frechet_distance_singular_covariances_and_bad_shapes():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(10, 32))  # rank 9 covariances
    val = im.frechet_distance(*im.feature_statistics(a), *im.feature_statistics(b))
    assert np.isfinite(val) and val > 0
    with pytest.raises(ValueError, match="shape"):
        im.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_fid_from_features_uses_pytorch_fid_statistics_and_reports_protocol():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(20000, 8))
    fake = rng.normal(loc=0.5, scale=1.2, size=(15000, 8))
    res = im.fid_from_features(real, fake, split="test", space=TOY)
    expected = _fd_eig(
        real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False)
    )
    np.testing.assert_allclose(res.value, expected, rtol=1e-9)
    # near the population value 8*0.25 + 8*(1.2 - 1)^2 = 2.32 (sampling noise aside)
    assert abs(res.value - 2.32) < 0.15
    p = res.protocol
    assert (p.n_real, p.n_fake, p.split, p.resize, p.weights) == (
        20000,
        15000,
        "test",
        "none",
        "none (toy features)",
    )
    assert "split=test" in str(res) and "n_real=20000" in str(res)
    assert res.as_dict()["fid"] == res.value and res.as_dict()["n_fake"] == 15000
    assert float(res) == res.value
    with pytest.raises(TypeError, match="FeatureSpace"):
        im.fid_from_features(real, fake, split="test", space="pytorch-fid")
    with pytest.raises(ValueError, match="dimensions differ"):
        im.fid_from_features(real, fake[:, :4], split="test", space=TOY)
    with pytest.raises(ValueError, match="NaN"):
        im.fid_from_features(real, fake * np.nan, split="test", space=TOY)


def test_pytorch_fid_feature_space_names_the_published_weights():
    space = im.FeatureSpace.pytorch_fid()
    assert space.weights.startswith("pt_inception-2015-12-05 (sha256 6726825d0af5f729")
    assert space.resize == "bilinear-299 (pytorch-fid)"
    assert space.slug() != im.FeatureSpace(weights=im.WEIGHTS_RANDOM).slug()


def test_reference_stats_cache_roundtrip(tmp_path):
    rng = np.random.default_rng(3)
    real = rng.normal(size=(200, 6))
    fake = rng.normal(loc=0.2, size=(150, 6))
    path = im.cache_reference_stats("digits", "test", real, space=TOY, cache_dir=tmp_path)
    assert path.is_file() and path.parent == tmp_path / "fid_stats"
    assert path == im.reference_stats_path("digits", "test", space=TOY, cache_dir=tmp_path)
    ref = im.load_reference_stats("digits", "test", space=TOY, cache_dir=tmp_path)
    assert (ref.name, ref.split, ref.n, ref.space) == ("digits", "test", 200, TOY)
    np.testing.assert_allclose(ref.mu, real.mean(0))
    np.testing.assert_allclose(ref.sigma, np.cov(real, rowvar=False))
    from_stats = im.fid_from_stats(ref, fake, space=TOY)
    direct = im.fid_from_features(real, fake, split="test", space=TOY)
    np.testing.assert_allclose(from_stats.value, direct.value, rtol=1e-12)
    assert from_stats.protocol.n_real == 200 and from_stats.protocol.split == "test"
    other = im.FeatureSpace(weights="other", resize="none", features="toy gaussian")
    with pytest.raises(FileNotFoundError, match="cache_reference_stats"):
        im.load_reference_stats("digits", "test", space=other, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        im.load_reference_stats("digits", "train", space=TOY, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="not be comparable"):
        im.fid_from_stats(ref, fake, space=other)


# ---------------------------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------------------------


def _mmd2_loops(x, y) -> float:
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2.0 * kxy


def test_kid_unbiased_mmd_matches_pairwise_loops():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(12, 5)), rng.normal(loc=0.3, size=(12, 5))
    res = im.kid(x, y, split="test", space=TOY, n_subsets=1, subset_size=12)
    np.testing.assert_allclose(res.value, _mmd2_loops(x, y), rtol=1e-10)
    assert res.std == 0.0


def test_kid_subsets_follow_torch_fidelity_draws():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(50, 4)), rng.normal(loc=0.2, size=(40, 4))
    res = im.kid(x, y, split="train", space=TOY, n_subsets=4, subset_size=10, seed=7)
    draws = np.random.RandomState(7)
    vals = []
    for _ in range(4):
        yi = draws.choice(40, 10, replace=False)  # generated rows first (torch-fidelity input1)
        xi = draws.choice(50, 10, replace=False)
        vals.append(_mmd2_loops(x[xi], y[yi]))
    np.testing.assert_allclose(res.value, np.mean(vals), rtol=1e-10)
    np.testing.assert_allclose(res.std, np.std(vals), rtol=1e-8)
    settings = dict(res.protocol.settings)
    assert settings == {"kid_degree": 3, "kid_seed": 7, "kid_subset_size": 10, "kid_subsets": 4}


def test_kid_near_zero_for_same_distribution_and_positive_for_shift():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    same = im.kid(a, b, split="test", space=TOY, n_subsets=20, subset_size=100)
    shifted = im.kid(a, b + 1.0, split="test", space=TOY, n_subsets=20, subset_size=100)
    assert abs(same.value) < 3 * same.std + 1e-3
    assert shifted.value > 10 * (abs(same.value) + same.std)
    # defaults: 100 subsets of 1000, clipped to the smaller set and recorded
    clipped = im.kid(a[:30], b[:40], split="test", space=TOY, n_subsets=3)
    assert dict(clipped.protocol.settings)["kid_subset_size"] == 30


# ---------------------------------------------------------------------------------------------
# Inception Score
# ---------------------------------------------------------------------------------------------


def _is_loops(logits, splits) -> tuple[float, float]:
    n = len(logits)
    scores = []
    for s in range(splits):
        chunk = logits[s * n // splits : (s + 1) * n // splits]
        probs = [np.exp(z - z.max()) / np.exp(z - z.max()).sum() for z in chunk]
        marginal = np.mean(probs, axis=0)
        kls = [sum(p[c] * math.log(p[c] / marginal[c]) for c in range(len(p))) for p in probs]
        scores.append(math.exp(sum(kls) / len(kls)))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_loops_and_known_values():
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=3.0, size=(60, 7))
    res = im.inception_score(logits, space=TOY, splits=5, shuffle=False)
    mean, std = _is_loops(logits, 5)
    np.testing.assert_allclose([res.value, res.std], [mean, std], rtol=1e-10)
    shuffled = im.inception_score(logits, space=TOY, splits=5, shuffle=True, seed=3)
    perm = np.random.RandomState(3).permutation(60)
    np.testing.assert_allclose(shuffled.value, _is_loops(logits[perm], 5)[0], rtol=1e-10)
    # uninformative classifier -> 1; confident and balanced over C classes -> C
    assert im.inception_score(np.zeros((50, 1008)), space=TOY).value == pytest.approx(1.0)
    confident = 40.0 * np.eye(10)[np.arange(200) % 10]
    res10 = im.inception_score(confident, space=TOY, splits=10, shuffle=False)  # balanced chunks
    assert res10.value == pytest.approx(10.0, abs=1e-6) and res10.std < 1e-9
    assert res10.protocol.n_real == 0 and res10.protocol.split == "none"
    assert dict(res10.protocol.settings)["is_splits"] == 10
    with pytest.raises(ValueError, match="at least 10"):
        im.inception_score(confident[:5], space=TOY)


# ---------------------------------------------------------------------------------------------
# KID and IS against torch-fidelity's own functions on the same features
# ---------------------------------------------------------------------------------------------


def _torch_fidelity_metrics():
    """``torch_fidelity.metric_kid`` / ``metric_isc`` without the package ``__init__``.

    torch-fidelity's ``__init__`` (and ``utils``) import torchvision, which may not load next to
    the installed torch; the two metric modules need only ``helpers`` and ``defaults``, so the
    package and ``utils`` are stubbed while they import.
    """
    import importlib
    import importlib.util
    import sys
    import types

    torch = pytest.importorskip("torch")
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torch-fidelity is not installed (pip install --no-deps torch-fidelity)")
    prefix = "torch_fidelity"
    saved = {k: v for k, v in sys.modules.items() if k == prefix or k.startswith(prefix + ".")}
    stub = types.ModuleType(prefix)
    stub.__path__ = list(spec.submodule_search_locations)
    utils = types.ModuleType(prefix + ".utils")
    for name in (
        "create_feature_extractor",
        "extract_featuresdict_from_input_id_cached",
        "resolve_feature_extractor",
        "resolve_feature_layer_for_metric",
    ):
        setattr(utils, name, None)
    sys.modules[prefix], sys.modules[prefix + ".utils"] = stub, utils
    try:
        kid_mod = importlib.import_module(prefix + ".metric_kid")
        isc_mod = importlib.import_module(prefix + ".metric_isc")
        defaults = importlib.import_module(prefix + ".defaults").DEFAULTS
    finally:
        for k in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
            del sys.modules[k]
        sys.modules.update(saved)
    return torch, kid_mod, isc_mod, defaults


def test_kid_defaults_equal_torch_fidelity_on_the_same_features():
    torch, kid_mod, _, defaults = _torch_fidelity_metrics()
    assert (defaults["kid_subsets"], defaults["kid_subset_size"]) == (100, 1000)
    assert defaults["kid_kernel_poly_degree"] == 3 and defaults["kid_kernel_poly_coef0"] == 1
    assert defaults["kid_kernel_poly_gamma"] is None and defaults["rng_seed"] == 2020
    rng = np.random.default_rng(11)
    real = rng.normal(size=(1100, 16))
    fake = rng.normal(loc=0.1, scale=1.1, size=(1050, 16))
    ours = im.kid(real, fake, split="test", space=TOY)  # all defaults
    ref = kid_mod.kid_features_to_metric(
        torch.from_numpy(fake), torch.from_numpy(real), verbose=False
    )  # torch-fidelity: input1 = generated, input2 = reference; all its defaults
    np.testing.assert_allclose(ours.value, ref["kernel_inception_distance_mean"], rtol=1e-10)
    np.testing.assert_allclose(ours.std, ref["kernel_inception_distance_std"], rtol=1e-8)
    # swapping the inputs changes which rows are drawn: the order matters (3 subsets suffice)
    ours3 = im.kid(real, fake, split="test", space=TOY, n_subsets=3)

    def tf_kid(first, second):
        return kid_mod.kid_features_to_metric(
            torch.from_numpy(first), torch.from_numpy(second), kid_subsets=3, verbose=False
        )["kernel_inception_distance_mean"]

    np.testing.assert_allclose(ours3.value, tf_kid(fake, real), rtol=1e-10)
    assert abs(tf_kid(real, fake) - ours3.value) > 1e-12


def test_inception_score_defaults_equal_torch_fidelity_on_the_same_logits():
    torch, _, isc_mod, defaults = _torch_fidelity_metrics()
    assert defaults["isc_splits"] == 10 and defaults["samples_shuffle"] is True
    logits = np.random.default_rng(12).normal(scale=4.0, size=(1003, 1008))
    ours = im.inception_score(logits, space=TOY)  # all defaults
    ref = isc_mod.isc_features_to_metric(
        torch.from_numpy(logits), defaults["isc_splits"], defaults["samples_shuffle"],
        defaults["rng_seed"],
    )  # fmt: skip
    np.testing.assert_allclose(ours.value, ref["inception_score_mean"], rtol=1e-10)
    np.testing.assert_allclose(ours.std, ref["inception_score_std"], rtol=1e-8)
    unshuffled = isc_mod.isc_features_to_metric(torch.from_numpy(logits), 10, False, 2020)
    assert abs(unshuffled["inception_score_std"] - ours.std) > 1e-9
    assert dict(ours.protocol.settings)["is_shuffle"] is True


# ---------------------------------------------------------------------------------------------
# precision / recall, density / coverage
# ---------------------------------------------------------------------------------------------


def _prdc_loops(real, fake, k_pr, k_dc):
    d_rr, d_ff, d_rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_real_pr = np.sort(d_rr, axis=1)[:, k_pr]  # column 0 is the point itself
    r_fake_pr = np.sort(d_ff, axis=1)[:, k_pr]
    precision = np.mean([any(d_rf[i, j] <= r_real_pr[i] for i in range(len(real)))
                         for j in range(len(fake))])  # fmt: skip
    recall = np.mean([any(d_rf[i, j] <= r_fake_pr[j] for j in range(len(fake)))
                      for i in range(len(real))])  # fmt: skip
    r_real_dc = np.sort(d_rr, axis=1)[:, k_dc]
    density = sum(d_rf[i, j] < r_real_dc[i] for i in range(len(real)) for j in range(len(fake))) / (
        k_dc * len(fake)
    )
    coverage = np.mean([d_rf[i].min() < r_real_dc[i] for i in range(len(real))])
    return precision, recall, density, coverage


@pytest.mark.parametrize("block_elements", [None, 50])
def test_prdc_match_brute_force(monkeypatch, block_elements):
    if block_elements is not None:  # force many small distance blocks
        monkeypatch.setattr(im, "_MAX_BLOCK_ELEMENTS", block_elements)
    rng = np.random.default_rng(8)
    real = rng.normal(size=(60, 3))
    fake = rng.normal(loc=0.4, scale=0.8, size=(45, 3))
    pr = im.precision_recall(real, fake, split="test", space=TOY, k=3)
    dc = im.density_coverage(real, fake, split="test", space=TOY, k=5)
    expected = _prdc_loops(real, fake, 3, 5)
    got = (pr.precision.value, pr.recall.value, dc.density.value, dc.coverage.value)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert dict(pr.precision.protocol.settings) == {"k": 3}
    assert dict(dc.coverage.protocol.settings) == {"k": 5}
    assert pr.recall.protocol.n_real == 60 and pr.recall.protocol.n_fake == 45


def test_prdc_on_toy_gaussians_with_known_answers():
    rng = np.random.default_rng(9)
    real = rng.normal(size=(1000, 2))
    same = rng.normal(size=(1000, 2))
    pr = im.precision_recall(real, same, split="test", space=TOY)
    dc = im.density_coverage(real, same, split="test", space=TOY)
    assert pr.precision.value > 0.95 and pr.recall.value > 0.95
    assert 0.9 < dc.density.value < 1.1  # E[density] = 1 for identical distributions
    assert abs(dc.coverage.value - (1 - 2.0**-5)) < 0.03  # Naeem et al.: 1 - 1/2^k

    far = same + 100.0  # disjoint supports
    pr = im.precision_recall(real, far, split="test", space=TOY)
    dc = im.density_coverage(real, far, split="test", space=TOY)
    assert (pr.precision.value, pr.recall.value, dc.density.value, dc.coverage.value) == (
        0,
        0,
        0,
        0,
    )

    collapsed = 0.3 * same  # mode-collapse signature: high fidelity, low diversity
    pr = im.precision_recall(real, collapsed, split="test", space=TOY)
    assert pr.precision.value > 0.95 and pr.recall.value < 0.6
    with pytest.raises(ValueError, match="more than k"):
        im.precision_recall(real[:3], same, split="test", space=TOY, k=3)
