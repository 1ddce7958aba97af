"""Packaging: the core/extras split, lazy subpackages, py.typed, LICENSE, what the wheel holds."""

from __future__ import annotations

import ast
import configparser
import os
import re
import subprocess
import sys

import pytest

import lsgan_jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Optional third-party modules and the extra that installs each.
OPTIONAL = {
    "tensorflow_datasets": "data",
    "array_record": "data",
    "grain": "data",
    "PIL": "data",
    "sklearn": "data",
    "matplotlib": "viz",
    "tqdm": "viz",
    "chex": "test",
    "torch": "test",
    "tensorflow": "tf",
}
#: Distribution that provides each third-party module the library imports.
DISTRIBUTION = {
    "jax": "jax",
    "flax": "flax",
    "optax": "optax",
    "numpy": "numpy",
    "scipy": "scipy",
    "orbax": "orbax-checkpoint",
    "ml_collections": "ml-collections",
    "absl": "absl-py",
    "tensorboardX": "tensorboardX",
    "etils": "orbax-checkpoint",  # etils is a requirement of orbax-checkpoint (and of TFDS)
    "tensorflow_datasets": "tensorflow-datasets",
    "array_record": "array-record",
    "grain": "grain",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
}


def _python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    return cfg


def _names(block: str) -> list[str]:
    out = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(re.split(r"[<>=!~\[;]", line, maxsplit=1)[0].strip().lower())
    return out


def _extras() -> dict[str, list[str]]:
    section = _setup_cfg()["options.extras_require"]
    return {k: _names(v) for k, v in section.items()}


def _resolve(extra: str, extras: dict[str, list[str]]) -> set[str]:
    out = set()
    for name in extras[extra]:
        if name == "lsgan-jax":
            line = next(ln for ln in _setup_cfg()["options.extras_require"][extra].splitlines()
                        if ln.strip().startswith("lsgan-jax["))  # fmt: skip
            for sub in line.strip()[len("lsgan-jax[") : -1].split(","):
                out |= _resolve(sub.strip(), extras)
        else:
            out.add(name)
    return out


def test_import_lsgan_jax_imports_no_jax_and_exposes_subpackages_lazily():
    out = _python(
        "import sys, lsgan_jax as lj; assert 'jax' not in sys.modules, 'jax imported'; "
        "assert 'lsgan_jax.losses' not in sys.modules; "
        "print(lj.losses.PEARSON_CHI2); assert 'jax' in sys.modules; "
        "assert lj.losses is sys.modules['lsgan_jax.losses']; print(sorted(dir(lj)))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "LSCoding(a=-1.0, b=1.0, c=0.0)"
    for name in ("losses", "theory", "models", "training", "data"):
        assert name in out.stdout.splitlines()[1]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lsgan_jax.nope  # noqa: B018


def test_core_modules_import_none_of_the_optional_dependencies():
    core = [
        "lsgan_jax.losses",
        "lsgan_jax.theory",
        "lsgan_jax.errors",
        "lsgan_jax.models",
        "lsgan_jax.training",
        "lsgan_jax.training.runners",
        "lsgan_jax.training.checkpoint",
        "lsgan_jax.training.mixture_trainer",
        "lsgan_jax.studies",
        "lsgan_jax.data",
        "lsgan_jax.data.images",
        "lsgan_jax.metrics.mixture",
    ]
    code = (
        f"import sys\nfor m in {core!r}: __import__(m)\n"
        f"print(sorted(m for m in {sorted(OPTIONAL)!r} if m in sys.modules))"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "blocked, extra, code",
    [
        ("matplotlib", "viz", "import lsgan_jax.viz"),
        ("tensorflow_datasets", "data", "import lsgan_jax.data.builders"),
        ("tensorflow_datasets", "data", "from lsgan_jax.data import images; images.load_source('digits')"),
        ("grain", "data", "from lsgan_jax.data import images; images.synthetic_batches(2, 4, 1, 1, 0, process_count=1)"),
    ],
)  # fmt: skip
def test_a_missing_extra_is_one_line_naming_it(blocked, extra, code):
    out = _python(
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from lsgan_jax._extras import MissingExtraError\n"
        f"try:\n    {code}\nexcept MissingExtraError as e:\n    print(str(e))\n"
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'lsgan-jax[{extra}]'" in lines[0], out.stdout


def test_every_third_party_import_is_declared_in_core_or_an_extra():
    cfg = _setup_cfg()
    core = set(_names(cfg["options"]["install_requires"]))
    extras = _extras()
    declared = core | {n for names in extras.values() for n in names}
    used = set()
    for dirpath, _, files in os.walk(os.path.join(ROOT, "lsgan_jax")):
        for f in files:
            if not f.endswith(".py"):
                continue
            tree = ast.parse(open(os.path.join(dirpath, f)).read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    used |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    used.add(node.module.split(".")[0])
    third_party = {m for m in used if m not in sys.stdlib_module_names and m != "lsgan_jax"}
    assert third_party <= set(DISTRIBUTION), third_party - set(DISTRIBUTION)
    for module in third_party:
        dist = DISTRIBUTION[module].lower()
        assert dist in declared, (module, dist)
        if module in OPTIONAL:  # optional modules are not in the core
            assert dist not in core, (module, dist)
            assert dist in _resolve(OPTIONAL[module], extras) | _resolve("all", extras)
    assert "chex" not in core and "chex" in extras["test"]
    assert _resolve("all", extras) >= _resolve("data", extras) | _resolve("viz", extras)


def test_requirements_txt_is_the_core():
    core = _names(_setup_cfg()["options"]["install_requires"])
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        assert _names(f.read()) == core


def test_the_wheel_holds_lsgan_jax_only_with_py_typed_and_license():
    cfg = _setup_cfg()
    include = _names(cfg["options.packages.find"]["include"])
    assert include == ["lsgan_jax", "lsgan_jax.*"]  # no top-level `experiments` package
    assert "py.typed" in cfg["options.package_data"]["lsgan_jax"]
    assert os.path.isfile(os.path.join(ROOT, "lsgan_jax", "py.typed"))
    assert cfg["metadata"]["license"] == "Apache-2.0"
    assert cfg["metadata"]["license_files"].strip() == "LICENSE"
    with open(os.path.join(ROOT, "LICENSE")) as f:
        text = f.read()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
