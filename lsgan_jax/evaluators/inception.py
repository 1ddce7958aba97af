"""In-loop FID / KID / IS of an image GAN against its dataset, with the protocol beside the numbers.

    evaluator = make_inception_evaluator(config)            # pytorch-fid weights (sha256-checked)
    image_trainer.train(config, workdir, evaluators={"inception": evaluator})

The image experiments build it from their config through the evaluator registry
(``--config.evals="('inception',)"``; :func:`lsgan_jax.evaluators.make_evaluators`), reading
``config.num_eval_samples``, ``config.eval_seed`` and the ``config.fid`` block. At every
evaluation the generator draws ``num_eval_samples`` images from a fixed latent batch
(``eval_seed``; the same z each time, so curves compare steps, not latent draws), and

* **FID** = Fréchet distance of pool3 features against the cached statistics of ``num_real``
  real images of ``split`` (:func:`image_metrics.fid_from_stats`);
* **KID** = unbiased polynomial-kernel MMD² against ``kid_real`` cached real features
  (:func:`image_metrics.kid`, subsets of ``kid_subset_size``);
* **IS** = Inception Score of the same samples (10 splits, ``logits_unbiased``).

Real images go through the training pipeline's own preprocessing (crop, bilinear resize to the
experiment resolution, [−1, 1]) before the same pytorch-fid resize to 299 as the fakes, so real and
generated images are compared at the resolution the GAN models. Reference statistics are computed
once per (dataset, resolution, split, n_real, weights) and cached under
``<cache>/fid_stats/`` (:func:`image_metrics.reference_stats_path`).

Why these defaults: 10,000 fakes against 10,000 train images (the paper-era protocol most GAN
code reports; StudioGAN and MMagic use 50k, which ``--config.num_eval_samples=50000
--config.fid.num_real=50000`` gives) -- FID is biased upward at small n, so compare numbers only
at equal n (Heusel et al. 2017; Chong & Forsyth, "Effectively Unbiased FID and Inception Score
and where to find them", CVPR 2020). ``weights="random"`` runs the whole path with
random Inception weights (tests and smoke runs; the protocol says so and the numbers mean
nothing).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from lsgan_jax.errors import ConfigError
from lsgan_jax.evaluators import sampling
from lsgan_jax.metrics import fid_weights, image_metrics
from lsgan_jax.metrics.inception import InceptionFeatureExtractor

#: Generated images per evaluation and the seed of their latents when a config does not set
#: ``num_eval_samples`` / ``eval_seed``.
DEFAULT_NUM_EVAL_SAMPLES = 10_000
DEFAULT_EVAL_SEED = 0

#: Former ``config.fid`` fields and their config-wide names.
RENAMED = {"num_fake": "num_eval_samples", "seed": "eval_seed"}

#: ``config.fid`` defaults (merged under the experiment's own values).
DEFAULTS = {
    "num_real": 10_000,
    "split": "train",
    "weights": "",  # "": cache / torch.hub folder / download; a path; or "random" (tests only)
    "batch_size": 100,
    "kid_real": 2_000,
    "kid_subset_size": 1_000,
    "kid_subsets": 100,
    "is_splits": 10,
    "cache_dir": "",
}


def _kid_path(stats_path: Any) -> Any:
    """Real features kept for KID, next to the cached statistics."""
    return stats_path.with_name(stats_path.stem + "_kid.npz")


def _extractor(weights: str, batch_size: int) -> InceptionFeatureExtractor:
    if weights == "random":
        return InceptionFeatureExtractor.random(0, batch_size=batch_size)
    try:
        return InceptionFeatureExtractor.pytorch_fid(weights or None, batch_size=batch_size)
    except fid_weights.WeightsUnavailableError as e:  # a user fix (fetch the file), not a crash
        raise ConfigError(f"config.fid.weights: {e}") from e


class InceptionEvaluator:
    """``evaluator(generate, step) -> {"fid", "kid", "kid_std", "is", "is_std"}``.

    Args:
      extractor: pytorch-fid feature extractor (its ``space`` names weights and resize).
      real_images: ``() -> (N, S, S, C)`` float images in [−1, 1]; called only when the reference
        statistics are not cached yet.
      reference_name: Cache key of the real set (dataset, resolution, n).
      split: Split of the real set (reported).
      num_fake: Generated images per evaluation.
      latents: ``(num_fake_padded, latent_dim)`` fixed latent batch.
      kid_real: Real features kept for KID.
      kid_subset_size, kid_subsets: KID subsets (torch-fidelity's defaults: 1000 × 100).
      is_splits: IS chunks.
      cache_dir: Base cache directory (default ``fid_weights.default_cache_dir()``).
      batch: Generator batch per call.
    """

    def __init__(
        self,
        extractor: InceptionFeatureExtractor,
        real_images: Callable[[], np.ndarray],
        *,
        reference_name: str,
        split: str,
        num_fake: int,
        latents: np.ndarray,
        kid_real: int = 2_000,
        kid_subset_size: int = 1_000,
        kid_subsets: int = 100,
        is_splits: int = 10,
        cache_dir: str | os.PathLike[str] | None = None,
        batch: int = 100,
    ):
        if num_fake < max(2, is_splits):
            raise ValueError(f"num_eval_samples must be >= max(2, is_splits), got {num_fake}.")
        self.extractor = extractor
        self.space = extractor.space
        self.split = split
        self.num_fake = int(num_fake)
        self.batch = int(batch)
        self.kid_subset_size = int(kid_subset_size)
        self.kid_subsets = int(kid_subsets)
        self.is_splits = int(is_splits)
        self._z = latents
        self.reference, self.real_kid = self._reference(
            real_images, reference_name, split, int(kid_real), cache_dir
        )

    def _reference(self, real_images, name, split, kid_real, cache_dir):
        try:
            ref = image_metrics.load_reference_stats(
                name, split, space=self.space, cache_dir=cache_dir
            )
            path = image_metrics.reference_stats_path(
                name, split, space=self.space, cache_dir=cache_dir
            )
            with np.load(_kid_path(path)) as z:
                return ref, z["features"]
        except FileNotFoundError:
            pass
        images = real_images()
        feats = self.extractor(images, outputs=("pool",))["pool"]
        path = image_metrics.cache_reference_stats(
            name, split, feats, space=self.space, cache_dir=cache_dir
        )
        pick = np.random.RandomState(0).permutation(len(feats))[:kid_real]
        real_kid = np.asarray(feats[np.sort(pick)], np.float32)
        np.savez(_kid_path(path), features=real_kid)
        ref = image_metrics.load_reference_stats(name, split, space=self.space, cache_dir=cache_dir)
        return ref, real_kid

    def sample(self, generate: Callable[..., Any]) -> np.ndarray:
        """The evaluation samples ``(num_fake, S, S, C)`` in [−1, 1]."""
        return sampling.generate_images(
            generate, self._z, num_samples=self.num_fake, batch=self.batch
        )

    def measure(self, samples: np.ndarray) -> list[image_metrics.MetricResult]:
        """FID, KID and IS of ``samples`` (each a ``MetricResult`` with its protocol)."""
        feats = self.extractor(samples, outputs=("pool", "logits_unbiased"))
        fid = image_metrics.fid_from_stats(self.reference, feats["pool"], space=self.space)
        kid = image_metrics.kid(
            self.real_kid,
            feats["pool"],
            split=self.split,
            space=self.space,
            n_subsets=self.kid_subsets,
            subset_size=self.kid_subset_size,
        )
        inception = image_metrics.inception_score(
            feats["logits_unbiased"], space=self.space, splits=self.is_splits
        )
        return [fid, kid, inception]

    def __call__(self, generate: Callable[..., Any], step: int) -> dict[str, float]:
        del step
        out: dict[str, float] = {}
        for result in self.measure(self.sample(generate)):
            out[result.name] = float(result.value)
            if result.std is not None:
                out[f"{result.name}_std"] = float(result.std)
        return out

    def protocol(self) -> dict[str, Any]:
        """How the numbers were measured (goes into ``summary.json``)."""
        return {
            "reference": self.reference.name,
            "n_real": self.reference.n,
            "n_fake": self.num_fake,
            "split": self.split,
            "resize": self.space.resize,
            "weights": self.space.weights,
            "features": self.space.features,
            "kid": {
                "n_real": len(self.real_kid),
                "subset_size": min(self.kid_subset_size, len(self.real_kid), self.num_fake),
                "subsets": self.kid_subsets,
                "kernel": "(x·y/d + 1)^3",
            },
            "inception_score": {"splits": self.is_splits, "logits": "logits_unbiased"},
            "latents": "fixed batch (eval_seed)",
        }


def make_inception_evaluator(
    config: Any, *, extractor: InceptionFeatureExtractor | None = None
) -> InceptionEvaluator:
    """The evaluator of an image experiment config (``config.data``, ``config.fid``).

    Builds (or reuses) the extractor first, so missing weights fail before any training with
    :class:`~lsgan_jax.metrics.fid_weights.WeightsUnavailableError` (which says where to put the
    file on an offline machine).
    """
    from lsgan_jax.data import images  # noqa: PLC0415
    from lsgan_jax.models.latent import latent_of  # noqa: PLC0415

    fid = {**DEFAULTS, **dict(config.get("fid", {}))}
    renamed = {k: v for k, v in RENAMED.items() if k in fid}
    if renamed:
        raise ConfigError(
            "; ".join(f"config.fid.{k} is now config.{v}" for k, v in renamed.items())
            + " (one name for every evaluator)."
        )
    unknown = sorted(set(fid) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"Unknown config.fid fields {unknown}; known: {sorted(DEFAULTS)}.")
    if config.model.get("conditional", False):
        raise ValueError(
            "The inception evaluator samples unconditionally; conditional models are not "
            "supported yet (use the sample grids)."
        )
    name, size = config.data.name, int(config.data.image_size)
    data_dir = config.data.get("data_dir", "") or None
    extractor = extractor or _extractor(str(fid["weights"]), int(fid["batch_size"]))
    latent_dim, latent_dist = latent_of(config)
    batch = int(fid["batch_size"])
    num_fake = int(config.get("num_eval_samples", DEFAULT_NUM_EVAL_SAMPLES))
    z = sampling.fixed_latents(
        seed=int(config.get("eval_seed", DEFAULT_EVAL_SEED)), num_samples=num_fake, batch=batch,
        latent_dim=latent_dim, latent_dist=latent_dist,
    )  # fmt: skip

    def real_images() -> np.ndarray:
        limit = int(fid["num_real"])
        return images.load_images(name, size=size, split=fid["split"], data_dir=data_dir,
                                  limit=limit)[0]  # fmt: skip

    return InceptionEvaluator(
        extractor,
        real_images,
        reference_name=f"{name}_{size}px_n{int(fid['num_real'])}",
        split=str(fid["split"]),
        num_fake=num_fake,
        latents=z,
        kid_real=int(fid["kid_real"]),
        kid_subset_size=int(fid["kid_subset_size"]),
        kid_subsets=int(fid["kid_subsets"]),
        is_splits=int(fid["is_splits"]),
        cache_dir=fid["cache_dir"] or None,
        batch=batch,
    )
