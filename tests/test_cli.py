"""The experiment command line: help, exit codes, SIGTERM, default workdirs, logging levels.

Real entry points run as subprocesses (`python -m experiments.mixture ...`); a tiny experiment
module written to a temporary folder exercises `cli.run` without importing JAX.
"""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
import textwrap

import ml_collections
import pytest

from lsgan_jax import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, "experiments")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = os.environ.get("LSGAN_JAX_TEST_XLA_FLAGS", "")  # one CPU device
    return env


def _run(args: list[str], cwd: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------------------------
# A tiny experiment module: cli.run without JAX
# --------------------------------------------------------------------------------------------

TOY = textwrap.dedent(
    '''
    """A toy experiment for the CLI tests."""
    import logging, os, signal, sys, time
    import ml_collections
    from lsgan_jax import cli
    from lsgan_jax.errors import ConfigError

    VARIANTS = ("default", "small")
    VARIANT_HELP = {"default": ("the toy", "1 s"), "small": ("a smaller toy", "0 s")}
    FIELD_HELP = {"width": "how wide the toy is"}

    def get_config(variant="default"):
        c = ml_collections.ConfigDict()
        c.variant = variant
        c.width = 8 if variant == "default" else 2
        c.num_steps = 10  # steps of the toy
        c.opt = ml_collections.ConfigDict({"lr": 0.1})
        c.action = ""  # what main does: "", "config_error", "sigterm"
        return c

    def main(config, workdir):
        print("workdir=" + workdir)
        print("absl_level=%d jax_level=%d root_level=%d" % (
            logging.getLogger("absl").getEffectiveLevel(),
            logging.getLogger("jax._src.xla_bridge").getEffectiveLevel(),
            logging.getLogger().level))
        if config.action == "config_error":
            raise ConfigError("width must be even")
        if config.action == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(60)  # never reached: the handler exits at the next bytecode
            print("survived SIGTERM")
        return {}

    cli.run(__name__, get_config, main, VARIANTS)
    '''
)


@pytest.fixture()
def toy(tmp_path):
    path = tmp_path / "toy.py"
    path.write_text(TOY)
    return str(path), str(tmp_path)


def _toy(toy, *flags: str) -> subprocess.CompletedProcess:
    path, cwd = toy
    return _run([path, *flags], cwd, timeout=120)


def test_toy_help_lists_variants_fields_defaults_and_meanings(toy):
    out = _toy(toy, "--help")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "A toy experiment for the CLI tests." in text
    assert "default  the toy  [1 s]" in text and "small    a smaller toy  [0 s]" in text
    lines = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("  ") and ln.split()}
    assert lines["width"].split()[1] == "8" and "how wide the toy is" in lines["width"]
    # a common meaning wins over the comment; a comment is the fallback
    assert "training steps" in lines["num_steps"]
    assert "learning rate" in lines["opt.lr"]
    assert "what main does" in lines["action"]
    small = _toy(toy, "--variant=small", "--help")
    assert small.returncode == 0
    width_small = next(ln for ln in small.stdout.splitlines() if ln.strip().startswith("width"))
    assert width_small.split()[1] == "2"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--variant=smal"], "Did you mean 'small'?"),
        (["--config.widht=3"], "Did you mean 'width'?"),
        (["--config.width=wide"], "--config.width=wide"),
        (["--no_such_flag=1"], "no_such_flag"),
        (["stray"], "unexpected arguments"),
        (["--config.action=config_error"], "width must be even"),
    ],
)
def test_toy_user_errors_exit_2_with_one_line(toy, flags, message):
    out = _toy(toy, *flags)
    assert out.returncode == cli.USAGE_ERROR == 2, (out.stdout, out.stderr)
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], out.stderr
    assert "Traceback" not in out.stderr


def test_toy_sigterm_before_training_exits_0(toy):
    out = _toy(toy, "--config.action=sigterm")
    assert out.returncode == 0, out.stderr
    assert "survived" not in out.stdout
    assert "SIGTERM" in out.stderr


def test_toy_default_workdir_hashes_the_overrides(toy):
    path, cwd = toy
    plain = _toy(toy)
    assert plain.returncode == 0, plain.stderr
    assert f"workdir={os.path.join('workdirs', 'toy', 'default')}" in plain.stdout
    a = _toy(toy, "--config.width=4", "--config.opt.lr=0.5")
    b = _toy(toy, "--config.opt.lr", "0.5", "--config.width=4")  # same values, other spelling
    c = _toy(toy, "--config.width=6")
    same_as_default = _toy(toy, "--config.width=8")
    dirs = [
        next(ln for ln in r.stdout.splitlines() if ln.startswith("workdir="))[8:]
        for r in (a, b, c, same_as_default)
    ]
    text = "\n".join(f"{k}={v!r}" for k, v in sorted({"opt.lr": 0.5, "width": 4}.items()))
    expected = os.path.join(
        "workdirs", "toy", "default-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    )
    assert dirs[0] == dirs[1] == expected
    assert dirs[2] != dirs[0] and dirs[2].startswith(os.path.join("workdirs", "toy", "default-"))
    assert dirs[3] == os.path.join("workdirs", "toy", "default")
    assert f"workdir: {expected} (overrides: opt.lr=0.5, width=4)" in a.stdout


def test_toy_logging_levels_follow_the_flags(toy):
    quiet = _toy(toy)
    # only the absl (orbax, grain) and jax loggers are raised; ours stay at absl's INFO
    assert "absl_level=30 jax_level=30 root_level=20" in quiet.stdout
    verbose = _toy(toy, "--verbosity=0")
    assert "absl_level=20 jax_level=20" in verbose.stdout
    levels = _toy(toy, "--logger_levels=absl:INFO")
    assert "absl_level=20" in levels.stdout


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def test_overrides_of_and_default_workdir():
    base = ml_collections.ConfigDict({"a": 1, "sub": {"b": (1, 2)}, "empty": {}})
    same = ml_collections.ConfigDict(base.to_dict())
    assert cli.overrides_of(same, base) == {}
    assert cli.default_workdir("exp", "v", {}) == os.path.join("workdirs", "exp", "v")
    changed = ml_collections.ConfigDict(base.to_dict())
    changed.sub.b = (1, 3)
    assert cli.overrides_of(changed, base) == {"sub.b": (1, 3)}
    d1 = cli.default_workdir("exp", "v", {"sub.b": (1, 3)})
    d2 = cli.default_workdir("exp", "v", {"sub.b": (1, 4)})
    assert d1 != d2 and os.path.basename(d1).startswith("v-") and len(os.path.basename(d1)) == 10


def test_source_comments_map_fields_to_their_comments():
    src = textwrap.dedent(
        """
        def get_config(variant):
            c = ml_collections.ConfigDict()
            c.lr = 1e-3  # the step size
            c.data = ml_collections.ConfigDict(
                {
                    "name": "ring",  # which mixture
                    # a lone comment above a key
                    "size": 0,
                    "seed": 1,
                }
            )
            # a block comment
            # of two lines
            c.steps = 5
            if variant == "x":
                c.lr = 2e-3  # a variant's comment is not the meaning
            return c
        """
    )
    got = cli._source_comments(src)
    assert got == {
        "lr": "the step size",
        "data.name": "which mixture",
        "data.size": "a lone comment above a key",
    }


# --------------------------------------------------------------------------------------------
# The real entry points
# --------------------------------------------------------------------------------------------


def test_mixture_help_exits_0_and_names_the_fields(tmp_path):
    out = _run(["-m", "experiments.mixture", "--helpfull"], str(tmp_path))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    from experiments import mixture

    for variant in mixture.VARIANTS:
        assert f"  {variant} " in text
    row = next(ln for ln in text.splitlines() if ln.strip().startswith("num_steps "))
    assert row.split()[1] == str(mixture.get_config().num_steps) and "training steps" in row
    assert "--verbosity" in text  # absl's own flags, under --helpfull
    assert "!!python" not in text and "!!python" not in out.stderr


def test_mixture_unknown_field_exits_2(tmp_path):
    out = _run(["-m", "experiments.mixture", "--config.seedz=3"], str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: unknown config field 'seedz'. Did you mean 'seeds'? `--help` lists the fields "
        "with their defaults."
    ]


def test_sigterm_while_importing_an_experiment_exits_0(tmp_path):
    code = (
        "import os, signal, sys, time; sys.argv = ['-m']; import experiments; "
        "os.kill(os.getpid(), signal.SIGTERM); time.sleep(60); print('survived')"
    )
    out = _run(["-c", code], str(tmp_path), timeout=120)
    assert out.returncode == 0 and "survived" not in out.stdout, out.stderr


def test_sigterm_handler_only_outside_python_m(tmp_path):
    code = "import signal, experiments; print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)"
    out = _run(["-c", code], str(tmp_path), timeout=120)
    assert out.stdout.strip() == "True", out.stderr


# --------------------------------------------------------------------------------------------
# python -m experiments
# --------------------------------------------------------------------------------------------


def _module_constants(path: str) -> dict[str, object]:
    tree = ast.parse(open(path).read())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("VARIANTS", "VARIANT_HELP"):
                out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def test_every_experiment_describes_every_variant():
    names = [f[:-3] for f in os.listdir(EXPERIMENTS) if f.endswith(".py") and f[0] != "_"]
    found = 0
    for name in names:
        consts = _module_constants(os.path.join(EXPERIMENTS, f"{name}.py"))
        if "VARIANTS" not in consts:
            continue
        found += 1
        helps = consts.get("VARIANT_HELP", {})
        assert set(helps) == set(consts["VARIANTS"]), name
        for variant, (desc, runtime) in helps.items():
            assert desc and runtime, (name, variant)
    assert found >= 11


def test_python_m_experiments_lists_every_experiment_and_variant(tmp_path):
    out = _run(["-X", "importtime", "-m", "experiments"], str(tmp_path), timeout=60)
    assert out.returncode == 0, out.stderr
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in out.stderr.splitlines() if "|" in ln}
    assert "ml_collections" in imported and "jax" not in imported  # the list needs no JAX
    for f in sorted(os.listdir(EXPERIMENTS)):
        if not f.endswith(".py") or f[0] == "_":
            continue
        consts = _module_constants(os.path.join(EXPERIMENTS, f))
        if "VARIANTS" not in consts:
            continue
        assert f"python -m experiments.{f[:-3]} " in out.stdout
        for variant, (desc, runtime) in consts["VARIANT_HELP"].items():
            line = next(
                ln
                for ln in out.stdout.splitlines()
                if ln.strip().startswith(f"--variant={variant} ") and ln.rstrip().endswith(desc)
            )
            assert runtime in line
