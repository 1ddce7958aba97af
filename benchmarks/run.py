r"""Speed benchmarks: lsgan_jax against a PyTorch eager reference, measured interleaved.

    python -m benchmarks.run --suite cpu                 # readable table (run time: RESULTS.md)
    python -m benchmarks.run --suite cpu --json          # one JSON object per line
    python -m benchmarks.run --suite cpu --cases mixture_official,pipeline
    python -m benchmarks.run --suite gpu --bf16 --json   # on an accelerator (bigger batches)

Method. Every case builds "ours" (lsgan_jax: `make_train_step` + a runner) and a reference
(`benchmarks/torch_reference.py`, PyTorch eager, `torch.set_num_threads(os.cpu_count())`; for
`mixture_vectorized_vs_sequential` the reference is our own sequential runs, for `pipeline` our
loop fed by synthetic batches). Each variant is warmed up (JAX compilation and the first PyTorch
calls are excluded), then timed in turn inside ONE process, `repeats` times, the order rotated
each repeat, each measurement lasting about `target_s` seconds; a rate is the median over repeats.
On a machine shared with other jobs, only ratios measured this way are meaningful.

Each row: `name`, `unit`, `ours_per_s`, `reference_per_s`, `ratio` (= ours / reference),
`repeats`, `config`, the min-max spread of both rates, `ratio_of_best` (best repeat over best
repeat), `foreign_cpu_ours` / `foreign_cpu_reference` (median share of the machine's CPU time
that OTHER processes used during the measurements: 0 = undisturbed, 1 = every core taken),
`load_avg_1m_after` (the 1-minute load average when the row was made), and for model
cases the model FLOPs of one step, achieved GFLOP/s (`gflops_ours`, `gflops_reference`), the
matmul peak measured in the same run (`peak_gflops`, the best of a large JAX matmul in the compute
dtype) and `mfu_ours` = gflops_ours / peak; image cases add images/s.
Rows with a target from the issue carry `target` (minimum ratio) and `target_met`.

Model FLOPs: 2·(multiply-adds) of the matmuls and convolutions of one forward pass of G and D at
the step's batch, counted from the jaxpr of the sub-pixel form (no multiplies on the structural
zeros of a strided transpose conv; padding taps counted, as usual), and a step = 3·G + 8·D: G
forward + backward (3·G), D forward + backward on the real and the fake batch (2 · 3·D), and D
forward + input-gradient for the G loss (2·D). Both our step and the PyTorch reference run G
forward once per step (the D update and the G gradient share it).

`[subpixel]` / `[conv_transpose]` rows: every stride-2 transposed convolution -- G's deconvs and
the input gradients of D's stride-2 convs -- computed in the sub-pixel form or by XLA
(`deconv_impl` of both models; `lsgan_jax/models/layers.py`).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import jax

from benchmarks.cases import CASE_FNS, CASES, case_matmul
from benchmarks.harness import Context

SUITES: dict[str, dict[str, Any]] = {
    # 2 CPU cores: the official sizes except LSUN's batch (16 instead of 64, which is too slow here).
    "cpu": {
        "repeats": 5,
        "target_s": 1.5,
        "matmul_n": 2048,
        "mixture_official": dict(batch=512, scan_steps=200, no_scan_chunk=25),
        "mixture_vectorized_vs_sequential": dict(batch=512, scan_steps=100, runs=8),
        "dcgan64": dict(batch=32, repeats=3, target_s=0.0),
        "dcgan28_digits": dict(batch=64, repeats=3),
        "lsun112": dict(batch=16, repeats=3, target_s=0.0),
        "pipeline": dict(batch=64, chunk=50, target_s=3.0),
    },
    # One accelerator: larger batches, more runs; same models.
    "gpu": {
        "repeats": 10,
        "target_s": 1.0,
        "matmul_n": 8192,
        "mixture_official": dict(batch=512, scan_steps=500, no_scan_chunk=100),
        "mixture_vectorized_vs_sequential": dict(batch=512, scan_steps=500, runs=64),
        "dcgan64": dict(batch=256, chunk=5),
        "dcgan28_digits": dict(batch=256, chunk=10),
        "lsun112": dict(batch=64, chunk=2),
        "pipeline": dict(batch=256, chunk=100, target_s=3.0),
    },
    # Seconds, for tests of the harness (numbers mean nothing).
    "tiny": {
        "repeats": 1,
        "target_s": 0.0,
        "matmul_n": 128,
        "mixture_official": dict(
            batch=32,
            scan_steps=4,
            no_scan_chunk=2,
            ref_chunk=1,
            g_kwargs=dict(latent_dim=8, hidden=16),
            d_kwargs=dict(hidden=16),
        ),
        "mixture_vectorized_vs_sequential": dict(
            batch=32, scan_steps=4, runs=2, g_kwargs=dict(latent_dim=8, hidden=16), d_kwargs={}
        ),
        "dcgan64": dict(
            batch=2,
            g_kwargs=dict(image_size=16, base_features=4, latent_dim=8),
            d_kwargs=dict(image_size=16, base_features=4),
        ),
        "dcgan28_digits": dict(
            batch=2,
            g_kwargs=dict(base_features=4, latent_dim=8),
            d_kwargs=dict(hidden=16),
            impls=("subpixel",),
        ),
        "lsun112": dict(
            batch=2,
            g_kwargs=dict(image_size=32, base_features=4, latent_dim=8),
            d_kwargs=dict(image_size=32, base_features=4),
        ),
        "pipeline": dict(batch=8, chunk=2, tiny_model=True),
    },
}


# ---------------------------------------------------------------------------------------------
# Driver.
# ---------------------------------------------------------------------------------------------


def make_context(
    suite: str = "cpu",
    *,
    repeats: int | None = None,
    target_s: float | None = None,
    bf16: bool = False,
    reference: bool = True,
    torch_threads: int | None = None,
    data_dir: str | None = None,
    verbose: bool = True,
) -> Context:
    """A `Context` for `suite`, importing the PyTorch reference when asked and available."""
    if suite not in SUITES:
        raise ValueError(f"Unknown suite {suite!r}; choose one of {sorted(SUITES)}.")
    s = SUITES[suite]
    ctx = Context(
        suite=suite,
        repeats=repeats or s["repeats"],
        target_s=s["target_s"] if target_s is None else target_s,
        bf16=bf16,
        reference=reference,
        forced_repeats=repeats is not None,
        forced_target_s=target_s is not None,
        data_dir=data_dir,
        verbose=verbose,
    )
    if reference:
        try:
            from benchmarks import torch_reference  # noqa: PLC0415
        except ImportError as e:  # torch is the optional [bench] extra
            ctx.log(f"PyTorch reference unavailable ({e}); pip install -e '.[bench]'.")
        else:
            import torch  # noqa: PLC0415

            ctx.torch_threads = torch_reference.set_threads(torch_threads)
            if suite != "gpu":
                ctx.torch_ref, ctx.torch_device = torch_reference, torch.device("cpu")
            elif torch.cuda.is_available():
                ctx.torch_ref, ctx.torch_device = torch_reference, torch.device("cuda")
            else:
                ctx.log(
                    f"torch {torch.__version__} sees no CUDA device: the gpu suite runs without "
                    "the PyTorch reference (install a CUDA build of torch to compare)."
                )
    if suite == "gpu" and jax.default_backend() == "cpu":
        ctx.log("warning: --suite gpu but JAX runs on CPU; the numbers are CPU numbers.")
    return ctx


def run_cases(ctx: Context, cases: list[str] | tuple[str, ...] = CASES, emit=None) -> list[dict]:
    """Measures the matmul peak, then each case; `emit(row)` is called as rows come."""
    unknown = [c for c in cases if c not in CASE_FNS]
    if unknown:
        raise ValueError(f"Unknown case(s) {unknown}; choose from {list(CASES)}.")
    rows: list[dict] = []

    def out(new):
        for row in new:
            rows.append(row)
            if emit is not None:
                emit(row)

    suite = SUITES[ctx.suite]
    ctx.log(f"[{ctx.suite}] matmul peak (n={suite['matmul_n']})")
    out(case_matmul(ctx, suite["matmul_n"]))
    for case in cases:
        ctx.log(f"[{ctx.suite}] {case}")
        t0 = time.perf_counter()
        out(CASE_FNS[case](ctx, dict(suite[case])))
        ctx.log(f"  done in {time.perf_counter() - t0:.1f} s")
    return rows


def _fmt(x: Any, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}"


def format_table(rows: list[dict]) -> str:
    """Readable table of result rows.

    `ratio` is ours / reference (medians); `best/best` the ratio of the best repeats (on a shared
    machine, the least-disturbed measurement of each side); `MFU` is ours / the JAX matmul peak
    of the same run; `others` the % of the machine's CPU that other processes took during our /
    the reference's measurements (median); `target` the issue's minimum ratio and whether
    `ratio` meets it.
    """
    head = (
        f"{'case':<36} {'unit':<12} {'ours':>10} {'reference':>10} {'ratio':>7} "
        f"{'best/best':>9} {'GFLOP/s':>8} {'MFU':>6} {'others':>9} {'target':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        target = ""
        if "target" in r:
            target = f"{'ok' if r['target_met'] else 'MISS'} {r['target']:g}"
        mfu = r.get("mfu_ours")
        fo, fr = r.get("foreign_cpu_ours"), r.get("foreign_cpu_reference")
        others = f"{_pct(fo)}/{_pct(fr)}" if fo is not None or fr is not None else "-"
        lines.append(
            f"{r['name']:<36} {r['unit']:<12} {_fmt(r['ours_per_s'], '.4g'):>10} "
            f"{_fmt(r['reference_per_s'], '.4g'):>10} {_fmt(r['ratio'], '.2f'):>7} "
            f"{_fmt(r.get('ratio_of_best'), '.2f'):>9} "
            f"{_fmt(r.get('gflops_ours'), '.1f'):>8} "
            f"{'-' if mfu is None else format(100 * mfu, '.0f') + '%':>6} {others:>9} {target:>9}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--suite", default="cpu", choices=sorted(SUITES))
    parser.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per variant")
    parser.add_argument("--target_s", type=float, default=None, help="seconds per measurement")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 compute, float32 params")
    parser.add_argument("--no_reference", action="store_true", help="skip PyTorch")
    parser.add_argument("--torch_threads", type=int, default=None, help="default: os.cpu_count()")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir for the pipeline case")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    ctx = make_context(
        args.suite,
        repeats=args.repeats,
        target_s=args.target_s,
        bf16=args.bf16,
        reference=not args.no_reference,
        torch_threads=args.torch_threads,
        data_dir=args.data_dir,
        verbose=not args.quiet,
    )
    emit = (lambda row: print(json.dumps(row), flush=True)) if args.json else None
    rows = run_cases(ctx, cases, emit=emit)
    if not args.json:
        print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
