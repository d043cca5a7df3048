"""Explanations in zh-CN (alerts/explain.py). The rules' own sentences are checked where their
table tests raise them (test_departure, test_carry, test_rules, test_tamper); here the
translation itself."""

from __future__ import annotations

import pytest

from alerts.explain import explain, untranslated

CASES = [
    ("a scan used by another unit, and the nearest outside the window",
     "scan SN7 at t=11.0 s was used by track 1 (left at t=2.0 s); nearest scan outside that window:"
     " SN8 at t=16.2 s, 10.2 s after it left (window 60 s before to 10 s after)",
     "扫码 SN7（t=11.0 秒）已用于轨迹 1（其于 t=2.0 秒离开）；该时间窗外最近的扫码：SN8（t=16.2 秒），"
     "在其离开后 10.2 秒（时间窗为离开前 60 秒至离开后 10 秒）"),
    ("an entry just before a badge that admitted someone else",
     "badge B7 at t=3.0 s authorized track 2, track 3 (2 per badge); track 4 entered 1.5 s before"
     " badge B7 without a badge of its own",
     "门禁刷卡 B7（t=3.0 秒）已授权轨迹 2、轨迹 3（每次刷卡 2 人）；"
     "轨迹 4 在刷卡 B7 前 1.5 秒进入，本人未刷卡"),
    ("a live badge keeps its wall-clock time",
     "badge B-W4 at 2026-07-21T04:30:00.600+00:00 admits no one at closed hours",
     "门禁刷卡 B-W4（2026-07-21T04:30:00.600+00:00）在关闭时段不准许任何人进入"),
    ("a camera gone dark, its state and cause in Chinese",
     "camera dock is offline: no frames", "摄像头 dock 离线：没有画面"),
    ("a stalled camera keeps the decoder's own words",
     "camera dock is stalled: RTSP read timed out", "摄像头 dock 停滞（不再送来画面）：RTSP read timed out"),
    ("a camera back", "camera dock is live again", "摄像头 dock 已恢复画面"),
]  # fmt: skip


@pytest.mark.parametrize(("english", "chinese"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_explanations_read_in_chinese(english: str, chinese: str):
    assert untranslated(english) == []
    assert explain(english, "zh-CN") == chinese
    assert explain(english, "en") == english


def test_a_sentence_the_catalogue_lacks_stays_in_english_and_is_named():
    text = "person track 3 entered restricted zone cage at t=4.0s and stayed 2.0s (dwell threshold 1.0s);" \
           " a note from a newer rule"  # fmt: skip
    assert untranslated(text) == ["a note from a newer rule"]
    assert explain(text, "zh-CN") == (
        "人员轨迹 3 于 t=4.0 秒进入限制区域 cage，停留 2.0 秒（停留阈值 1.0 秒）；a note from a newer rule"
    )
    assert explain("", "zh-CN") == ""
