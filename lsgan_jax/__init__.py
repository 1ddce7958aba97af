"""lsgan_jax: Least Squares GANs (Mao et al., ICCV 2017; TPAMI 2019) in JAX and Flax NNX.

from lsgan_jax import losses, theory      # pure, jitted losses and closed forms
from lsgan_jax import models, training    # NNX models by name; step, runners, loops
"""

__version__ = "0.1.0"
