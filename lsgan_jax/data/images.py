"""Image datasets for LSGAN, one import for the whole image data API (a thin re-export).

The work is split by job:

* :mod:`lsgan_jax.data.catalog` — dataset names → :class:`DatasetSpec` (crop, size, how to
  prepare), :func:`get_spec`, :func:`dataset_table`;
* :mod:`lsgan_jax.data.resize` — PIL-exact bilinear resize and crops (:func:`resize_bilinear`,
  :func:`bilinear_matrix`);
* :mod:`lsgan_jax.data.sources` — TFDS ``data_source`` over ArrayRecord, no TensorFlow
  (:func:`load_source`, :func:`load_images`);
* :mod:`lsgan_jax.data.pipeline` — the checkpointable grain iterator (:func:`make_iterator`,
  :func:`local_batch_size`, :func:`synthetic_batches`);
* :mod:`lsgan_jax.data.prepare` — preparing datasets once (:func:`prepare`, and the CLI
  ``python -m lsgan_jax.data.prepare``);
* :mod:`lsgan_jax.data.builders` / :mod:`lsgan_jax.data.times_fonts` — the offline TFDS builders.

Importing this module is cheap: TFDS and grain load on first use (the ``[data]`` extra).
"""

from lsgan_jax.data.catalog import (
    CONDITIONAL_DATASET,
    DATASETS,
    DEFAULT_FOLDER_SIZE,
    DatasetNotPreparedError,
    DatasetSpec,
    MissingDependencyError,
    dataset_table,
    get_spec,
)
from lsgan_jax.data.pipeline import (
    AUTO_CACHE_BYTES,
    DEFAULT_NUM_THREADS,
    local_batch_size,
    make_iterator,
    synthetic_batches,
)
from lsgan_jax.data.prepare import prepare
from lsgan_jax.data.resize import bilinear_matrix, resize_bilinear
from lsgan_jax.data.sources import (
    ImageDatasetInfo,
    ImageSource,
    default_data_dir,
    load_images,
    load_source,
)

__all__ = [
    "AUTO_CACHE_BYTES",
    "CONDITIONAL_DATASET",
    "DATASETS",
    "DEFAULT_FOLDER_SIZE",
    "DEFAULT_NUM_THREADS",
    "DatasetNotPreparedError",
    "DatasetSpec",
    "ImageDatasetInfo",
    "ImageSource",
    "MissingDependencyError",
    "bilinear_matrix",
    "dataset_table",
    "default_data_dir",
    "get_spec",
    "load_images",
    "load_source",
    "local_batch_size",
    "make_iterator",
    "prepare",
    "resize_bilinear",
    "synthetic_batches",
]
