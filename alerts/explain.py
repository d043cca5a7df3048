"""An alert's explanation in the language of the officer who reads it.

The rules write their explanations in English, the language of logs, tests and the
CONTRACTS.md output: sentences joined by "; ". An officer reading Chinese gets each sentence
translated by its English template, as the dashboard translates its refusals
(`dashboard.i18n`): the template's `{name}` parts match whatever values the rule wrote
(track ids, serials, times) and are copied over, or put into Chinese where `WORDS` knows the
word. A sentence missing from the catalogue still arrives, in English, rather than failing;
`untranslated` lists such sentences, and the tests hold it empty for everything the rules say.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Literal

Lang = Literal["en", "zh-CN"]


def template_pattern(template: str) -> re.Pattern[str]:
    """A regular expression matching `template` with each `{name}` standing for any text."""
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile(
        "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.*?)" for i, p in enumerate(parts)) + "$"
    )


Words = Mapping[str, str] | Callable[[str], str]


class Catalog:
    """English templates and their zh-CN; `words[name]` puts a placeholder's value in zh-CN
    (a table of known values, or a function); other values are copied as they are."""

    def __init__(self, sentences: Mapping[str, str], words: Mapping[str, Words]):
        self._entries = [(template_pattern(en), zh) for en, zh in sentences.items()]
        self._words = words

    def zh(self, sentence: str) -> str | None:
        """`sentence` in zh-CN, or None when no template matches it."""
        for pattern, zh in self._entries:
            if m := pattern.match(sentence):
                return zh.format(**{k: self._word(k, v) for k, v in m.groupdict().items()})
        return None

    def _word(self, name: str, value: str) -> str:
        words = self._words.get(name)
        if words is None:
            return value
        return words(value) if callable(words) else words.get(value, value)


# English template -> zh-CN, for every sentence a rule or a camera's health check writes.
SENTENCES: dict[str, str] = {
    # unscanned departure (alerts.departure)
    "unit track {track} left station {station} (zone {zone}) at t={t} s,"
    " seen outside in {k} detections in a row":
        "单元轨迹 {track} 于 t={t} 秒离开工位 {station}（区域 {zone}），连续 {k} 次检测位于工位外",
    "unit track {track} left station {station} (zone {zone}) at t={t} s, carried: last seen at"
    " t={lost} s under person track {carrier}, not seen at the station again, and that person took"
    " it out of the station ({k} detections in a row, its position followed from the person's)":
        "单元轨迹 {track} 于 t={t} 秒离开工位 {station}（区域 {zone}），系被携带离开：最后一次出现于"
        " t={lost} 秒、位于人员轨迹 {carrier} 的范围内，此后未再出现在工位上，该人员将其带出工位"
        "（连续 {k} 次检测，其位置由该人员的位置推算）",
    "scan {serial} at {when} was used by track {track} (left at t={left} s)":
        "扫码 {serial}（{when}）已用于轨迹 {track}（其于 t={left} 秒离开）",
    "no scan at {station} between t={lo} s and t={hi} s":
        "工位 {station} 在 t={lo} 秒至 t={hi} 秒之间没有扫码",
    "nearest scan outside that window: {serial} at {when}, {off} s {side} it left"
    " (window {before} s before to {grace} s after)":
        "该时间窗外最近的扫码：{serial}（{when}），在其离开{side} {off} 秒"
        "（时间窗为离开前 {before} 秒至离开后 {grace} 秒）",
    # unauthorized entry (alerts.rules)
    "person track {track} entered restricted zone {zone} at t={t}s and stayed {stayed}s"
    " (dwell threshold {dwell}s)":
        "人员轨迹 {track} 于 t={t} 秒进入限制区域 {zone}，停留 {stayed} 秒（停留阈值 {dwell} 秒）",
    "last seen inside at t={t}s, not seen leaving": "最后一次于 t={t} 秒出现在区域内，未见其离开",
    "closed hours: entered at {local} {tz}, zone {zone} is open {hours}":
        "关闭时段：于 {local}（{tz}）进入，区域 {zone} 的开放时间为 {hours}",
    "badge {badge} at {when} admits no one at closed hours":
        "门禁刷卡 {badge}（{when}）在关闭时段不准许任何人进入",
    "badge {badge} at {when} authorized {who} ({n} per badge)":
        "门禁刷卡 {badge}（{when}）已授权{who}（每次刷卡 {n} 人）",
    "track {track} entered {off} s {side} badge {badge} without a badge of its own":
        "轨迹 {track} 在刷卡 {badge} {side} {off} 秒进入，本人未刷卡",
    "no badge at zone {zone} within {w} s of the entry": "区域 {zone} 在进入前后 {w} 秒内没有门禁刷卡",
    "nearest badge: {badge} at {when}, the entry {off} s {side} it":
        "最近的门禁刷卡：{badge}（{when}），进入发生在其{side} {off} 秒",
    # camera health (bondwatch.service, streams.tamper)
    "camera {camera} is {state}: {error}": "摄像头 {camera} {state}：{error}",
    "camera {camera} is live again": "摄像头 {camera} 已恢复画面",
    "lens covered or blacked out: {share} of the picture is one flat tone (mean grey {grey})":
        "镜头被遮挡或涂黑：画面中 {share} 为同一平坦色调（平均灰度 {grey}）",
    "view moved: {share} of the picture no longer matches the view learned at start":
        "视角移动：画面中 {share} 与启动时学到的视角不再吻合",
    "heavy blur: sharpness at {share} of this camera's normal":
        "严重模糊：清晰度仅为该摄像头正常水平的 {share}",
    "frozen picture: it changes by {change} grey levels between samples, below its own sensor"
    " noise ({noise})":
        "画面冻结：两次采样之间仅变化 {change} 个灰度级，低于其自身传感器噪声（{noise}）",
}  # fmt: skip

WORDS: dict[str, Words] = {
    "side": {"before": "前", "after": "后"},
    "state": {"offline": "离线", "stalled": "停滞（不再送来画面）"},
    "error": {"no frames": "没有画面"},
    "when": lambda v: re.sub(r"^t=(\S+) s$", r"t=\1 秒", v),  # video time; a wall-clock ISO stays
    "who": lambda v: re.sub(r"\btrack (\d+)", r"轨迹 \1", v.replace(", ", "、")),
}

CATALOG = Catalog(SENTENCES, WORDS)
SEPARATOR = "; "


def explain(explanation: str, lang: str) -> str:
    """`explanation` in `lang` (zh-CN or English); sentences the catalogue lacks stay in English."""
    if lang != "zh-CN" or not explanation:
        return explanation
    return "；".join(CATALOG.zh(s) or s for s in explanation.split(SEPARATOR))


def untranslated(explanation: str) -> list[str]:
    """The sentences of `explanation` that no template matches."""
    return [s for s in explanation.split(SEPARATOR) if s and CATALOG.zh(s) is None]
