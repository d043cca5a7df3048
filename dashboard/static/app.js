// BondWatch dashboard: camera tiles over WebRTC and a live alert list over a WebSocket.
// Vanilla JS, no build step: the page must work on a workshop LAN with no internet.
"use strict";

const I18N = {
  "zh-CN": {
    cameras: "摄像头",
    alerts: "告警",
    no_alerts: "暂无告警",
    conn_connecting: "连接中",
    conn_open: "实时",
    conn_closed: "重连中",
    unauthorized_entry: "未授权进入",
    unscanned_departure: "未扫码离开",
    camera_offline: "摄像头离线",
    camera_online: "摄像头恢复",
    state_connecting: "连接中",
    state_live: "在线",
    state_stalled: "卡顿",
    state_offline: "离线",
    state_unknown: "未知",
    camera: "摄像头",
    zone: "区域",
    station: "工位",
    track: "目标",
    confidence: "置信度",
    zones: "区域",
    video_connecting: "正在连接视频…",
    video_lost: "视频中断，正在重连…",
    cameras_summary: (live, all) => `${live}/${all} 在线`,
    sign_out: "退出登录",
    role_admin: "管理员",
    role_officer: "海关关员",
    role_operator: "操作员",
    all_types: "全部类型",
    all_states: "全部状态",
    case_new: "新",
    case_acknowledged: "已确认",
    case_resolved: "已处理",
    close: "关闭",
    history: "处理记录",
    time: "时间",
    members: "合并告警",
    members_count: (n) => `${n} 条`,
    resolution: "结论",
    res_confirmed_violation: "确认违规",
    res_false_alarm: "误报",
    res_explained: "已说明",
    step_raised: "产生告警",
    step_grouped: "合并",
    step_acknowledge: "确认",
    step_resolve: "处理",
    step_reopen: "重新打开",
    step_note: "备注",
    act_acknowledge: "确认",
    act_resolve: "处理",
    act_reopen: "重新打开",
    act_note: "添加备注",
    text_placeholder: "备注 / 处理说明 / 重新打开原因",
    need_note: "处理告警需要填写说明。",
    need_reason: "重新打开需要填写原因。",
    need_text: "备注不能为空。",
    refused: "当前角色无权执行此操作。",
    invalid: "请求内容不完整，请检查后重试。",
    failed: (status) => `操作失败（${status}）。`,
    load_failed: "无法加载该告警。",
  },
  en: {
    cameras: "Cameras",
    alerts: "Alerts",
    no_alerts: "No alerts",
    conn_connecting: "Connecting",
    conn_open: "Live",
    conn_closed: "Reconnecting",
    unauthorized_entry: "Unauthorized entry",
    unscanned_departure: "Unscanned departure",
    camera_offline: "Camera offline",
    camera_online: "Camera back online",
    state_connecting: "Connecting",
    state_live: "Live",
    state_stalled: "Stalled",
    state_offline: "Offline",
    state_unknown: "Unknown",
    camera: "Camera",
    zone: "Zone",
    station: "Station",
    track: "Track",
    confidence: "Conf.",
    zones: "Zones",
    video_connecting: "Connecting video…",
    video_lost: "Video lost, reconnecting…",
    cameras_summary: (live, all) => `${live}/${all} live`,
    sign_out: "Sign out",
    role_admin: "Administrator",
    role_officer: "Customs officer",
    role_operator: "Operator",
    all_types: "All types",
    all_states: "All states",
    case_new: "New",
    case_acknowledged: "Acknowledged",
    case_resolved: "Resolved",
    close: "Close",
    history: "History",
    time: "Time",
    members: "Grouped alerts",
    members_count: (n) => String(n),
    resolution: "Resolution",
    res_confirmed_violation: "Confirmed violation",
    res_false_alarm: "False alarm",
    res_explained: "Explained",
    step_raised: "Raised",
    step_grouped: "Grouped",
    step_acknowledge: "Acknowledged",
    step_resolve: "Resolved",
    step_reopen: "Reopened",
    step_note: "Note",
    act_acknowledge: "Acknowledge",
    act_resolve: "Resolve",
    act_reopen: "Reopen",
    act_note: "Add note",
    text_placeholder: "Note / finding / reason to reopen",
    need_note: "Resolving needs a note saying what was found.",
    need_reason: "Reopening needs a reason.",
    need_text: "A note needs some text.",
    refused: "Your role may not take this action.",
    invalid: "The request is incomplete; check it and try again.",
    failed: (status) => `The action failed (${status}).`,
    load_failed: "The alert could not be loaded.",
  },
};
const LANG_KEY = "bondwatch.lang";
const MAX_ALERTS = 300;
const HEALTH_REFRESH_MS = 5000;

let lang = I18N[localStorage.getItem(LANG_KEY)] ? localStorage.getItem(LANG_KEY) : "zh-CN";
const alerts = new Map(); // id -> alert, rendered newest first by `ts`
const tiles = new Map(); // camera id -> CameraTile
let cameras = [];
let me = null; // {name, role} of the signed-in user
let alertSocketState = "connecting";

function t(key, ...args) {
  const value = I18N[lang][key] ?? I18N["zh-CN"][key] ?? key;
  return typeof value === "function" ? value(...args) : value;
}

function setLang(next) {
  lang = I18N[next] ? next : "zh-CN";
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.classList.toggle("active", b.dataset.lang === lang);
  }
  setConn(alertSocketState);
  renderUser();
  for (const tile of tiles.values()) tile.render();
  renderCameraSummary();
  renderFilters();
  renderAlerts();
  renderCase();
  tickClock();
}

// ---------- session: every request is signed in; losing the session means the login page ----------

function toLogin() {
  location.replace("/login");
}

async function api(path, options) {
  const res = await fetch(path, options);
  if (res.status === 401) {
    toLogin();
    throw new Error(`${path}: signed out`);
  }
  return res;
}

function renderUser() {
  document.getElementById("user-name").textContent = me ? me.name : "";
  document.getElementById("user-role").textContent = me ? t(`role_${me.role}`) : "";
}

async function loadMe() {
  const res = await api("/api/me");
  if (!res.ok) throw new Error(`GET /api/me: ${res.status}`);
  me = await res.json();
  renderUser();
}

async function signOut() {
  await fetch("/api/logout", { method: "POST" }).catch(() => {});
  toLogin();
}

// ---------- clock and connection indicator ----------

function tickClock() {
  document.getElementById("clock").textContent = new Date().toLocaleString(lang, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
}

function setConn(state) {
  alertSocketState = state;
  const el = document.getElementById("conn");
  el.dataset.state = state;
  document.getElementById("conn-label").textContent = t(`conn_${state}`);
}

// ---------- cameras ----------

class CameraTile {
  constructor(camera) {
    this.camera = camera;
    const node = document.getElementById("tile-template").content.firstElementChild.cloneNode(true);
    node.dataset.camera = camera.id;
    this.el = node;
    this.video = node.querySelector("video");
    this.video.dataset.camera = camera.id;
    this.status = node.querySelector(".video-status");
    this.pc = null;
    this.retryMs = 1000;
    this.lastFrames = 0;
    this.recentFrames = 0;
    this.stallChecks = 0;
    this.videoState = "connecting";
    this.video.addEventListener("playing", () => {
      this.videoState = "playing";
      this.render();
    });
    this.render();
    setInterval(() => this.measure(), 1000);
  }

  framesDecoded() {
    const q = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality() : null;
    return q ? q.totalVideoFrames : this.video.webkitDecodedFrameCount || 0;
  }

  update(camera) {
    this.camera = camera;
    this.render();
  }

  render() {
    const c = this.camera;
    const state = c.health ? c.health.state : "unknown";
    this.el.querySelector(".name").textContent = c.name;
    this.el.querySelector(".cam-id").textContent = c.id;
    const badge = this.el.querySelector(".health");
    badge.dataset.state = state;
    badge.textContent = t(`state_${state}`);
    const zones = c.zones.map((z) => z.id).join(", ");
    this.el.querySelector(".zones").textContent = zones ? `${t("zones")}: ${zones}` : "";
    const stats = [];
    if (c.health && state === "live" && c.health.fps !== null) stats.push(`${c.health.fps.toFixed(1)} fps`);
    if (this.videoState === "playing" && state !== "offline") {
      stats.push(`${this.video.videoWidth}×${this.video.videoHeight}`);
    }
    if (c.health && state !== "live" && c.health.error) stats.push(c.health.error);
    const statsEl = this.el.querySelector(".stats");
    statsEl.textContent = stats.join(" · ");
    statsEl.classList.toggle("error", Boolean(c.health && state !== "live" && c.health.error));
    this.status.textContent =
      this.videoState === "playing" ? "" : t(this.videoState === "lost" ? "video_lost" : "video_connecting");
  }

  measure() {
    const frames = this.framesDecoded();
    this.recentFrames = Math.max(0, frames - this.lastFrames);
    this.lastFrames = frames;
    if (frames > 0 && this.recentFrames > 0) {
      this.videoState = "playing";
      this.stallChecks = 0;
      this.retryMs = 1000;
    } else if (this.videoState === "playing" && ++this.stallChecks >= 10) {
      // Connected but no picture for 10 s: the peer is dead even if ICE has not noticed yet.
      this.restart();
    }
    this.render();
  }

  async start() {
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.ontrack = (ev) => {
      this.video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      const s = pc.connectionState;
      if (s === "failed" || s === "closed") this.restart();
      if (s === "disconnected") setTimeout(() => {
        if (this.pc === pc && pc.connectionState === "disconnected") this.restart();
      }, 5000);
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringDone(pc, 3000);
      const res = await api("/api/webrtc/offer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ camera: this.camera.id, sdp: pc.localDescription.sdp, type: "offer" }),
      });
      if (!res.ok) throw new Error(`offer refused: ${res.status}`);
      await pc.setRemoteDescription(await res.json());
    } catch (err) {
      console.warn(`camera ${this.camera.id}:`, err);
      if (this.pc === pc) this.restart();
    }
  }

  restart() {
    if (this.pc) this.pc.close();
    this.pc = null;
    this.videoState = "lost";
    this.stallChecks = 0;
    this.render();
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 15000);
    setTimeout(() => { if (!this.pc) this.start(); }, wait);
  }
}

function iceGatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

async function loadCameras() {
  const res = await api("/api/cameras");
  if (!res.ok) throw new Error(`GET /api/cameras: ${res.status}`);
  cameras = await res.json();
  const grid = document.getElementById("grid");
  for (const cam of cameras) {
    let tile = tiles.get(cam.id);
    if (tile) {
      tile.update(cam);
    } else {
      tile = new CameraTile(cam);
      tiles.set(cam.id, tile);
      grid.appendChild(tile.el);
      tile.start();
    }
  }
  renderCameraSummary();
}

function renderCameraSummary() {
  const live = cameras.filter((c) => c.health && c.health.state === "live").length;
  document.getElementById("camera-summary").textContent = t("cameras_summary", live, cameras.length);
}

// ---------- alerts ----------

function alertTime(a) {
  return a.ts ? new Date(a.ts) : null;
}

function formatTime(date) {
  if (!date) return "";
  const sameDay = date.toDateString() === new Date().toDateString();
  const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  if (!sameDay) Object.assign(opts, { month: "2-digit", day: "2-digit" });
  return date.toLocaleString(lang, opts);
}

function addAlerts(list, fresh) {
  for (const a of list) {
    const known = alerts.get(a.id);
    // A pushed alert carries no case fields: keep what the list already knows until its case is read.
    alerts.set(a.id, { ...known, ...a, state: a.state || known?.state || "new",
      group_id: a.group_id || known?.group_id || a.id, fresh: known ? known.fresh : fresh });
  }
  const sorted = [...alerts.values()].sort((x, y) => (alertTime(y) || 0) - (alertTime(x) || 0));
  for (const a of sorted.slice(MAX_ALERTS)) alerts.delete(a.id);
  renderAlerts();
}

const ALERT_TYPES = ["unauthorized_entry", "unscanned_departure", "camera_offline", "camera_online"];
const CASE_STATES = ["new", "acknowledged", "resolved"];
const RESOLUTIONS = ["confirmed_violation", "false_alarm", "explained"];

function fillSelect(select, values, allKey, labelPrefix) {
  const current = select.value;
  select.replaceChildren(
    new Option(t(allKey), ""),
    ...values.map((v) => new Option(t(`${labelPrefix}${v}`), v)),
  );
  select.value = values.includes(current) ? current : "";
}

function renderFilters() {
  fillSelect(document.getElementById("filter-type"), ALERT_TYPES, "all_types", "");
  fillSelect(document.getElementById("filter-state"), CASE_STATES, "all_states", "case_");
  const res = document.getElementById("act-resolution");
  const current = res.value;
  res.replaceChildren(...RESOLUTIONS.map((r) => new Option(t(`res_${r}`), r)));
  if (current) res.value = current;
}

function setStateBadge(el, state) {
  el.dataset.state = state || "new";
  el.textContent = t(`case_${state || "new"}`);
}

// Members of a case (group_id != id) fold under their head when the head is in the list; a
// member whose head fell off the list stands on its own.
function foldedHeads() {
  const sorted = [...alerts.values()].sort((x, y) => (alertTime(y) || 0) - (alertTime(x) || 0));
  const members = new Map();
  const heads = [];
  for (const a of sorted) {
    if (a.group_id && a.group_id !== a.id && alerts.has(a.group_id)) {
      members.set(a.group_id, (members.get(a.group_id) || 0) + 1);
    } else {
      heads.push(a);
    }
  }
  return { heads, members };
}

function renderAlerts() {
  const list = document.getElementById("alert-list");
  const tpl = document.getElementById("alert-template").content.firstElementChild;
  const typeFilter = document.getElementById("filter-type").value;
  const stateFilter = document.getElementById("filter-state").value;
  const { heads, members } = foldedHeads();
  const shown = heads.filter(
    (a) => (!typeFilter || a.type === typeFilter) && (!stateFilter || a.state === stateFilter),
  );
  const nodes = shown.map((a) => {
    const li = tpl.cloneNode(true);
    li.dataset.type = a.type;
    li.dataset.id = a.id;
    li.tabIndex = 0;
    if (a.fresh) li.classList.add("fresh");
    li.querySelector(".alert-type").textContent = t(a.type);
    const folded = members.get(a.id) || 0;
    li.querySelector(".alert-group").textContent = folded ? `+${folded}` : "";
    setStateBadge(li.querySelector(".alert-state"), a.state);
    const time = li.querySelector(".alert-time");
    const at = alertTime(a);
    time.textContent = formatTime(at);
    if (at) time.dateTime = at.toISOString();
    const metaEl = li.querySelector(".alert-meta");
    for (const m of alertMeta(a)) {
      const span = document.createElement("span");
      span.textContent = m;
      metaEl.appendChild(span);
    }
    li.querySelector(".alert-explanation").textContent = a.explanation || "";
    li.addEventListener("click", () => openCase(a.id));
    li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openCase(a.id); });
    a.fresh = false;
    return li;
  });
  list.replaceChildren(...nodes);
  const count = document.getElementById("alert-count");
  count.textContent = String(alerts.size);
  count.classList.toggle("zero", alerts.size === 0);
  document.getElementById("alert-empty").hidden = nodes.length > 0;
}

function alertMeta(a) {
  const meta = [];
  const cam = cameras.find((c) => c.id === a.camera);
  meta.push(`${t("camera")} ${cam ? cam.name : a.camera}`);
  if (a.zone) meta.push(`${t("zone")} ${a.zone}`);
  if (a.station && a.station !== a.zone) meta.push(`${t("station")} ${a.station}`);
  if (a.track !== undefined && a.track !== null) meta.push(`${t("track")} #${a.track}`);
  if (a.confidence !== undefined && a.confidence !== null) {
    meta.push(`${t("confidence")} ${a.confidence.toFixed(2)}`);
  }
  return meta;
}

// ---------- the case panel: one alert's case, its history and the actions the role may take ----------

let openCaseData = null; // the CaseOut shown in the panel, null when closed

function canDecide() {
  return Boolean(me) && (me.role === "admin" || me.role === "officer");
}

function longTime(iso) {
  return new Date(iso).toLocaleString(lang, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
}

function showCaseError(message) {
  document.getElementById("case-error").textContent = message;
}

function renderCase() {
  const c = openCaseData;
  if (!c) return;
  const a = c.alert;
  document.getElementById("case-title").textContent = t(a.type);
  setStateBadge(document.getElementById("case-state"), c.state);
  const fields = [[t("time"), a.ts ? longTime(a.ts) : ""], ...alertMeta(a).map((m) => [m, ""])];
  fields.push([t("members"), t("members_count", c.members.length)]);
  if (c.state === "resolved" && c.resolution) fields.push([t("resolution"), t(`res_${c.resolution}`)]);
  const fieldsEl = document.getElementById("case-fields");
  fieldsEl.replaceChildren(...fields.map(([k, v]) => {
    const div = document.createElement("div");
    div.textContent = v ? `${k}: ${v}` : k;
    return div;
  }));
  fieldsEl.dataset.members = String(c.members.length);
  document.getElementById("case-explanation").textContent = a.explanation || "";
  document.getElementById("case-history").replaceChildren(...c.history.map((h) => {
    const li = document.createElement("li");
    li.dataset.action = h.action;
    const time = document.createElement("time");
    time.dateTime = h.at;
    time.textContent = longTime(h.at);
    const what = document.createElement("span");
    what.className = "step-action";
    what.textContent = t(`step_${h.action}`) + (h.resolution ? ` · ${t(`res_${h.resolution}`)}` : "");
    const who = document.createElement("span");
    who.className = "step-actor";
    who.textContent = h.actor;
    const note = document.createElement("div");
    note.className = "step-note";
    note.textContent = h.note || "";
    li.append(time, what, who, note);
    return li;
  }));
  const decide = canDecide();
  document.getElementById("act-acknowledge").hidden = !(decide && c.state === "new");
  document.getElementById("act-resolve").hidden = !(decide && c.state === "acknowledged");
  document.getElementById("act-resolution").hidden = !(decide && c.state === "acknowledged");
  document.getElementById("act-reopen").hidden = !(decide && c.state === "resolved");
  document.getElementById("case-text").placeholder = t("text_placeholder");
}

async function openCase(alertId) {
  const backdrop = document.getElementById("case-backdrop");
  showCaseError("");
  document.getElementById("case-text").value = "";
  try {
    const res = await api(`/api/alerts/${encodeURIComponent(alertId)}`);
    if (!res.ok) throw new Error(`GET /api/alerts/${alertId}: ${res.status}`);
    openCaseData = await res.json();
  } catch (err) {
    console.warn(err);
    openCaseData = null;
    return;
  }
  backdrop.hidden = false;
  renderCase();
  applyCase(openCaseData);
}

function closeCase() {
  openCaseData = null;
  document.getElementById("case-backdrop").hidden = true;
}

// The list learns a case's new state from the action's answer: head and members alike.
function applyCase(c) {
  for (const a of [c.alert, ...c.members]) {
    const known = alerts.get(a.id);
    if (known) Object.assign(known, { state: c.state, group_id: c.id });
  }
  renderAlerts();
}

async function errorSentence(res) {
  const body = await res.json().catch(() => null);
  if ((res.status === 409 || res.status === 403) && body && typeof body.detail === "string") {
    return body.detail.charAt(0).toUpperCase() + body.detail.slice(1) + ".";
  }
  if (res.status === 403) return t("refused");
  if (res.status === 422) return t("invalid");
  return t("failed", res.status);
}

async function act(action) {
  const c = openCaseData;
  if (!c) return;
  const text = document.getElementById("case-text").value.trim();
  const needs = { resolve: "need_note", reopen: "need_reason", notes: "need_text" };
  if (needs[action] && !text) return showCaseError(t(needs[action]));
  const body = {
    acknowledge: { note: text },
    resolve: { resolution: document.getElementById("act-resolution").value, note: text },
    reopen: { reason: text },
    notes: { text },
  }[action];
  showCaseError("");
  const res = await api(`/api/alerts/${encodeURIComponent(c.id)}/${action}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) {
    const sentence = await errorSentence(res);
    // 409: someone else moved the case meanwhile; show where it stands now, with the reason.
    if (res.status === 409) await openCase(c.id);
    return showCaseError(sentence);
  }
  openCaseData = await res.json();
  document.getElementById("case-text").value = "";
  renderCase();
  applyCase(openCaseData);
}

// A pushed alert may have joined an open case: read its case to place it in the list.
async function learnCase(alertId) {
  const res = await api(`/api/alerts/${encodeURIComponent(alertId)}`);
  if (!res.ok) return;
  const c = await res.json();
  const known = alerts.get(alertId);
  if (known) Object.assign(known, { state: c.state, group_id: c.id });
  renderAlerts();
}

async function loadAlerts() {
  const res = await api("/api/alerts?limit=200");
  if (!res.ok) throw new Error(`GET /api/alerts: ${res.status}`);
  addAlerts(await res.json(), false);
}

// The socket is opened before the history is fetched, and alerts are merged by id, so an
// alert raised while the page loads is neither lost nor shown twice.
let socketRetryMs = 1000;
function connectAlerts() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws/alerts`);
  ws.onopen = () => {
    socketRetryMs = 1000;
    setConn("open");
    loadAlerts().catch((err) => console.warn(err));
  };
  ws.onmessage = (ev) => {
    const alert = JSON.parse(ev.data);
    addAlerts([alert], true);
    learnCase(alert.id).catch((err) => console.warn(err));
  };
  ws.onclose = (ev) => {
    if (ev.code === 4401) return toLogin();
    setConn("closed");
    setTimeout(connectAlerts, socketRetryMs);
    socketRetryMs = Math.min(socketRetryMs * 2, 15000);
  };
}

async function refreshHealth() {
  try {
    await loadCameras();
  } catch (err) {
    console.warn(err);
  }
}

window.bondwatch = {
  framesDecoded: (camera) => (tiles.has(camera) ? tiles.get(camera).framesDecoded() : 0),
  alertCount: () => alerts.size,
};

document.addEventListener("DOMContentLoaded", async () => {
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.addEventListener("click", () => setLang(b.dataset.lang));
  }
  document.getElementById("logout").addEventListener("click", signOut);
  for (const id of ["filter-type", "filter-state"]) {
    document.getElementById(id).addEventListener("change", renderAlerts);
  }
  document.getElementById("case-close").addEventListener("click", closeCase);
  document.getElementById("case-backdrop").addEventListener("click", (ev) => {
    if (ev.target.id === "case-backdrop") closeCase();
  });
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeCase(); });
  for (const action of ["acknowledge", "resolve", "reopen"]) {
    document.getElementById(`act-${action}`).addEventListener("click", () => act(action));
  }
  document.getElementById("act-note").addEventListener("click", () => act("notes"));
  setLang(lang);
  setInterval(tickClock, 1000);
  loadMe().then(renderCase).catch((err) => console.warn(err));
  connectAlerts();
  await refreshHealth();
  setInterval(refreshHealth, HEALTH_REFRESH_MS);
  renderAlerts();
});
