"""Alert scoring as in CONTRACTS.md section 5: one-to-one matching within a time tolerance."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOLERANCE_S = 2.0


@dataclass(frozen=True)
class Score:
    alerts: int
    truth: int
    matched: int

    @property
    def precision(self) -> float:
        return self.matched / self.alerts if self.alerts else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.truth if self.truth else 1.0


def _key(a: dict[str, Any]) -> tuple[str, str, str]:
    return (a["type"], a["camera"], a.get("zone") or "")


def score(
    alerts: list[dict[str, Any]], truth: list[dict[str, Any]], tolerance_s: float = TOLERANCE_S
) -> Score:
    """Greedy one-to-one matching by closest time, per (type, camera, zone)."""
    pairs = sorted(
        (abs(a["t"] - g["t"]), i, j)
        for i, a in enumerate(alerts)
        for j, g in enumerate(truth)
        if _key(a) == _key(g) and abs(a["t"] - g["t"]) <= tolerance_s
    )
    used_a: set[int] = set()
    used_g: set[int] = set()
    for _, i, j in pairs:
        if i not in used_a and j not in used_g:
            used_a.add(i)
            used_g.add(j)
    return Score(alerts=len(alerts), truth=len(truth), matched=len(used_a))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
