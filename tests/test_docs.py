"""The docs cite tests by name and nothing outside the repository."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _defined_tests() -> set[str]:
    names = set()
    for path in glob.glob(os.path.join(ROOT, "tests", "*.py")):
        with open(path) as f:
            names |= set(re.findall(r"^def (test_\w+)", f.read(), re.M))
    return names


def test_every_test_the_docs_cite_exists():
    defined = _defined_tests()
    for path in glob.glob(os.path.join(ROOT, "docs", "*.md")):
        with open(path) as f:
            text = f.read()
        cited = {a or b for a, b in re.findall(r"::(test_\w+)|`(test_\w+)`", text)}
        missing = sorted(cited - defined)
        assert not missing, f"{os.path.basename(path)} cites tests that do not exist: {missing}"


#: The developers' notes folder beside a checkout (a user's clone has none); spelled in parts so
#: that this file does not itself name the path it forbids.
_OUTSIDE_NOTES = re.compile(r"\b" + "shared" + r"/(research|DESIGN|design)")


def test_no_file_refers_to_the_developers_notes_folder():
    """A user's clone has only the repository; facts live in docs/."""
    offenders = []
    for top in ("lsgan_jax", "experiments", "benchmarks", "docs", "tests"):
        for path in glob.glob(os.path.join(ROOT, top, "**", "*.*"), recursive=True):
            if not path.endswith((".py", ".md")) or path.endswith("test_docs.py"):
                continue
            with open(path, encoding="utf-8") as f:
                if _OUTSIDE_NOTES.search(f.read()):
                    offenders.append(os.path.relpath(path, ROOT))
    for name in ("README.md", "RESULTS.md"):
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            if _OUTSIDE_NOTES.search(f.read()):
                offenders.append(name)
    assert not offenders, offenders
