"""The house rules of STYLE.md, checked by reading imports: one-way stages, one border each."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["streams", "detectors", "alerts", "dashboard"]
# The composition roots (the processes: `run`, `worker`, `web`, `replay` and the CLI) may import
# every stage; the rest of the shared package none.
COMPOSITION_ROOT = {
    "bondwatch/cli.py", "bondwatch/service.py", "bondwatch/replay.py", "bondwatch/worker.py",
    "bondwatch/web.py",
}  # fmt: skip


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("stage", STAGES)
def test_stages_import_only_earlier_stages(stage):
    later = set(STAGES[STAGES.index(stage) + 1 :]) | {"sim"}
    for path in sources(stage):
        bad = imports(path) & later
        assert not bad, f"{path.relative_to(ROOT)} imports later stage(s) {sorted(bad)}"


def test_shared_package_imports_no_stage():
    for path in sources("bondwatch"):
        rel = str(path.relative_to(ROOT))
        if rel in COMPOSITION_ROOT:
            continue
        bad = imports(path) & set(STAGES)
        assert not bad, f"{rel} imports stage(s) {sorted(bad)}"


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("ultralytics", {"detectors/yolo.py", "detectors/training.py"}),
        ("aiortc", {"dashboard/webrtc.py"}),
        # aiortc speaks in av.VideoFrame, so its border module builds them too.
        ("av", {"streams/source.py", "sim/video.py", "dashboard/webrtc.py"}),
    ],
)
def test_one_module_per_heavy_library(library, allowed):
    users = {
        str(p.relative_to(ROOT))
        for pkg in [*STAGES, "bondwatch", "sim"]
        for p in sources(pkg)
        if library in imports(p)
    }
    assert users <= allowed, f"{library} imported by {sorted(users - allowed)}"
