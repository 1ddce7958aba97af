"""Prepare an image dataset once: ``python -m lsgan_jax.data.prepare NAME [--data_dir DIR]``.

Catalog datasets (mnist, cifar10, celeb_a, lsun/…) need TensorFlow and network for this one step
(``pip install -e '.[tf]'``; LSUN ``pip install -e '.[lsun]'``); they are written as ArrayRecord
so that training reads them without TensorFlow. ``digits``, the Times sets and ``folder:<path>``
prepare offline. ``--list`` prints the catalog.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from lsgan_jax.data import sources
from lsgan_jax.data.catalog import (
    LSUN_INSTALL,
    PREPARE_CMD,
    TF_INSTALL,
    DatasetNotPreparedError,
    DatasetSpec,
    MissingDependencyError,
    dataset_table,
    get_spec,
)
from lsgan_jax.data.sources import default_data_dir

__all__ = ["main", "prepare"]


def _missing_modules(spec: DatasetSpec) -> list[tuple[str, str]]:
    """(module, pip name) pairs that preparing ``spec`` needs but are not installed."""
    needed = [("tensorflow", "tensorflow-cpu"), ("importlib_resources", "importlib-resources")]
    if spec.tfds_name.startswith("lsun/"):
        needed.append(("tensorflow_io", "tensorflow-io"))
    return [(mod, pip) for mod, pip in needed if importlib.util.find_spec(mod) is None]


def prepare(name: str, data_dir: str | None = None, *, image_size: int | None = None) -> str:
    """Downloads and prepares ``name`` as ArrayRecord in ``data_dir`` (once per dataset).

    ``digits`` and ``folder:<path>`` prepare offline without TensorFlow. Catalog datasets call
    ``tfds.builder(name, data_dir=..., file_format="array_record").download_and_prepare()``,
    which needs TensorFlow (the optional extra ``pip install -e '.[tf]'``; LSUN ``'.[lsun]'``) and network. Training
    afterwards reads the files without TensorFlow.

    Args:
      name: a key of :data:`DATASETS` or ``folder:<path>``.
      data_dir: TFDS data directory (see :func:`default_data_dir`).
      image_size: only for ``folder:`` datasets (default 64).

    Returns:
      The prepared dataset's directory.

    Raises:
      MissingDependencyError: TensorFlow (or another preparing-only package) is not installed;
        the message says what to ``pip install``.
      DatasetNotPreparedError: already prepared there, but not as ArrayRecord.
    """
    spec = get_spec(name)
    data_dir = default_data_dir(data_dir)
    if spec.offline:
        builder = sources.get_builder(
            name, spec, data_dir, image_size=image_size, auto_prepare=True
        )
        return os.fspath(builder.data_path)
    missing = _missing_modules(spec)
    if missing:
        mods = ", ".join(mod for mod, _ in missing)
        cmd = LSUN_INSTALL if spec.tfds_name.startswith("lsun/") else TF_INSTALL
        raise MissingDependencyError(
            f"Preparing {name!r} needs {mods}, which {'is' if len(missing) == 1 else 'are'} not "
            f"installed. TensorFlow is only needed to prepare catalog datasets once; install the "
            f"optional extra:\n  {cmd}\nthen run:\n  "
            f"{PREPARE_CMD.format(name=name, data_dir=data_dir)}"
        )
    tfds = sources.tfds_module()
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir, file_format="array_record")
    if builder.is_prepared():
        sources.check_array_record(name, builder, data_dir)
        return os.fspath(builder.data_path)
    builder.download_and_prepare()
    return os.fspath(builder.data_path)


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the exit status (0 ok, 2 on a clear user-facing error)."""
    parser = argparse.ArgumentParser(
        prog="python -m lsgan_jax.data.prepare",
        description="Download and prepare an image dataset as ArrayRecord for lsgan_jax.",
    )
    parser.add_argument("name", nargs="?", help="dataset name (see --list) or folder:/path")
    parser.add_argument(
        "--data_dir",
        default=None,
        help="TFDS data dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)",
    )
    parser.add_argument("--image_size", type=int, default=None, help="size for folder: datasets")
    parser.add_argument("--list", action="store_true", help="print the dataset table and exit")
    args = parser.parse_args(argv)

    if args.list or not args.name:
        print(dataset_table())
        return 0 if args.list else 2
    try:
        path = prepare(args.name, args.data_dir, image_size=args.image_size)
    except (MissingDependencyError, DatasetNotPreparedError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Prepared {args.name!r} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
