"""The server's refusal sentences (401/403/404/409/422/429/503 details) in English or zh-CN.

Routes and the case lifecycle keep raising plain English, the language of logs and tests;
one exception handler translates the `detail` on its way out, choosing the language from the
request's Accept-Language (the dashboard page sends the language its user picked). A sentence
is found by its English template, so a route needs nothing but its English to be translated,
and a sentence missing here still arrives, in English, rather than failing.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from alerts.explain import Catalog, Lang
from dashboard.auth import Permission

logger = logging.getLogger(__name__)

# English template -> zh-CN. `{name}` stands for a value copied as it came (ids keep quotes).
SENTENCES: dict[str, str] = {
    # sign-in and roles (dashboard.deps, routes/session.py)
    "sign in first": "请先登录",
    "the {role} role may not use {permission}": "{role}无权{permission}",
    "Wrong user name or password.": "用户名或密码错误。",
    "Too many failed sign-ins. Try again in {seconds} seconds.": "登录失败次数过多，请 {seconds} 秒后再试。",
    # factory scope (dashboard.deps)
    "camera {camera} belongs to another factory: an operator of factory {factory} sees only"
    " that factory's cameras":
        "摄像头 {camera} 属于其他工厂：工厂 {factory} 的操作员只能查看本工厂的摄像头",
    "alert {alert} is from another factory's camera: an operator of factory {factory} sees only"
    " that factory's alerts":
        "告警 {alert} 来自其他工厂的摄像头：工厂 {factory} 的操作员只能查看本工厂的告警",
    # cameras, live video, recordings
    "unknown camera {camera}": "未知摄像头 {camera}",
    "camera {camera} has not delivered a frame yet": "摄像头 {camera} 尚未送来画面",
    "the WebRTC offer could not be used: {reason}": "无法使用该 WebRTC 请求：{reason}",
    "this site records no video: recording is disabled in its site file": "本站点不录像：站点文件已关闭录像",
    "the {role} role may watch recordings but not download them": "{role}可以观看录像，但不能下载",
    "the end of the window must come after its start": "时间段的结束必须晚于开始",
    "the window may be at most {hours} h long": "时间段最长 {hours} 小时",
    "no recording of camera {camera} between {start} and {end}":
        "摄像头 {camera} 在 {start} 至 {end} 之间没有录像",
    "this site was started without a site file; zones cannot be saved":
        "本站点启动时未指定站点文件，无法保存区域",
    "unknown time zone {tz}: use an IANA name like Asia/Shanghai":
        "未知时区 {tz}：请使用 IANA 名称，如 Asia/Shanghai",
    # evidence (routes/evidence.py, alerts.evidence)
    "this service keeps no evidence (started without an evidence store)":
        "本服务未保存证据（启动时未配置证据存储）",
    "this installation does not record video": "本系统未录像",
    "alert {alert} has no snapshot (no frame of its camera near its time)":
        "告警 {alert} 没有快照（其摄像头在该时刻前后没有画面）",
    "alert {alert} has no wall-clock time to cut a clip at": "告警 {alert} 没有时钟时间，无法剪辑视频",
    "the recording of camera {camera} up to {until} is still being written; the clip can be cut in"
    " about {seconds} s": "摄像头 {camera} 截至 {until} 的录像仍在写入，约 {seconds} 秒后可剪辑",
    # alerts and their cases (routes/alerts.py, alerts.cases)
    "unknown alert {alert}": "未知告警 {alert}",
    "the {role} role may add notes to alert {alert} but not {action} it":
        "{role}只能为告警 {alert} 添加备注，不能{action}",
    "a note on alert {alert} needs some text": "告警 {alert} 的备注不能为空",
    "alert {alert} is already acknowledged": "告警 {alert} 已经确认",
    "alert {alert} is resolved: reopen it before acknowledging it again":
        "告警 {alert} 已结案：请先重新打开，再确认",
    "alert {alert} is new: acknowledge it before resolving it": "告警 {alert} 尚未确认：请先确认，再结案",
    "alert {alert} is resolved: reopen it before resolving it again":
        "告警 {alert} 已结案：请先重新打开，再结案",
    "resolving alert {alert} needs a resolution: one of {choices}":
        "结案告警 {alert} 需要结论，可选：{choices}",
    "resolving alert {alert} needs a note saying what was found": "结案告警 {alert} 需要备注说明调查结果",
    "alert {alert} is {state}, not resolved: there is nothing to reopen":
        "告警 {alert} 为{state}状态，并未结案：无需重新打开",
    "reopening alert {alert} needs a reason": "重新打开告警 {alert} 需要说明原因",
    "unknown action {action} on alert {alert}": "告警 {alert} 没有 {action} 这一操作",
    # FastAPI's own
    "Not Found": "未找到",
    "Method Not Allowed": "不支持该请求方法",
}  # fmt: skip

# The words that placeholders of these names carry (roles, permissions, case actions and
# states), in zh-CN; any other placeholder (an id, a time) is copied as it is.
WORDS: dict[str, dict[str, str]] = {
    "role": {"admin": "管理员", "officer": "海关关员", "operator": "工厂操作员"},
    "permission": {
        Permission.CAMERAS: "查看摄像头",
        Permission.LIVE_VIDEO: "观看实时视频",
        Permission.ALERTS: "查看告警",
        Permission.STATUS: "查看服务状态",
        Permission.SCANS: "上报扫码",
        Permission.CASE_NOTE: "添加备注",
        Permission.CASE_ACKNOWLEDGE: "确认告警",
        Permission.CASE_RESOLVE: "结案",
        Permission.CASE_REOPEN: "重新打开告警",
        Permission.EVIDENCE: "查看证据",
        Permission.EVIDENCE_EXPORT: "导出证据包",
        Permission.ZONES_EDIT: "编辑区域",
    },
    "action": {"acknowledge": "确认", "resolve": "结案", "reopen": "重新打开"},
    "state": {"new": "新建", "acknowledged": "已确认", "resolved": "已结案"},
}


_CATALOG = Catalog(SENTENCES, WORDS)
_SUPPORTED: dict[str, Lang] = {"en": "en", "zh": "zh-CN"}  # primary language subtag -> ours


def language(accept_language: str | None) -> Lang:
    """The supported language the client ranks highest; English when it names neither."""
    best: tuple[float, Lang] = (0.0, "en")
    for item in (accept_language or "").split(","):
        tag, _, params = item.strip().partition(";")
        lang = _SUPPORTED.get(tag.strip().lower().split("-")[0])
        if lang is None:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best[0]:
            best = (q, lang)
    return best[1]


def translate(sentence: str, lang: Lang) -> str:
    """`sentence` in `lang`; unchanged when it is English or not in the catalog."""
    if lang == "en":
        return sentence
    if (zh := _CATALOG.zh(sentence)) is not None:
        return zh
    logger.debug("no %s sentence for %r", lang, sentence)
    return sentence


async def _localized(request: Request, exc: HTTPException) -> Response:
    lang = language(request.headers.get("accept-language"))
    detail = exc.detail
    if isinstance(detail, str):
        detail = translate(detail, lang)
    elif isinstance(detail, list):
        detail = [translate(d, lang) if isinstance(d, str) else d for d in detail]
    headers = dict(exc.headers or {}) | {"Content-Language": lang, "Vary": "Accept-Language"}
    return await http_exception_handler(request, HTTPException(exc.status_code, detail, headers))


def install(app: FastAPI) -> None:
    """Answer every HTTP error of `app` in the language its request asks for."""
    app.add_exception_handler(HTTPException, _localized)  # type: ignore[arg-type]
