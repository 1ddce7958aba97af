"""The README agrees with the code: its example runs, its commands and its experiment table."""

import os
import re
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def test_readme_example_runs_and_prints_the_ls_losses(capsys):
    blocks = re.findall(r"```python\n(.*?)```", _readme(), re.S)
    assert blocks, "README has no python example"
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    d_loss, g_loss = map(float, capsys.readouterr().out.split())

    # NumPy oracle of the printed values from the example's final parameters and data:
    # ½·E[(D(x) − b)²] + ½·E[(D(G(z)) − a)²] and ½·E[(D(G(z)) − c)²], no sigmoid.
    w = {k: np.asarray(v, np.float64) for k, v in ns["w"].items()}
    v = {k: np.asarray(x, np.float64) for k, x in ns["v"].items()}
    real, z = np.asarray(ns["real"], np.float64), np.asarray(ns["z"], np.float64)
    a, b, c = ns["a"], ns["b"], ns["c"]

    def disc(x):
        return np.tanh(x @ w["h"]) @ w["o"]

    fake_scores = disc(z @ v["g"])
    want_d = 0.5 * np.mean((disc(real) - b) ** 2) + 0.5 * np.mean((fake_scores - a) ** 2)
    want_g = 0.5 * np.mean((fake_scores - c) ** 2)
    np.testing.assert_allclose([d_loss, g_loss], [want_d, want_g], rtol=1e-4, atol=1e-6)
    # the example's coding is the χ² one: b − c = 1 and b − a = 2
    assert (b - c, b - a) == (1.0, 2.0)


def test_readme_commands_match_ci():
    readme = _readme()
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    test_cmd = "pip install -e '.[test]' && python -m pytest -q -n 2"
    assert test_cmd in readme
    assert "pip install -q -e '.[test]' && python -m pytest -q -n 2" in ci
    main_cmd = "pip install -e '.[all]' && python -m experiments.mixture"
    assert main_cmd in readme


def test_readme_experiment_table_is_python_m_experiments():
    out = subprocess.run(
        [sys.executable, "-m", "experiments", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    readme = _readme()
    start = readme.index("<!-- experiments table: python -m experiments --markdown -->\n")
    end = readme.index("<!-- end of experiments table -->")
    table = readme[start:end].split("\n", 1)[1].strip()
    assert table == out, "README table differs: paste `python -m experiments --markdown`"
    for name in ("mixture", "welfert", "smoke", "small_variance", "paper"):
        assert f"`{name}`" in table


def test_readme_and_prepare_list_name_the_same_lsun_extra():
    from lsgan_jax.data import catalog

    readme = _readme()
    rows = [r for r in catalog.dataset_table().splitlines() if "`lsun/" in r]
    assert rows and all(catalog.LSUN_INSTALL in r for r in rows)
    assert "'.[lsun]'" in catalog.LSUN_INSTALL and "`.[lsun]`" in readme
