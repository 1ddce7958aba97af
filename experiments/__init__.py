"""The experiment modules: ``python -m experiments`` lists them, ``python -m experiments.NAME`` runs one.

Run from a clone of the repository (the package is not installed with ``lsgan-jax``).
"""

import sys

if sys.argv[:1] == ["-m"]:  # being imported by `python -m experiments.NAME`, before its imports
    from lsgan_jax._extras import MissingExtraError
    from lsgan_jax.cli import exit_cleanly_on_sigterm

    exit_cleanly_on_sigterm()  # SIGTERM while importing or compiling exits 0: nothing to save

    def _one_line_for_missing_extras(kind, value, tb, _default=sys.excepthook):
        if isinstance(value, MissingExtraError):
            print(f"error: {value}", file=sys.stderr)  # the message names the extra to install
        else:
            _default(kind, value, tb)

    sys.excepthook = _one_line_for_missing_extras
