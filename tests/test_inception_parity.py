"""Parity of ``lsgan_jax.metrics.inception`` with a published PyTorch FID Inception; weights IO.

Reference: torch-fidelity 0.4.0, ``torch_fidelity.feature_extractor_inceptionv3``
------------------------------------------------------------------------------------
Why this one (measured on the 2-core dev machine, torch 2.13.0+cpu from the local cache):

* pytorch-fid itself builds ``fid_inception_v3`` on ``torchvision.models.inception.Inception3``.
  The torchvision that pip pairs with torch 2.13.0 (0.28.0, 7.7 MB wheel) does not import next
  to the CPU wheel (``RuntimeError: operator torchvision::nms does not exist``), so pytorch-fid
  cannot run here.
* torch-fidelity's ``FeatureExtractorInceptionV3`` is a plain-PyTorch port of the same network
  ("adapted from pytorch-fid"): the same FID blocks (``InceptionA/C`` and ``InceptionE_1`` with
  ``count_include_pad=False`` average pools, ``InceptionE_2`` with the 3x3/1 max pool), BN eps
  1e-3, the same state-dict names, and its released weights
  (``weights-inception-2015-12-05-6726825d.pth``) are byte-identical to pytorch-fid's
  (same sha256). Its Inception module imports only torch. The package ``__init__`` imports
  torchvision (for its CLIP/VGG/DINOv2 extractors), so we load the Inception submodule without
  running that ``__init__`` (:func:`_import_torch_fidelity_inception`). That works whether or
  not pip also installed torchvision: ``pip install .[test]`` pulls torchvision 0.28.0 as a
  torch-fidelity dependency, which nothing here imports (tested both ways); ``pip install
  --no-deps torch-fidelity==0.4.0`` avoids it (1.8 s, 540 kB; torch 2.13.0 itself: 39 s, +0.9 GB).

The reference is built with seeded random weights written as a ``.pth`` in the legacy
``torch.save`` format (torch < 1.6, current when pytorch-fid made its file), loaded strictly by
torch-fidelity (so our key names and shapes are checked by PyTorch) and converted for Flax by
:func:`lsgan_jax.metrics.fid_weights.load_pytorch_fid_weights` -- the same code path as the
published weights. Two comparisons:

1. torch-fidelity's own ``forward`` (uint8 299x299 input, ``(x - 128) / 128``) against our trunk
   on the same tensor: pool3 features, ``logits`` and ``logits_unbiased``.
2. pytorch-fid's pipeline (32x32 input, ``F.interpolate(bilinear, align_corners=False)`` to 299,
   ``2x - 1``, then the reference blocks in pytorch-fid's ``InceptionV3`` block order) against our
   public extractor on [-1, 1] images.

No network access: the published file is never downloaded in tests (there is none offline).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pickle
import shutil
import sys
import types
from collections import OrderedDict
from pathlib import Path

import jax
import numpy as np
import pytest

from lsgan_jax.metrics import fid_weights
from lsgan_jax.metrics import image_metrics as im
from lsgan_jax.metrics import inception as inc

TOL = 1e-4  # max abs, float32 on both sides


def _missing(what: str) -> None:
    msg = f"{what} is required for the Inception parity test (pip install -e '.[test]')"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def torch():
    try:
        import torch as _torch
    except ImportError:
        _missing("torch==2.13.0")
    return _torch


def _import_torch_fidelity_inception():
    """Imports ``torch_fidelity.feature_extractor_inceptionv3`` without the package ``__init__``."""
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None or not spec.submodule_search_locations:
        return None
    prefix = "torch_fidelity"
    saved = {k: v for k, v in sys.modules.items() if k == prefix or k.startswith(prefix + ".")}
    stub = types.ModuleType(prefix)
    stub.__path__ = list(spec.submodule_search_locations)
    sys.modules[prefix] = stub
    try:
        return importlib.import_module(prefix + ".feature_extractor_inceptionv3")
    finally:
        for k in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
            del sys.modules[k]
        sys.modules.update(saved)


def _flax_to_torch_state_dict(torch, params: dict[str, np.ndarray]) -> OrderedDict:
    """Inverse of ``convert_state_dict``: only used to *write* random reference weights."""
    bn = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
    sd = OrderedDict()
    for name, value in params.items():
        parts = name.split("/")
        if parts == ["fc", "kernel"]:
            sd["fc.weight"] = value.T
        elif parts == ["fc", "bias"]:
            sd["fc.bias"] = value
        elif parts[-1] == "kernel":
            sd[".".join(parts[:-1]) + ".weight"] = value.transpose(3, 2, 0, 1)
        else:
            sd[".".join(parts[:-1]) + "." + bn[parts[-1]]] = value
            if parts[-1] == "var":
                sd[".".join(parts[:-1]) + ".num_batches_tracked"] = np.array(0, dtype=np.int64)
    return OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v))) for k, v in sd.items())


def _build_reference(torch, tmp: Path):
    """(torch-fidelity model, our extractor) with identical random weights."""
    tfi = _import_torch_fidelity_inception()
    if tfi is None:
        _missing("torch-fidelity==0.4.0 (installed with --no-deps)")
    path = tmp / "random_inception.pth"
    state = _flax_to_torch_state_dict(torch, inc.random_params(seed=1234))
    torch.save(state, path, _use_new_zipfile_serialization=False)
    ref = tfi.FeatureExtractorInceptionV3(
        "inception-v3-compat",
        ["2048", "logits_unbiased", "logits"],
        feature_extractor_weights_path=str(path),
    )
    weights = fid_weights.load_pytorch_fid_weights(path, expected_sha256=None, cache_dir=tmp)
    model = inc.InceptionV3.from_params(weights.params)
    extractor = inc.InceptionFeatureExtractor(model, weights=inc.WEIGHTS_RANDOM, batch_size=2)
    return ref, extractor


def _reference_pytorch_fid_trunk(torch, ref, x):
    """pytorch-fid ``InceptionV3`` blocks 0-3 + fc, on torch-fidelity's modules."""
    with torch.no_grad():
        x = ref.MaxPool_1(ref.Conv2d_2b_3x3(ref.Conv2d_2a_3x3(ref.Conv2d_1a_3x3(x))))
        x = ref.MaxPool_2(ref.Conv2d_4a_3x3(ref.Conv2d_3b_1x1(x)))
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(ref, "Mixed_" + name)(x)
        pool = torch.flatten(ref.AvgPool(x), 1)
        return pool.numpy(), ref.fc(pool).numpy()


def _max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ---------------------------------------------------------------------------------------------
# network parity
# ---------------------------------------------------------------------------------------------


def test_network_parity_and_extractor(torch, tmp_path):
    """One test, so the reference and the compiled trunk are built once (not per xdist worker)."""
    ref, extractor = _build_reference(torch, tmp_path)
    _check_trunk_matches_torch_fidelity_forward(torch, ref, extractor)
    _check_pytorch_fid_pipeline_end_to_end(torch, ref, extractor)
    _check_extractor_batching_iterators_and_grayscale(extractor)


def _check_trunk_matches_torch_fidelity_forward(torch, ref, extractor):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 299, 299, 3), dtype=np.uint8)
    with torch.no_grad():
        pool_t, unbiased_t, logits_t = ref(torch.from_numpy(images.transpose(0, 3, 1, 2)).clone())
    x = (images.astype(np.float32) - 128.0) / 128.0  # torch-fidelity's normalisation
    ours = extractor.forward_299(x)
    d_pool = _max_abs(ours["pool"], pool_t.numpy())
    d_logits = _max_abs(ours["logits"], logits_t.numpy())
    d_unbiased = _max_abs(ours["logits_unbiased"], unbiased_t.numpy())
    print(
        f"torch-fidelity forward: max|Δpool| {d_pool:.2e}, max|Δlogits| {d_logits:.2e}, "
        f"max|Δlogits_unbiased| {d_unbiased:.2e}, max|pool| {np.abs(pool_t.numpy()).max():.2f}"
    )
    assert float(np.abs(pool_t.numpy()).mean()) > 0.1  # the random weights keep activations O(1)
    assert d_pool <= TOL
    assert d_logits <= TOL
    assert d_unbiased <= TOL


def _check_pytorch_fid_pipeline_end_to_end(torch, ref, extractor):
    rng = np.random.default_rng(1)
    images = np.tanh(rng.normal(size=(2, 32, 32, 3))).astype(np.float32)  # generator range
    ours = extractor(images, outputs=inc.OUTPUT_NAMES)
    x01 = torch.from_numpy((images.transpose(0, 3, 1, 2) + 1.0) / 2.0)  # pytorch-fid's [0, 1]
    x = torch.nn.functional.interpolate(x01, size=(299, 299), mode="bilinear", align_corners=False)
    pool_t, logits_t = _reference_pytorch_fid_trunk(torch, ref, 2.0 * x - 1.0)
    d_pool = _max_abs(ours["pool"], pool_t)
    d_logits = _max_abs(ours["logits"], logits_t)
    print(f"pytorch-fid pipeline 32->299: max|Δpool| {d_pool:.2e}, max|Δlogits| {d_logits:.2e}")
    assert ours["pool"].shape == (2, inc.POOL_DIM) and ours["logits"].shape == (2, inc.NUM_LOGITS)
    assert d_pool <= TOL
    assert d_logits <= TOL


@pytest.mark.parametrize(
    "in_hw, out_hw",
    [
        ((32, 32), (299, 299)),  # CIFAR
        ((28, 28), (299, 299)),  # MNIST
        ((8, 8), (299, 299)),
        ((299, 299), (299, 299)),  # identity
        ((512, 512), (299, 299)),  # downsampling: no antialias in PyTorch
        ((300, 64), (299, 299)),
        ((17, 40), (5, 13)),
    ],
)
def test_resize_matches_torch_interpolate(torch, in_hw, out_hw):
    rng = np.random.default_rng(in_hw[0] * 1000 + in_hw[1])
    x = rng.uniform(-1.0, 1.0, size=(2, *in_hw, 3)).astype(np.float32)
    ours = np.asarray(jax.jit(lambda a: inc.resize_bilinear(a, out_hw))(x))
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x.transpose(0, 3, 1, 2)), size=out_hw, mode="bilinear", align_corners=False
    )
    assert ours.shape == (2, *out_hw, 3)
    assert _max_abs(ours, ref.numpy().transpose(0, 2, 3, 1)) <= 2e-6
    if in_hw == out_hw:
        np.testing.assert_array_equal(ours, x)


@pytest.mark.parametrize(
    "n_in, n_out", [(8, 299), (28, 299), (32, 299), (64, 299), (512, 299), (17, 5)]
)
def test_resize_weights_equal_torch_bit_for_bit(torch, n_in, n_out):
    # interpolating the identity along H returns PyTorch's weight matrix exactly
    eye = torch.eye(n_in)[None, None]
    weights = torch.nn.functional.interpolate(
        eye, size=(n_out, n_in), mode="bilinear", align_corners=False
    )[0, 0].numpy()
    np.testing.assert_array_equal(inc.bilinear_resize_matrix(n_in, n_out), weights)


def test_jax_image_resize_is_not_pytorch_bilinear_when_downsampling(torch):
    """Why resize_bilinear exists: jax.image.resize antialiases when shrinking."""
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, 512, 512, 3)).astype(np.float32)
    ref = (
        torch.nn.functional.interpolate(
            torch.from_numpy(x.transpose(0, 3, 1, 2)),
            size=(299, 299),
            mode="bilinear",
            align_corners=False,
        )
        .numpy()
        .transpose(0, 2, 3, 1)
    )
    jax_default = np.asarray(jax.image.resize(x, (1, 299, 299, 3), "bilinear"))
    assert _max_abs(jax_default, ref) > 0.1
    assert _max_abs(inc.resize_bilinear(x, 299), ref) <= 2e-6


# ---------------------------------------------------------------------------------------------
# extractor behaviour (part of test_network_parity_and_extractor: reuses the compiled trunk)
# ---------------------------------------------------------------------------------------------


def _check_extractor_batching_iterators_and_grayscale(extractor):
    assert extractor.space == im.FeatureSpace(
        weights=im.WEIGHTS_RANDOM, resize=im.RESIZE_PYTORCH_FID
    )
    x = np.tanh(np.random.default_rng(2).normal(size=(3, 16, 16, 3))).astype(np.float32)
    full = extractor(x)["pool"]  # a batch of 2 + a zero-padded batch of 1
    assert full.shape == (3, inc.POOL_DIM)
    np.testing.assert_allclose(extractor(iter([x[:1], x[1:]]))["pool"], full, atol=1e-5)
    np.testing.assert_allclose(extractor([x[0], x[1], x[2]])["pool"], full, atol=1e-5)
    gray = x[:1, ..., :1]
    np.testing.assert_allclose(
        extractor(gray)["pool"], extractor(np.repeat(gray, 3, axis=-1))["pool"], atol=1e-6
    )
    assert extractor(np.zeros((0, 16, 16, 3), np.float32))["pool"].shape == (0, inc.POOL_DIM)
    with pytest.raises(ValueError, match="value_range"):
        extractor(x * 100)
    with pytest.raises(ValueError, match="NCHW"):
        extractor(x.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="unknown outputs"):
        extractor(x, outputs=("pool3",))


def test_input_conversion_uint8_and_value_ranges():
    u8 = np.random.default_rng(3).integers(0, 256, size=(2, 5, 5, 3), dtype=np.uint8)
    expected = 2.0 * (u8 / 255.0) - 1.0  # pytorch-fid: ToTensor (u / 255), then 2x - 1
    np.testing.assert_allclose(inc._to_nhwc_batch(u8, (-1.0, 1.0)), expected, atol=1e-6)
    np.testing.assert_allclose(inc._to_nhwc_batch(u8 / 255.0, (0.0, 1.0)), expected, atol=1e-6)
    f255 = u8.astype(np.float32)
    np.testing.assert_allclose(inc._to_nhwc_batch(f255, (0.0, 255.0)), expected, atol=1e-6)
    assert inc._to_nhwc_batch(u8[0, ..., :1], (-1.0, 1.0)).shape == (1, 5, 5, 3)
    with pytest.raises(TypeError, match="uint8 or float"):
        inc._to_nhwc_batch(u8.astype(np.int32), (-1.0, 1.0))


# ---------------------------------------------------------------------------------------------
# weights file: reader, converter, sha256, cache, offline behaviour
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zip_format", [False, True])
def test_reader_matches_torch_load(torch, tmp_path, zip_format):
    g = torch.Generator().manual_seed(0)
    sd = OrderedDict(
        [
            ("a.conv.weight", torch.randn(4, 3, 3, 3, generator=g)),
            ("a.bn.num_batches_tracked", torch.tensor(7, dtype=torch.int64)),
            ("b.half", torch.randn(5, generator=g).half()),
            ("c.double", torch.randn(2, 3, generator=g, dtype=torch.float64)),
            ("d.transposed", torch.randn(3, 4, generator=g).t()),  # non-contiguous view
            ("e.scalar", torch.tensor(1.5)),
        ]
    )
    shared = torch.randn(10, generator=g)
    sd["f.view"] = shared[2:7]  # storage offset into a shared storage
    sd["g.full"] = shared
    path = tmp_path / "sd.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
    ours = fid_weights.read_torch_state_dict(path)
    assert list(ours) == list(sd)
    for k, v in torch.load(path, weights_only=True).items():
        assert ours[k].dtype == v.numpy().dtype, k
        np.testing.assert_array_equal(ours[k], v.numpy(), err_msg=k)


def test_reader_refuses_code_execution(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for obj in (fid_weights._LEGACY_MAGIC, fid_weights._LEGACY_PROTOCOL, {}):
            pickle.dump(obj, f)
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        fid_weights.read_torch_state_dict(path)


def test_published_weights_constants():
    # torch.hub naming convention: the 8 hex digits in the file name are the sha256 prefix.
    stem_hash = fid_weights.PYTORCH_FID_WEIGHTS_FILENAME.rsplit("-", 1)[1].split(".")[0]
    assert fid_weights.PYTORCH_FID_WEIGHTS_SHA256.startswith(stem_hash)
    assert len(fid_weights.PYTORCH_FID_WEIGHTS_SHA256) == 64
    assert fid_weights.PYTORCH_FID_WEIGHTS_URL.endswith(fid_weights.PYTORCH_FID_WEIGHTS_FILENAME)
    tag = fid_weights.weights_tag(fid_weights.PYTORCH_FID_WEIGHTS_SHA256)
    assert tag.startswith("pt_inception-2015-12-05 (sha256 6726825d")


def test_converter_and_loader_reject_wrong_files():
    params = inc.random_params(0)
    with pytest.raises(ValueError, match="AuxLogits"):
        fid_weights.convert_state_dict({"AuxLogits.fc.weight": np.zeros((1000, 768))})
    missing = dict(params)
    del missing["Mixed_7c/branch_pool/bn/var"]
    with pytest.raises(ValueError, match="missing"):
        inc.InceptionV3.from_params(missing)
    wrong = dict(params)
    wrong["fc/kernel"] = wrong["fc/kernel"].T
    with pytest.raises(ValueError, match="shape"):
        inc.InceptionV3.from_params(wrong)


def test_converter_layout(torch, tmp_path):
    g = torch.Generator().manual_seed(1)
    sd = OrderedDict(
        [
            ("Mixed_6b.branch7x7_2.conv.weight", torch.randn(5, 4, 1, 7, generator=g)),
            ("Mixed_6b.branch7x7_2.bn.weight", torch.rand(5, generator=g)),
            ("Mixed_6b.branch7x7_2.bn.bias", torch.randn(5, generator=g)),
            ("Mixed_6b.branch7x7_2.bn.running_mean", torch.randn(5, generator=g)),
            ("Mixed_6b.branch7x7_2.bn.running_var", torch.rand(5, generator=g)),
            ("Mixed_6b.branch7x7_2.bn.num_batches_tracked", torch.tensor(0)),
            ("fc.weight", torch.randn(6, 4, generator=g)),
            ("fc.bias", torch.randn(6, generator=g)),
        ]
    )
    out = fid_weights.convert_state_dict(sd)
    base = "Mixed_6b/branch7x7_2/"
    assert sorted(out) == sorted(
        [base + n for n in ("conv/kernel", "bn/scale", "bn/bias", "bn/mean", "bn/var")]
        + ["fc/kernel", "fc/bias"]
    )
    # torch conv weight (O, I, kh, kw) -> Flax (kh, kw, I, O): a 1x7 kernel stays 1x7
    w = sd["Mixed_6b.branch7x7_2.conv.weight"].numpy()
    assert out[base + "conv/kernel"].shape == (1, 7, 4, 5)
    assert out[base + "conv/kernel"][0, 3, 2, 1] == w[1, 2, 0, 3]
    np.testing.assert_array_equal(
        out[base + "bn/var"], sd[base.replace("/", ".") + "bn.running_var"]
    )
    np.testing.assert_array_equal(out["fc/kernel"], sd["fc.weight"].numpy().T)


def test_load_weights_sha256_cache_download_and_offline(torch, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # never see a real hub cache
    src = tmp_path / "small.pth"
    g = torch.Generator().manual_seed(2)
    torch.save(
        OrderedDict([("fc.weight", torch.randn(3, 2, generator=g)), ("fc.bias", torch.zeros(3))]),
        src,
        _use_new_zipfile_serialization=False,
    )
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    cache = tmp_path / "cache"

    # a file that is not the published one is refused unless the check is disabled
    with pytest.raises(ValueError, match="expected_sha256=None"):
        fid_weights.load_pytorch_fid_weights(src, cache_dir=cache)
    first = fid_weights.load_pytorch_fid_weights(src, expected_sha256=sha, cache_dir=cache)
    assert first.sha256 == sha and first.tag.startswith("custom inception (sha256 ")
    npz = cache / f"inception_fid_{sha[:16]}.npz"
    assert npz.is_file()
    # path=None: served from the converted .npz cache, no .pth needed
    again = fid_weights.load_pytorch_fid_weights(None, expected_sha256=sha, cache_dir=cache)
    assert again.source == str(npz)
    for k, v in first.params.items():
        np.testing.assert_array_equal(again.params[k], v)

    # nothing local, download disabled or failing (offline): a clear error with instructions
    empty = tmp_path / "empty"
    with pytest.raises(fid_weights.WeightsUnavailableError, match="curl -L") as err:
        fid_weights.load_pytorch_fid_weights(None, cache_dir=empty, download=False)
    assert fid_weights.PYTORCH_FID_WEIGHTS_SHA256 in str(err.value)
    assert fid_weights.PYTORCH_FID_WEIGHTS_URL in str(err.value)
    bad_url = (tmp_path / "nowhere" / "x.pth").as_uri()
    with pytest.raises(fid_weights.WeightsUnavailableError, match="download failed"):
        fid_weights.load_pytorch_fid_weights(None, cache_dir=empty, url=bad_url)
    assert not any(empty.glob("*.pth"))

    # a download (here from a file:// URL) is verified before it is kept
    with pytest.raises(ValueError, match="sha256"):
        fid_weights.load_pytorch_fid_weights(None, cache_dir=empty, url=src.as_uri())
    assert not any(empty.glob("*"))
    got = fid_weights.load_pytorch_fid_weights(
        None, expected_sha256=sha, cache_dir=tmp_path / "dl", url=src.as_uri()
    )
    assert (tmp_path / "dl" / fid_weights.PYTORCH_FID_WEIGHTS_FILENAME).is_file()
    assert got.sha256 == sha

    # pytorch-fid users already have the file in torch.hub's cache: it is found there
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    shutil.copy(src, hub / fid_weights.PYTORCH_FID_WEIGHTS_FILENAME)
    assert fid_weights.find_pytorch_fid_weights(tmp_path / "other") == (
        hub / fid_weights.PYTORCH_FID_WEIGHTS_FILENAME
    )
    found = fid_weights.load_pytorch_fid_weights(
        None, expected_sha256=sha, cache_dir=tmp_path / "other"
    )
    assert found.source == str(hub / fid_weights.PYTORCH_FID_WEIGHTS_FILENAME)
    assert Path(found.source).name == fid_weights.PYTORCH_FID_WEIGHTS_FILENAME
