"""a/b/c codings × generator learning rates on the official ring (LSGAN only), 3 seeds each.

Codings: the paper's 0-1 coding (0, 1, 1), the χ² coding (−1, 1, 0) (which the TPAMI paper
reports to perform better), and a shifted χ² coding (0, 2, 1) that also satisfies b−c=1, b−a=2.
G learning rates around the official 1e-3. Every point is a traced hyperparameter, so
`--mode=vectorized` trains all 3 × 3 × 3 = 27 runs as one program.

    python -m experiments.sweep codings_lr --mode=vectorized
"""

from experiments import mixture
from lsgan_jax.sweep import Sweep, product, sweep, zipit


def get_sweep() -> Sweep:
    codings = zipit(
        sweep("coding.a", [0.0, -1.0, 0.0]),
        sweep("coding.b", [1.0, 1.0, 2.0]),
        sweep("coding.c", [1.0, 0.0, 1.0]),
    )
    points = product(codings, sweep("optim_g.lr", [3e-4, 1e-3, 3e-3]))
    return Sweep(
        experiment=mixture,
        variant="default",
        points=points,
        overrides={"losses": ("lsgan",), "seeds": 3},
        metric="modes_covered",
        description="LSGAN codings x G learning rate on the official 8-mode ring (3 seeds).",
    )
