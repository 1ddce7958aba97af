"""PyTorch eager references for `benchmarks.run`: the same networks, optimizers and losses.

Each builder returns a zero-argument `step()` that performs ONE training step (synchronously: on a
GPU it does not wait; `benchmarks.run` synchronizes at the end of a timed chunk with `sync`).
Written the way a PyTorch user would write them (eager mode, NCHW, `torch.optim.Adam` with its
default implementation), with two choices that make the reference *stronger*, not weaker:

* the image step reuses the generator output of the D step for the G step (the PyTorch DCGAN
  example's idiom; our JAX step recomputes it), and freezes D's parameters during the G step so no
  D weight gradients are computed (our JAX step does not compute them either);
* the mixture step takes both gradients with `torch.autograd.grad` at the old parameters
  (simultaneous updates, as the official mixture code and our `update="simultaneous"` step).

Architectures (shapes and FLOPs match `lsgan_jax.models`; initializations match in distribution,
which does not matter for speed):

* `MixtureMLP`: official mixture MLPs (`mixture_mlp_g` z256 -> 128 tanh -> 128 tanh -> 2,
  `mixture_mlp_d` 2 -> 128 tanh -> 128 tanh -> 1), orthogonal(1.4) weights, zero biases.
* `DCGANGenerator` / `DCGANDiscriminator`: `dcgan_g` / `dcgan_d` (linear -> per-feature BN ->
  ReLU -> reshape -> [ConvTranspose2d k5 s2 -> BN -> ReLU]* -> tanh; conv k5 s2 + BN + lrelu 0.2,
  flatten, linear -> 1). TF SAME transposed convs are `ConvTranspose2d(k, 2, padding=(k-1)//2,
  output_padding=...)` with the output padding that gives TF's output size (4 -> 7 in digits).
* `DigitDiscriminator`: `digit_d` (conv 20, conv 50 + BN, linear 500 + BN, linear 1).
* `LSUNGenerator`: `lsun_g` (linear -> 7x7x256 -> BN -> ReLU, 3x3 deconvs /2, /1, /2, /1, /2, /2,
  /1 with BN + ReLU, tanh); its D is `DCGANDiscriminator` at 112 px.

LSGAN 0-1-1 losses on raw D outputs: D: ½E[(D(x)-1)²] + ½E[D(G(z))²]; G: ½E[(D(G(z))-1)²].
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DigitDiscriminator",
    "LSUNGenerator",
    "MixtureMLP",
    "default_device",
    "image_step",
    "matmul_call",
    "mixture_step",
    "ring_means",
    "set_threads",
    "sync",
]


def set_threads(n: int | None = None) -> int:
    """`torch.set_num_threads(n or os.cpu_count())`; returns the number set."""
    n = int(n or os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def default_device() -> torch.device:
    """CUDA when this torch build sees a GPU, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(device: torch.device) -> None:
    """Waits for queued GPU work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    if amp_dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=amp_dtype)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return torch.maximum(x, 0.2 * x)


def _init_(module: nn.Module) -> nn.Module:
    """Official LSGAN init: N(0, 0.02) linear/deconv, truncated N(0, 0.02) conv, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
        elif isinstance(m, (nn.Linear, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.02)
        else:
            continue
        nn.init.zeros_(m.bias)
    return module


def _bn(n: int, dims: int = 2) -> nn.Module:
    # TF batch_norm(decay=0.9, eps=1e-5) == torch momentum 0.1.
    return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(n, eps=1e-5, momentum=0.1)


def _deconv(cin: int, cout: int, k: int, stride: int, in_size: int, out_size: int) -> nn.Module:
    """TF SAME `conv2d_transpose` shape: `ConvTranspose2d` with the matching output padding."""
    pad = (k - 1) // 2
    base = (in_size - 1) * stride - 2 * pad + k
    out_pad = out_size - base
    if not 0 <= out_pad < stride:
        raise ValueError(f"no ConvTranspose2d maps {in_size} to {out_size} with k={k} s={stride}")
    return nn.ConvTranspose2d(cin, cout, k, stride, padding=pad, output_padding=out_pad)


# ---------------------------------------------------------------------------------------------
# Models.
# ---------------------------------------------------------------------------------------------


class MixtureMLP(nn.Module):
    """`in -> [Linear -> tanh] x depth -> Linear(out)`, orthogonal(gain) weights, zero biases."""

    def __init__(self, d_in: int, hidden: int, d_out: int, depth: int = 2, gain: float = 1.4):
        super().__init__()
        dims = [d_in] + [hidden] * depth
        self.hidden = nn.ModuleList(
            nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:], strict=True)
        )
        self.out = nn.Linear(hidden, d_out)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.orthogonal_(m.weight, gain=gain)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = torch.tanh(layer(x))
        return self.out(x)


class DCGANGenerator(nn.Module):
    """`dcgan_g` / `digit_g`: z -> linear -> BN(features) -> ReLU -> deconvs -> tanh (NCHW)."""

    def __init__(
        self,
        *,
        image_size: int = 64,
        channels: int = 3,
        base_features: int = 64,
        latent_dim: int = 100,
        kernel_size: int = 5,
        num_upsamples: int | None = None,
    ):
        super().__init__()
        n = num_upsamples or (4 if image_size % 16 == 0 else 3)
        self.sizes = [-(-image_size // 2**j) for j in range(n, -1, -1)]
        widths = [8 * base_features // 2**j for j in range(n)]
        self.s0, self.f0 = self.sizes[0], widths[0]
        self.project = nn.Linear(latent_dim, self.s0 * self.s0 * self.f0)
        self.project_norm = _bn(self.s0 * self.s0 * self.f0, dims=1)
        outs = widths[1:] + [channels]
        self.deconvs = nn.ModuleList(
            _deconv(i, o, kernel_size, 2, self.sizes[j], self.sizes[j + 1])
            for j, (i, o) in enumerate(zip(widths, outs, strict=True))
        )
        self.norms = nn.ModuleList(_bn(o) for o in outs[:-1])
        _init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.project_norm(self.project(z)))
        # Flax reshapes (B, s*s*f) to NHWC; the same values viewed as NCHW need a permute.
        h = h.view(-1, self.s0, self.s0, self.f0).permute(0, 3, 1, 2)
        for j, deconv in enumerate(self.deconvs):
            h = deconv(h)
            if j < len(self.norms):
                h = torch.relu(self.norms[j](h))
        return torch.tanh(h)


class DCGANDiscriminator(nn.Module):
    """`dcgan_d` / `lsun_d`: conv k5 s2 (b, 2b, 4b, 8b), BN on all but the first, lrelu, linear."""

    def __init__(
        self,
        *,
        image_size: int = 64,
        channels: int = 3,
        base_features: int = 64,
        kernel_size: int = 5,
        num_layers: int = 4,
    ):
        super().__init__()
        widths = [base_features * 2**j for j in range(num_layers)]
        ins = [channels] + widths[:-1]
        pad = (kernel_size - 1) // 2
        self.convs = nn.ModuleList(
            nn.Conv2d(i, o, kernel_size, 2, padding=pad) for i, o in zip(ins, widths, strict=True)
        )
        self.norms = nn.ModuleList(_bn(o) for o in widths[1:])
        final = -(-image_size // 2**num_layers)
        self.out = nn.Linear(final * final * widths[-1], 1)
        _init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for j, conv in enumerate(self.convs):
            h = conv(h)
            if j > 0:
                h = self.norms[j - 1](h)
            h = _lrelu(h)
        return self.out(h.flatten(1))


class DigitDiscriminator(nn.Module):
    """`digit_d`: conv5x5/2 (20) -> lrelu -> conv5x5/2 (50) -> BN -> lrelu -> 500 -> BN -> 1."""

    def __init__(self, *, image_size: int = 28, channels: int = 1, hidden: int = 500):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 20, 5, 2, padding=2)
        self.conv2 = nn.Conv2d(20, 50, 5, 2, padding=2)
        self.norm2 = _bn(50)
        final = -(-image_size // 4)
        self.hidden = nn.Linear(final * final * 50, hidden)
        self.norm3 = _bn(hidden, dims=1)
        self.out = nn.Linear(hidden, 1)
        _init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _lrelu(self.conv1(x))
        h = _lrelu(self.norm2(self.conv2(h))).flatten(1)
        return self.out(_lrelu(self.norm3(self.hidden(h))))


class LSUNGenerator(nn.Module):
    """`lsun_g` (xudonmao/LSGAN `vgg.py`): 3x3 deconvs /2 /1 /2 /1 /2 /2 /1 with BN + ReLU."""

    def __init__(
        self,
        *,
        image_size: int = 112,
        channels: int = 3,
        base_features: int = 64,
        latent_dim: int = 1024,
        kernel_size: int = 3,
    ):
        super().__init__()
        b = base_features
        self.start, self.width0 = image_size // 16, 4 * b
        plan = [
            (4 * b, 4 * b, 2),
            (4 * b, 4 * b, 1),
            (4 * b, 4 * b, 2),
            (4 * b, 4 * b, 1),
            (4 * b, 2 * b, 2),
            (2 * b, b, 2),
            (b, channels, 1),
        ]
        self.project = nn.Linear(latent_dim, self.start**2 * self.width0)
        self.project_norm = _bn(self.width0)
        size, layers = self.start, []
        for i, o, s in plan:
            layers.append(_deconv(i, o, kernel_size, s, size, size * s))
            size *= s
        self.deconvs = nn.ModuleList(layers)
        self.norms = nn.ModuleList(_bn(o) for _, o, _ in plan[:-1])
        _init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, self.start, self.start, self.width0).permute(0, 3, 1, 2)
        h = torch.relu(self.project_norm(h))
        for deconv, norm in zip(self.deconvs[:-1], self.norms, strict=True):
            h = torch.relu(norm(deconv(h)))
        return torch.tanh(self.deconvs[-1](h))


# ---------------------------------------------------------------------------------------------
# Train steps.
# ---------------------------------------------------------------------------------------------


def _adam(params, lr: float, b1: float, b2: float = 0.999) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=1e-8)


def mixture_step(
    *,
    means: np.ndarray,
    std: float = 0.01,
    batch: int = 512,
    latent_dim: int = 256,
    g_hidden: int = 128,
    d_hidden: int = 128,
    lr_g: float = 1e-3,
    lr_d: float = 1e-4,
    b1: float = 0.5,
    device: torch.device | None = None,
    amp_dtype: torch.dtype | None = None,
    seed: int = 0,
) -> Callable[[], None]:
    """The official mixture step: ring data and z ~ N(0, I) sampled with torch every step.

    Simultaneous updates (both gradients at the old parameters), Adam D `lr_d` / G `lr_g`,
    β1 `b1`, LSGAN 0-1-1 losses (means).
    """
    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    g = MixtureMLP(latent_dim, g_hidden, means.shape[1]).to(device)
    d = MixtureMLP(means.shape[1], d_hidden, 1).to(device)
    opt_g, opt_d = _adam(g.parameters(), lr_g, b1), _adam(d.parameters(), lr_d, b1)
    g_params, d_params = list(g.parameters()), list(d.parameters())
    centers = torch.tensor(np.array(means, np.float32), device=device)

    def step() -> None:
        idx = torch.randint(0, centers.shape[0], (batch,), device=device)
        real = centers[idx] + std * torch.randn(batch, centers.shape[1], device=device)
        z = torch.randn(batch, latent_dim, device=device)
        with _autocast(device, amp_dtype):
            fake = g(z)
            d_loss = (
                0.5 * ((d(real).float() - 1) ** 2).mean()
                + 0.5 * (d(fake.detach()).float() ** 2).mean()
            )
            g_loss = 0.5 * ((d(fake).float() - 1) ** 2).mean()
        d_grads = torch.autograd.grad(d_loss, d_params)
        g_grads = torch.autograd.grad(g_loss, g_params)
        for p, gr in zip(d_params, d_grads, strict=True):
            p.grad = gr
        for p, gr in zip(g_params, g_grads, strict=True):
            p.grad = gr
        opt_d.step()
        opt_g.step()

    return step


def image_step(
    g: nn.Module,
    d: nn.Module,
    *,
    batch: int,
    latent_dim: int,
    image_shape: tuple[int, int, int],
    lr: float = 2e-4,
    b1: float = 0.5,
    device: torch.device | None = None,
    amp_dtype: torch.dtype | None = None,
    seed: int = 0,
) -> Callable[[], None]:
    """One LSGAN image step, D then G (the official image code), on a fixed real batch.

    z ~ U[-1, 1]; `fake = G(z)` once; D step on `(real, fake.detach())`; G step on `D(fake)` with
    D's parameters frozen. Adam(`lr`, β1 `b1`) for both.
    """
    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    g, d = g.to(device), d.to(device)
    g.train()
    d.train()
    opt_g, opt_d = _adam(g.parameters(), lr, b1), _adam(d.parameters(), lr, b1)
    h, w, c = image_shape
    real = torch.rand(batch, c, h, w, device=device) * 2 - 1
    d_params = list(d.parameters())

    def step() -> None:
        z = torch.rand(batch, latent_dim, device=device) * 2 - 1
        with _autocast(device, amp_dtype):
            fake = g(z)
            d_loss = (
                0.5 * ((d(real).float() - 1) ** 2).mean()
                + 0.5 * (d(fake.detach()).float() ** 2).mean()
            )
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        for p in d_params:
            p.requires_grad_(False)
        with _autocast(device, amp_dtype):
            g_loss = 0.5 * ((d(fake).float() - 1) ** 2).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)

    return step


def matmul_call(
    n: int, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Callable[[], None]:
    """`a @ b` for two n x n matrices (2 n³ FLOPs), result discarded."""
    device = device or torch.device("cpu")
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)

    def call() -> None:
        torch.mm(a, b)

    return call


def ring_means(num_modes: int = 8, radius: float = 1.0) -> np.ndarray:
    """Means of the equal-weight ring (first mode at (radius, 0))."""
    t = 2 * math.pi * np.arange(num_modes) / num_modes
    return np.stack([radius * np.cos(t), radius * np.sin(t)], 1).astype(np.float32)
