"""``python -m experiments``: every experiment and variant, with what it runs and its CPU time.

    python -m experiments              # the list
    python -m experiments --markdown   # the same as the README's table

Reads each module's docstring, ``VARIANTS`` and ``VARIANT_HELP`` without importing it (no JAX),
so the list prints at once.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

#: Listing order (the main job first); modules not named here follow alphabetically.
ORDER = (
    "mixture",
    "gradients",
    "optimal_discriminator",
    "digits",
    "stability",
    "small_variance",
    "mnist",
    "cifar10",
    "celeba",
    "lsun",
    "conditional",
)


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    variants: tuple[str, ...]
    help: dict[str, tuple[str, str]]


def _constant(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return ast.literal_eval(node.value)
    return None


def experiments(directory: str = HERE) -> list[Experiment]:
    """The experiment modules in ``directory``: those defining ``VARIANTS``, in :data:`ORDER`."""
    found = []
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith(".py") or fname.startswith("_"):
            continue
        with open(os.path.join(directory, fname), encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=fname)
        variants = _constant(tree, "VARIANTS")
        if not variants:
            continue
        doc = (ast.get_docstring(tree) or "").strip().splitlines()
        found.append(
            Experiment(
                name=fname[:-3],
                summary=doc[0].strip() if doc else "",
                variants=tuple(variants),
                help=dict(_constant(tree, "VARIANT_HELP") or {}),
            )
        )
    rank = {n: i for i, n in enumerate(ORDER)}
    return sorted(found, key=lambda e: (rank.get(e.name, len(rank)), e.name))


def listing(exps: list[Experiment]) -> str:
    """Plain-text list: each experiment, then one line per variant."""
    lines = []
    width = max(len(v) for e in exps for v in e.variants)
    for e in exps:
        lines.append(f"python -m experiments.{e.name}  {e.summary}")
        for v in e.variants:
            desc, runtime = e.help.get(v, ("", ""))
            lines.append(f"    --variant={v:<{width}}  {runtime or '?':>8}  {desc}".rstrip())
        lines.append("")
    lines.append("CPU time: wall clock on 2 CPU cores; GPU: too long for a CPU.")
    lines.append("`python -m experiments.NAME --help` lists a module's config fields.")
    return "\n".join(lines)


def markdown(exps: list[Experiment]) -> str:
    """The README's table: one row per (experiment, variant)."""
    rows = ["| experiment | variant | what it runs | CPU time |", "|---|---|---|---|"]
    for e in exps:
        for i, v in enumerate(e.variants):
            desc, runtime = e.help.get(v, ("", ""))
            first = f"`{e.name}`" if i == 0 else ""
            rows.append(f"| {first} | `{v}` | {desc} | {runtime} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments", description="List the experiments and their variants."
    )
    parser.add_argument("--markdown", action="store_true", help="print the README's table")
    args = parser.parse_args(argv)
    exps = experiments()
    print(markdown(exps) if args.markdown else listing(exps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
