"""The 200-seed ring success-rate study of Welfert et al. as one vectorized command.

Protocol: `experiments.mixture --variant=welfert` (shared/research/mixtures.md §5.1). Published
success rates (all 8 modes covered): LSGAN 32.5 %, non-saturating GAN 22 %, saturating GAN 47 %
(200 seeds each; 95 % binomial CI about ±6.5 pp).

    python -m lsgan_jax.sweep welfert_ring --mode=vectorized     # 600 runs in one program
    python -m lsgan_jax.sweep welfert_ring --set seeds=20 --set num_steps=39100   # a cut-down look
"""

from lsgan_jax.sweep import Sweep, sweep


def get_sweep() -> Sweep:
    return Sweep(
        module="experiments.mixture",
        variant="welfert",
        points=sweep("losses", [("lsgan",), ("nsgan",), ("minimax",)]),
        metric="all_modes",
        description="Welfert et al. 2-D ring, 200 seeds per loss; success = 8/8 modes.",
    )
