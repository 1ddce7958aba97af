"""The README's code example runs as written."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_example_runs(capsys):
    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has no python example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    d_loss, g_loss = map(float, capsys.readouterr().out.split())
    assert d_loss > 0 and g_loss >= 0


def test_readme_commands_match_ci():
    readme = open(os.path.join(ROOT, "README.md")).read()
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    test_cmd = "pip install -e '.[test]' && python -m pytest -q -n 2"
    assert test_cmd in readme
    assert "pip install -q -e '.[test]' && python -m pytest -q -n 2" in ci
    assert "python -m experiments.mixture" in readme
