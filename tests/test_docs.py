"""The documentation: the site builds with `mkdocs build --strict`, every result table is up to date with its
JSON (scripts/docs_tables.py --check), the README stays short, relative links point to files that exist, and
no help text or docstring names a docs file that does not exist."""
import glob
import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
PAGES = [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
DOCS_PATH = re.compile(r"\bdocs/[\w./-]*\.md\b")  # a documentation page


def run(args, **kwargs):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=300, **kwargs)


def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        pytest.skip("mkdocs / mkdocstrings not installed: pip install -e '.[docs]'")
    result = run(["-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(tmp_path / "site")])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert os.path.isfile(tmp_path / "site" / "api" / "index.html")


def test_result_tables_are_generated_and_up_to_date():
    result = run(["scripts/docs_tables.py", "--check"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_is_short():
    with open(README, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move the detail into docs/"


def relative_links(path):
    with open(path, encoding="utf-8") as f:
        text = FENCE.sub("", f.read())  # links inside code blocks are code
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http:, mailto:, an anchor on the same page
        yield target.split("#")[0]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_point_to_files_that_exist(page):
    missing = [t for t in relative_links(page) if not os.path.exists(os.path.join(os.path.dirname(page), t))]
    assert not missing, f"{os.path.relpath(page, ROOT)} links to missing files: {missing}"


def docs_paths_named_in_sources():
    sources = (glob.glob(os.path.join(ROOT, "few_shot", "**", "*.py"), recursive=True) +
               glob.glob(os.path.join(ROOT, "scripts", "**", "*.py"), recursive=True) +
               glob.glob(os.path.join(ROOT, "*.py")))
    for path in sorted(sources):
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                for name in DOCS_PATH.findall(line):
                    yield os.path.relpath(path, ROOT), number, name


def test_sources_and_help_name_only_docs_that_exist():
    missing = [f"{path}:{number}: {name}" for path, number, name in docs_paths_named_in_sources()
               if not os.path.exists(os.path.join(ROOT, name))]
    for script in ("few_shot_ptuning.py", "few_shot_finetune.py"):
        result = run([script, "--help"])
        assert result.returncode == 0, result.stderr
        missing += [f"{script} --help: {name}" for name in DOCS_PATH.findall(result.stdout)
                    if not os.path.exists(os.path.join(ROOT, name))]
    assert not missing, "docs paths that do not exist:\n" + "\n".join(missing)
