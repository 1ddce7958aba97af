"""Shared by the tests that check a refused run leaves its workdir byte-identical."""

import hashlib
import os


def tree_digest(workdir) -> dict[str, str]:
    """Every file under `workdir` -> sha256 of its bytes."""
    out = {}
    for root, _, files in os.walk(workdir):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, workdir)] = hashlib.sha256(f.read()).hexdigest()
    return out
