"""References inside the repository resolve: documents cited exist, extras named exist.

A docstring that points at a file the repository does not hold (a team note, a design
document kept elsewhere) leaves the reader with nothing; an error message that tells the
user to ``pip install "edgekit[name]"`` for an extra pyproject.toml does not define fails
the moment it is followed.
"""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for p in (ROOT / "edgekit").rglob("*") if p.is_file() and p.suffix in {".py", ".yaml", ".yml",
                                                                                           ".md", ".txt", ".json"})
CITING = [p for p in SOURCES + sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
          + sorted((ROOT / "benchmarks").glob("*.md")) + sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
          if p != Path(__file__).resolve()]
_MD_REF = re.compile(r"(?<![\w/.-])((?:docs|benchmarks)/[\w./-]+\.md)\b")
_TEAM_NOTE = re.compile(r"(?<![\w/.-])(?:methods|findings|DESIGN)\.md\b")
_EXTRA_REF = re.compile(r"edgekit\[([^\]]+)\]")
_PLACEHOLDERS = {"extra", "EXTRA", "..."}


def _extras() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def test_every_cited_markdown_file_exists() -> None:
    missing = []
    for path in CITING:
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for ref in _MD_REF.findall(line):
                if not (ROOT / ref).is_file():
                    missing.append(f"{path.relative_to(ROOT)}:{n}: {ref}")
    assert not missing, "documents cited but not in the repository:\n" + "\n".join(missing)


def test_no_team_notes_are_cited() -> None:
    """The team's notes (methods, findings, design) live outside the repository; code cites the
    papers, or the docs/ folder by its path."""
    bad = [f"{p.relative_to(ROOT)}:{n}" for p in CITING
           for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if _TEAM_NOTE.search(line)]
    assert not bad, bad


def _extra_args(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, extra) for every ``require(module, extra)`` and ``Need(modules, package, extra)`` call."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        pos = {"require": 1, "Need": 2}.get(name or "")
        if pos is None:
            continue
        arg = next((k.value for k in node.keywords if k.arg == "extra"), None)
        if arg is None and len(node.args) > pos:
            arg = node.args[pos]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.append((node.lineno, arg.value))
    return found


def test_named_extras_exist_in_pyproject() -> None:
    extras = _extras()
    bad = []
    for path in SOURCES + [ROOT / "README.md"]:
        text = path.read_text(errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            for group in _EXTRA_REF.findall(line):
                if "{" in group:  # an f-string filling in a checked name
                    continue
                bad += [f"{path.relative_to(ROOT)}:{n}: edgekit[{name}]" for name in group.split(",")
                        if name.strip() not in extras | _PLACEHOLDERS]
        if path.suffix == ".py":
            bad += [f"{path.relative_to(ROOT)}:{n}: extra {name!r}" for n, name in _extra_args(ast.parse(text))
                    if name not in extras]
    assert not bad, f"extras not defined in pyproject.toml ({', '.join(sorted(extras))}):\n" + "\n".join(bad)


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The patterns match the mistakes they guard against (so a passing run means something)."""
    assert _MD_REF.findall("see docs/findings.md item 2 and benchmarks/x.md") == ["docs/findings.md", "benchmarks/x.md"]
    assert _TEAM_NOTE.findall("(methods.md 1.1, see DESIGN.md; docs/findings.md)") == ["methods.md", "DESIGN.md"]
    assert _EXTRA_REF.findall('pip install "edgekit[prune]"') == ["prune"]
    tree = ast.parse('tp = require("torch_pruning", "prune")\nNeed(("x",), "x", extra="nope")')
    assert [name for _, name in _extra_args(tree)] == ["prune", "nope"]
    assert "prune" not in _extras()
