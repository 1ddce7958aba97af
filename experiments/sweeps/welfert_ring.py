"""The 200-seed ring success-rate study of Welfert et al. as one vectorized command.

Protocol: `experiments.mixture --variant=welfert` (see its docstring and `docs/protocols.md`).
Published success rates (all 8 modes covered; Welfert et al., 200 seeds each): LSGAN 32.5 %,
non-saturating GAN 22 %, saturating GAN 47 %.

    python -m experiments.sweep welfert_ring --mode=vectorized     # 600 runs in one program
    python -m experiments.sweep welfert_ring --config.seeds=20 --config.num_steps=39100
"""

from experiments import mixture
from lsgan_jax.sweep import Sweep, sweep


def get_sweep() -> Sweep:
    return Sweep(
        experiment=mixture,
        variant="welfert",
        points=sweep("losses", [("lsgan",), ("nsgan",), ("minimax",)]),
        metric="all_modes",
        description="Welfert et al. 2-D ring, 200 seeds per loss; success = 8/8 modes.",
    )
