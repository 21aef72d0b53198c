"""The documentation stays true: README size, links, the generated settings table, runnable examples.

A fenced block opened with ```bash example in README.md or docs/*.md is run as a shell script from a
scratch folder that mirrors the checkout (plus a small `photos/` folder), against the test database,
and must exit 0. Keep such blocks to commands that work offline and change nothing.
"""
import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

from tests.images import encode, photo_like

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOC_FILES = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_BYTES = 10 * 1024

EXAMPLE_BLOCK = re.compile(r"^```bash example[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def _config_docs():
    spec = importlib.util.spec_from_file_location("config_docs", ROOT / "scripts" / "config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _examples():
    found = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for match in EXAMPLE_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(pytest.param(match.group(1), id=f"{path.relative_to(ROOT)}:{line}"))
    return found


def _anchors(text):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen, anchors = {}, set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_readme_is_at_most_10_kb():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_and_headings_that_exist(path):
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text(encoding="utf-8")):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)


def test_readme_lists_every_management_command():
    readme = README.read_text(encoding="utf-8")
    commands = sorted(p.stem for p in ROOT.glob("*/management/commands/*.py") if not p.stem.startswith("_"))
    assert commands, "no management commands found"
    missing = [name for name in commands if f"| `{name}` |" not in readme]
    assert not missing, f"README.md's command table lacks {missing}"


def test_settings_table_is_current():
    config_docs = _config_docs()
    written = config_docs.current_table(config_docs.DOC.read_text(encoding="utf-8"))
    assert written is not None, "docs/configuration.md lost its settings-table markers"
    assert written == config_docs.render_table(), (
        "docs/configuration.md's settings table is stale: run .venv/bin/python scripts/config_docs.py")


def test_settings_table_has_a_meaning_for_every_setting():
    rows = [row for source in _config_docs().SOURCES for row in _config_docs().rows_for(source)]
    assert len(rows) > 50
    unexplained = [row.variable for row in rows if not row.meaning]
    assert not unexplained, f"add a `#:` comment to {unexplained}"


def test_settings_table_follows_the_code(tmp_path, monkeypatch):
    """A setting added to a default_settings.py shows up in the table, with its `#:` meaning."""
    config_docs = _config_docs()
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "default_settings.py").write_text(
        "from sceneimg_site.env import env_int, env_str\n"
        "#: how many widgets\n"
        'SCENEIMG_WIDGETS = env_int("SCENEIMG_WIDGETS", 3)\n'
        'SCENEIMG_HOST = env_str("SCENEIMG_HOST", env_str("OTHER_HOST", "http://x"))  #: where | it is\n'
    )
    monkeypatch.setattr(config_docs, "ROOT", tmp_path)
    monkeypatch.setattr(config_docs, "SOURCES", ("demo/default_settings.py",))
    table = config_docs.render_table()
    assert "| `SCENEIMG_WIDGETS` | integer | `3` | how many widgets | `demo/default_settings.py` |" in table
    assert "| `SCENEIMG_HOST` (else `OTHER_HOST`) | text | `http://x` | where \\| it is |" in table


@pytest.fixture
def docs_checkout(tmp_path):
    """A scratch folder that looks like the checkout (links to its files) with a photos/ folder."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".git", "var", "photos"):
            (folder / entry.name).symlink_to(entry)
    photos = folder / "photos"
    (photos / "more").mkdir(parents=True)
    (photos / "room.jpg").write_bytes(encode(photo_like(640, 480, 1), "JPEG"))
    (photos / "more" / "kitchen.png").write_bytes(encode(photo_like(480, 640, 2), "PNG"))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")
    return folder


def test_there_are_runnable_examples():
    assert len(_examples()) >= 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("script", _examples())
def test_example_runs(script, docs_checkout, worker_env):
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=docs_checkout, env=worker_env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
