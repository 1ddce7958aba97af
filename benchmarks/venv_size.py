"""Install weight: fresh virtualenvs of the core and of the README install, measured.

    python -m benchmarks.venv_size                 # core and [all]
    python -m benchmarks.venv_size --extras "" all test

For each extra, creates a fresh venv in a temporary folder, runs the README's install
(``pip install -e '<repo>[extra]'``), and records ``du -sm`` of the venv (MiB), the number of
installed distributions and the largest ones. The core venv must also import
``lsgan_jax.losses/theory/models/training`` and run one jitted LSGAN train step (the core
promise: no data or plotting extra needed); the check and its time are recorded. The result goes
to ``results/install/venv_sizes.json``; ``python -m experiments.report`` renders the README's
install table from it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "install" / "venv_sizes.json"

#: Run inside the core venv: imports the core modules and takes one jitted train step.
CORE_CHECK = """
import sys, time
t0 = time.perf_counter()
import jax, jax.numpy as jnp
from lsgan_jax import losses, theory, models, training
from lsgan_jax.training import build, mixture_trainer, step
config = mixture_trainer.default_config()
config.seeds, config.batch_size = 1, 64
config.model.g_kwargs, config.model.d_kwargs = {"latent_dim": 8, "hidden": 16}, {"hidden": 16}
study = build.build_mixture(config)
one = jax.tree.map(lambda x: x[0], (study.states, study.hparams))
new, metrics = jax.jit(step.make_train_step(study.spec))(one[0], None, one[1])
assert all(bool(jnp.isfinite(v)) for v in jax.tree.leaves(metrics)), metrics
heavy = [m for m in ("tensorflow_datasets", "grain", "matplotlib", "sklearn") if m in sys.modules]
assert not heavy, heavy
print(f"core check ok: a jitted LSGAN step ({len(metrics)} metrics) in {time.perf_counter() - t0:.1f} s")
"""


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def measure(extra: str, python: str = sys.executable) -> dict:
    """Builds a fresh venv with ``pip install -e '<repo>[extra]'`` and measures it."""
    spec = f"{ROOT}[{extra}]" if extra else str(ROOT)
    with tempfile.TemporaryDirectory(prefix="lsgan_venv_") as tmp:
        venv = Path(tmp) / "venv"
        _run([python, "-m", "venv", str(venv)])
        py = str(venv / "bin" / "python")
        t0 = time.perf_counter()
        _run([py, "-m", "pip", "install", "-q", "-e", spec])
        install_s = time.perf_counter() - t0
        mib = int(_run(["du", "-sm", str(venv)]).stdout.split()[0])
        dists = json.loads(_run([py, "-m", "pip", "list", "--format=json"]).stdout)
        site = Path(
            _run(
                [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
            ).stdout.strip()
        ).resolve()
        sizes = {}
        for entry in site.iterdir():
            if entry.name.endswith((".dist-info", ".pth")) or entry.name.startswith("_"):
                continue
            sizes[entry.name] = int(_run(["du", "-sm", str(entry)]).stdout.split()[0])
        row = {
            "extra": extra,
            "command": f"pip install -e '.[{extra}]'" if extra else "pip install -e .",
            "venv_mib": mib,
            "distributions": len(dists),
            "largest_mib": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:6]),
            "jax": next((d["version"] for d in dists if d["name"] == "jax"), None),
            "install_s": round(install_s, 1),
        }
        if not extra:
            out = _run([py, "-c", CORE_CHECK], cwd=tmp, env={**os.environ, "JAX_PLATFORMS": "cpu"})
            row["core_check"] = out.stdout.strip().splitlines()[-1]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.venv_size", description=__doc__)
    parser.add_argument("--extras", nargs="*", default=["", "all"], help='"" is the core')
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    rows = []
    for extra in args.extras:
        row = measure(extra)
        print(json.dumps(row))
        rows.append(row)
    commit = _run(["git", "rev-parse", "HEAD"], cwd=ROOT).stdout.strip()
    result = {
        "rows": rows,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "command": "python -m benchmarks.venv_size"
        + ("" if args.extras == ["", "all"] else " --extras " + " ".join(map(repr, args.extras))),
        "commit": commit,
        "stored_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
