"""Prepare an image dataset once: ``python -m lsgan_jax.data.prepare NAME [--data_dir DIR]``.

Catalog datasets (mnist, cifar10, celeb_a, lsun/…) need TensorFlow and network for this one step
(``pip install -e '.[tf]'``); they are written as ArrayRecord so that training reads them without
TensorFlow. ``digits`` and ``folder:<path>`` prepare offline. ``--list`` prints the registry.
"""

from __future__ import annotations

import argparse
import sys


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

    from lsgan_jax.data import images  # noqa: PLC0415

    if args.list or not args.name:
        print(images.dataset_table())
        return 0 if args.list else 2
    try:
        path = images.prepare(args.name, args.data_dir, image_size=args.image_size)
    except (images.MissingDependencyError, images.DatasetNotPreparedError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Prepared {args.name!r} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
