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
    camera_tamper: "摄像头遮挡或移位",
    state_connecting: "连接中",
    state_live: "在线",
    state_stalled: "卡顿",
    state_tampered: "遮挡/移位",
    solo_open: "单画面",
    solo_close: "返回多画面",
    tamper: "画面异常",
    state_offline: "离线",
    state_unknown: "未知",
    camera: "摄像头",
    zone: "区域",
    station: "工位",
    track: "目标",
    carrier: "携带者",
    confidence: "置信度",
    zones: "区域",
    video_connecting: "正在连接视频…",
    video_lost: "视频中断，正在重连…",
    zone_occupied: "有目标",
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
    view_live: "实时监控",
    view_recordings: "录像检索",
    sound_on: "提示音 开",
    sound_off: "提示音 关",
    new_alerts: (n) => `${n} 条新告警`,
    all_cameras: "全部摄像头",
    all_stations: "全部工位",
    from: "从",
    to: "至",
    filter_reset: "清除筛选",
    media_clip: "视频片段",
    media_snapshot: "快照",
    clip_original: "原始",
    clip_annotated: "标注",
    clip_loading: "正在加载视频片段…",
    clip_none: "该告警没有视频片段。",
    snapshot_none: "该告警没有快照。",
    open_in_recordings: "在录像中查看 →",
    deliveries: "通知发送",
    delivery_channel: "渠道",
    delivery_state: "状态",
    delivery_attempts: "尝试",
    delivery_sent: "发送时间",
    delivery_error: "错误",
    no_deliveries: "无通知记录",
    act_export: "导出证据包",
    exporting: "正在生成证据包…",
    exported: (name) => `已下载 ${name}`,
    timeline: "录像时间轴",
    legend_recorded: "有录像",
    legend_gap: "录像中断",
    legend_alert: "告警",
    search: "查询",
    playing_at: "播放时刻",
    download_clip: "下载片段",
    download: "下载",
    downloading: "正在截取片段…",
    downloaded: (name) => `已下载 ${name}`,
    gaps: "录像中断",
    no_gaps: "该时段录像无中断",
    no_rec_alerts: "该时段无告警",
    gap_open: "至今",
    timeline_summary: (spans, gaps, alerts) => `${spans} 段录像 · ${gaps} 处中断 · ${alerts} 条告警`,
    timeline_empty: "该时段没有录像。",
    no_recording_here: "该时刻没有录像。",
    pick_time: "点击时间轴上的录像段，从该时刻开始播放。",
    bad_range: "结束时间必须晚于开始时间。",
    time_zone: (tz) => `时区：${tz}`,
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
    camera_tamper: "Camera blocked or moved",
    state_connecting: "Connecting",
    state_live: "Live",
    state_stalled: "Stalled",
    state_tampered: "Tampered",
    solo_open: "Single view",
    solo_close: "Back to the wall",
    tamper: "picture",
    state_offline: "Offline",
    state_unknown: "Unknown",
    camera: "Camera",
    zone: "Zone",
    station: "Station",
    track: "Track",
    carrier: "Carried by",
    confidence: "Conf.",
    zones: "Zones",
    video_connecting: "Connecting video…",
    video_lost: "Video lost, reconnecting…",
    zone_occupied: "occupied",
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
    view_live: "Live",
    view_recordings: "Recordings",
    sound_on: "Sound on",
    sound_off: "Sound off",
    new_alerts: (n) => `${n} new alert${n === 1 ? "" : "s"}`,
    all_cameras: "All cameras",
    all_stations: "All stations",
    from: "From",
    to: "To",
    filter_reset: "Clear filters",
    media_clip: "Clip",
    media_snapshot: "Snapshot",
    clip_original: "Original",
    clip_annotated: "Annotated",
    clip_loading: "Loading the clip…",
    clip_none: "This alert has no clip.",
    snapshot_none: "This alert has no snapshot.",
    open_in_recordings: "Open in recordings →",
    deliveries: "Notifications",
    delivery_channel: "Channel",
    delivery_state: "State",
    delivery_attempts: "Attempts",
    delivery_sent: "Sent",
    delivery_error: "Error",
    no_deliveries: "No notifications",
    act_export: "Export evidence",
    exporting: "Building the evidence package…",
    exported: (name) => `Downloaded ${name}`,
    timeline: "Recording timeline",
    legend_recorded: "Recorded",
    legend_gap: "Gap",
    legend_alert: "Alert",
    search: "Search",
    playing_at: "Playing",
    download_clip: "Download a clip",
    download: "Download",
    downloading: "Cutting the clip…",
    downloaded: (name) => `Downloaded ${name}`,
    gaps: "Recording gaps",
    no_gaps: "No gaps in this range",
    no_rec_alerts: "No alerts in this range",
    gap_open: "now",
    timeline_summary: (spans, gaps, alerts) =>
      `${spans} recorded span${spans === 1 ? "" : "s"} · ${gaps} gap${gaps === 1 ? "" : "s"} · ` +
      `${alerts} alert${alerts === 1 ? "" : "s"}`,
    timeline_empty: "Nothing was recorded in this range.",
    no_recording_here: "Nothing was recorded at this moment.",
    pick_time: "Click a recorded stretch of the timeline to play from that moment.",
    bad_range: "The end must come after the start.",
    time_zone: (tz) => `Time zone: ${tz}`,
  },
};
const LANG_KEY = "bondwatch.lang";
const MAX_ALERTS = 300;
const HEALTH_REFRESH_MS = 5000;
const SOUND_KEY = "bondwatch.sound";
// How live overlays are drawn: "burned" into the video by the server, or "browser" (drawn here
// from detection data on a WebRTC data channel). `?overlays=...` picks one and is remembered;
// `?overlays=default` forgets it, and the server's default applies.
const OVERLAYS_KEY = "bondwatch.overlays";
const OVERLAY_MODES = ["burned", "browser"];
const overlayMode = (() => {
  const asked = new URLSearchParams(location.search).get("overlays");
  if (OVERLAY_MODES.includes(asked)) localStorage.setItem(OVERLAYS_KEY, asked);
  else if (asked === "default") localStorage.removeItem(OVERLAYS_KEY);
  const kept = localStorage.getItem(OVERLAYS_KEY);
  return OVERLAY_MODES.includes(kept) ? kept : null;
})();

let lang = I18N[localStorage.getItem(LANG_KEY)] ? localStorage.getItem(LANG_KEY) : "zh-CN";
const alerts = new Map(); // id -> alert, rendered newest first by `ts`
const tiles = new Map(); // camera id -> CameraTile
let cameras = [];
let me = null; // {name, role} of the signed-in user
let alertSocketState = "connecting";
let muted = localStorage.getItem(SOUND_KEY) === "off";
const baseTitle = document.title;

function t(key, ...args) {
  const value = I18N[lang][key] ?? I18N["zh-CN"][key] ?? key;
  return typeof value === "function" ? value(...args) : value;
}

// An alert's explanation in the page's language (the server translates it: alerts/explain.py).
function explanationOf(a) {
  return (lang === "zh-CN" && a.explanation_zh) || a.explanation || "";
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
  renderSound();
  renderView();
  renderRecordings();
  tickClock();
}

// ---------- session: every request is signed in; losing the session means the login page ----------

function toLogin() {
  location.replace("/login");
}

// Every request names the page's language, so the server's refusals come back in it.
async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...options.headers, "Accept-Language": lang } });
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

// The single-camera view: one tile fills the wall, the others wait hidden (their video keeps
// playing, so going back is instant). Double-click a video or use its button; Escape goes back.
let soloCamera = null;

function setSolo(cameraId) {
  soloCamera = cameraId && tiles.has(cameraId) ? cameraId : null;
  document.getElementById("grid").classList.toggle("solo", soloCamera !== null);
  for (const [id, tile] of tiles) {
    tile.el.classList.toggle("chosen", id === soloCamera);
    tile.render();
  }
}

class CameraTile {
  constructor(camera) {
    this.camera = camera;
    const node = document.getElementById("tile-template").content.firstElementChild.cloneNode(true);
    node.dataset.camera = camera.id;
    this.el = node;
    this.video = node.querySelector("video");
    this.video.dataset.camera = camera.id;
    this.overlay = new OverlayPainter(this.video, node.querySelector("canvas.overlay"));
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
    node.querySelector(".solo-btn").addEventListener("click", () => setSolo(soloCamera === camera.id ? null : camera.id));
    this.video.addEventListener("dblclick", () => setSolo(soloCamera === camera.id ? null : camera.id));
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
    // A live camera whose picture is covered, moved, blurred or frozen is not supervising.
    const tampered = Boolean(c.health && c.health.state === "live" && c.health.tamper);
    const state = c.health ? (tampered ? "tampered" : c.health.state) : "unknown";
    this.el.querySelector(".name").textContent = c.name;
    this.el.querySelector(".cam-id").textContent = c.id;
    this.el.querySelector(".solo-btn").textContent = t(soloCamera === c.id ? "solo_close" : "solo_open");
    const badge = this.el.querySelector(".health");
    badge.dataset.state = state;
    badge.textContent = t(`state_${state}`);
    const zones = c.zones.map((z) => z.id).join(", ");
    this.el.querySelector(".zones").textContent = zones ? `${t("zones")}: ${zones}` : "";
    const stats = [];
    if (c.health && (state === "live" || tampered) && c.health.fps !== null) stats.push(`${c.health.fps.toFixed(1)} fps`);
    if (this.videoState === "playing" && state !== "offline") {
      stats.push(`${this.video.videoWidth}×${this.video.videoHeight}`);
    }
    if (tampered) stats.push(`${t("tamper")}: ${c.health.tamper}`);
    else if (c.health && state !== "live" && c.health.error) stats.push(c.health.error);
    const statsEl = this.el.querySelector(".stats");
    statsEl.textContent = stats.join(" · ");
    statsEl.classList.toggle("error", tampered || Boolean(c.health && state !== "live" && c.health.error));
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
    // Opened before the offer so that it is negotiated with the video; the server says on it
    // whether it burns the overlays in or sends them here as data.
    const channel = pc.createDataChannel("overlay");
    channel.onmessage = (ev) => { if (this.pc === pc) this.overlay.receive(ev.data); };
    this.overlay.reset();
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
      const query = overlayMode ? `?overlays=${overlayMode}` : "";
      const res = await api(`/api/webrtc/offer${query}`, {
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

// Overlays drawn in the browser: the server sends, on the "overlay" data channel, what it would
// otherwise burn into the pixels (zones with their state, boxes, camera and capture time), each
// message stamped with the RTP timestamp of the first video frame it holds for. Where
// requestVideoFrameCallback gives each presented frame's rtpTimestamp (Chromium), the canvas
// shows the newest message from at or before that frame, so boxes change on the same frame as
// they would burned in; elsewhere it shows each message as it arrives (a jitter buffer early).
const OVERLAY_RGB = {
  restricted: "235,64,64", station: "255,176,0", person: "40,200,230", other: "190,110,220",
};
const HALF_RTP = 2 ** 31;

class OverlayPainter {
  constructor(video, canvas) {
    this.video = video;
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.reset();
    this.received = 0;
    this.drawn = 0;
    this.onFrame = (now, meta) => {
      this.frameRtp = meta && meta.rtpTimestamp !== undefined ? meta.rtpTimestamp >>> 0 : null;
      this.paint();
      this.video.requestVideoFrameCallback(this.onFrame);
    };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(this.onFrame);
    new ResizeObserver(() => { this.shown = null; this.paint(); }).observe(canvas);
  }

  reset() {
    this.mode = null;
    this.messages = [];
    this.frameRtp = null;
    this.shown = null;
    this.canvas.dataset.overlays = "";
    this.clear();
  }

  receive(data) {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (msg.overlays) {
      this.mode = msg.overlays;
      this.canvas.dataset.overlays = msg.overlays;
      this.clear();
      return;
    }
    this.received++;
    this.canvas.dataset.received = String(this.received);
    this.messages.push(msg);
    if (this.messages.length > 64) this.messages.shift();
    if (this.frameRtp === null) this.paint();
  }

  // The message in force on the presented frame: by RTP timestamp where known, else the newest.
  current() {
    const list = this.messages;
    if (!list.length) return null;
    const newest = list[list.length - 1];
    if (this.frameRtp === null || newest.rtp === undefined) return newest;
    for (let i = list.length - 1; i >= 0; i--) {
      if (((this.frameRtp - list[i].rtp) >>> 0) < HALF_RTP) return list[i];
    }
    return null;
  }

  clear() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.canvas.dataset.boxes = "0";
  }

  paint() {
    if (this.mode !== "browser") return;
    const msg = this.current();
    if (msg === this.shown) return;
    this.shown = msg;
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cw = c.clientWidth, ch = c.clientHeight;
    if (c.width !== Math.round(cw * dpr) || c.height !== Math.round(ch * dpr)) {
      c.width = Math.round(cw * dpr);
      c.height = Math.round(ch * dpr);
    }
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, c.width, c.height);
    c.dataset.boxes = "0";
    if (!msg || msg.ts === null || !cw || !ch) return;
    // Where the <video> shows the picture (object-fit: contain), in canvas pixels.
    const vw = this.video.videoWidth || msg.w, vh = this.video.videoHeight || msg.h;
    const fit = Math.min(cw / vw, ch / vh);
    const ox = (cw - vw * fit) / 2, oy = (ch - vh * fit) / 2;
    const sx = (vw * fit) / msg.w, sy = (vh * fit) / msg.h;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const X = (x) => ox + x * sx, Y = (y) => oy + y * sy;
    ctx.lineJoin = "round";
    for (const z of msg.zones) {
      const occupied = z.state === "occupied";
      const rgb = OVERLAY_RGB[z.kind] || OVERLAY_RGB.other;
      ctx.beginPath();
      z.polygon.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
      ctx.closePath();
      ctx.fillStyle = `rgba(${rgb},${occupied ? 0.4 : 0.22})`;
      ctx.fill();
      ctx.lineWidth = occupied ? 3 : 2;
      ctx.strokeStyle = `rgb(${rgb})`;
      ctx.stroke();
      const x = Math.min(...z.polygon.map((p) => p[0])), y = Math.min(...z.polygon.map((p) => p[1]));
      this.label(occupied ? `${z.id} · ${t("zone_occupied")}` : z.id, X(x) + 3, Y(y) + 3, rgb, cw, ch);
    }
    for (const [x1, y1, x2, y2, cls, track, conf] of msg.boxes) {
      const rgb = cls === "person" ? OVERLAY_RGB.person : OVERLAY_RGB.other;
      ctx.lineWidth = 2;
      ctx.strokeStyle = `rgb(${rgb})`;
      ctx.strokeRect(X(x1), Y(y1), X(x2) - X(x1), Y(y2) - Y(y1));
      const id = track === null ? "" : `#${track} `;
      this.label(`${id}${cls} ${conf.toFixed(2)}`, X(x1), Y(y1) - 16, rgb, cw, ch);
    }
    const stamp = new Date(msg.ts * 1000).toLocaleString(lang, {
      year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
    });
    this.label(`${msg.camera}  ${stamp}`, ox + 6, oy + 6, "255,255,255", cw, ch);
    this.drawn++;
    c.dataset.boxes = String(msg.boxes.length);
    c.dataset.drawn = String(this.drawn);
    c.dataset.sync = this.frameRtp !== null && msg.rtp !== undefined ? "rtp" : "arrival";
  }

  // Text on a dark box, kept inside the canvas, as the burned-in labels are.
  label(text, x, y, rgb, cw, ch) {
    const ctx = this.ctx;
    ctx.font = "12px ui-monospace, monospace";
    ctx.textBaseline = "top";
    const w = ctx.measureText(text).width + 6, h = 16;
    x = Math.max(0, Math.min(x, cw - w));
    y = Math.max(0, Math.min(y, ch - h));
    ctx.fillStyle = "rgba(18,20,24,0.85)";
    ctx.fillRect(x, y, w, h);
    ctx.fillStyle = `rgb(${rgb})`;
    ctx.fillText(text, x + 3, y + 2);
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
  renderFilters();
  renderRecCameras();
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

const ALERT_TYPES = ["unauthorized_entry", "unscanned_departure", "camera_tamper", "camera_offline", "camera_online"];
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

function fillLabelled(select, options, allKey) {
  const current = select.value;
  select.replaceChildren(new Option(t(allKey), ""), ...options.map(([v, label]) => new Option(label, v)));
  select.value = options.some(([v]) => v === current) ? current : "";
}

function renderFilters() {
  fillSelect(document.getElementById("filter-type"), ALERT_TYPES, "all_types", "");
  fillSelect(document.getElementById("filter-state"), CASE_STATES, "all_states", "case_");
  fillLabelled(document.getElementById("filter-camera"), cameras.map((c) => [c.id, c.name]), "all_cameras");
  const stations = [...new Set(cameras.flatMap((c) => c.zones.filter((z) => z.station).map((z) => z.station)))];
  fillLabelled(document.getElementById("filter-station"), stations.sort().map((s) => [s, s]), "all_stations");
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
  const filters = filterValues();
  const { heads, members } = foldedHeads();
  const shown = heads.filter((a) => matchesFilters(a, filters));
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
    li.querySelector(".alert-explanation").textContent = explanationOf(a);
    li.addEventListener("click", () => openCase(a.id));
    li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openCase(a.id); });
    a.fresh = false;
    return li;
  });
  list.replaceChildren(...nodes);
  // The badge counts the desk's cases that nobody has acknowledged yet.
  const fresh = heads.filter((a) => a.state === "new").length;
  const count = document.getElementById("alert-count");
  count.textContent = String(fresh);
  count.title = t("new_alerts", fresh);
  count.classList.toggle("zero", fresh === 0);
  document.title = fresh ? `(${fresh}) ${baseTitle}` : baseTitle;
  document.getElementById("alert-empty").hidden = nodes.length > 0;
}

function alertMeta(a) {
  const meta = [];
  const cam = cameras.find((c) => c.id === a.camera);
  meta.push(`${t("camera")} ${cam ? cam.name : a.camera}`);
  if (a.zone) meta.push(`${t("zone")} ${a.zone}`);
  if (a.station && a.station !== a.zone) meta.push(`${t("station")} ${a.station}`);
  if (a.track !== undefined && a.track !== null) meta.push(`${t("track")} #${a.track}`);
  if (a.carrier !== undefined && a.carrier !== null) meta.push(`${t("carrier")} #${a.carrier}`);
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

function showCaseError(message, kind = "error") {
  const el = document.getElementById("case-error");
  el.textContent = message;
  el.dataset.kind = kind;
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
  document.getElementById("case-explanation").textContent = explanationOf(a);
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
  document.getElementById("act-export").hidden = !decide;
  document.getElementById("case-text").placeholder = t("text_placeholder");
  renderMediaBar();
  renderDeliveries();
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
  const fresh = backdrop.hidden || media.caseId !== openCaseData.id;
  backdrop.hidden = false;
  renderCase();
  applyCase(openCaseData);
  if (fresh) {
    media.caseId = openCaseData.id;
    loadCaseMedia();
    loadDeliveries(openCaseData.id);
  }
}

function closeCase() {
  openCaseData = null;
  stopCaseMedia();
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
  if (body && typeof body.detail === "string") return sentence(body.detail);
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

// The filters go to the server too, so a desk looking back is not limited to the newest 200.
async function loadAlerts() {
  const f = filterValues();
  const q = new URLSearchParams({ limit: "200" });
  for (const key of ["type", "state", "camera", "station"]) if (f[key]) q.set(key, f[key]);
  if (f.from) q.set("from", f.from.toISOString());
  if (f.to) q.set("to", f.to.toISOString());
  const res = await api(`/api/alerts?${q}`);
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
    if (!alerts.has(alert.id) && alert.type !== "camera_online") beep();
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

// ---------- time helpers: every date is shown in the browser's time zone ----------

const $ = (id) => document.getElementById(id);

function pad2(n) {
  return String(n).padStart(2, "0");
}

// A datetime-local input holds local wall time without a zone; new Date() reads it as local.
function fromLocalInput(value) {
  return value ? new Date(value) : null;
}

function toLocalInput(date) {
  return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())}` +
    `T${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
}

function fullTime(date) {
  return date.toLocaleString(lang, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
}

function timeZoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
}

async function detailOf(res) {
  const body = await res.json().catch(() => null);
  return body && typeof body.detail === "string" ? body.detail : "";
}

// The server's refusal as a sentence: capitalised, with the full stop of its language.
function sentence(text) {
  if (!text || /[.。!?！？]$/.test(text)) return text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[\u4e00-\u9fff]/.test(text) ? "。" : ".");
}

function filenameOf(res) {
  const header = res.headers.get("Content-Disposition") || "";
  const star = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (star) return decodeURIComponent(star[1]);
  const plain = /filename="?([^";]+)"?/i.exec(header);
  return plain ? plain[1] : "";
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// ---------- desk filters (server-side query, and the same test for alerts pushed meanwhile) ----------

function filterValues() {
  const v = (id) => $(id).value;
  return {
    type: v("filter-type"), state: v("filter-state"), camera: v("filter-camera"),
    station: v("filter-station"), from: fromLocalInput(v("filter-from")), to: fromLocalInput(v("filter-to")),
  };
}

function matchesFilters(a, f) {
  const at = alertTime(a);
  return (!f.type || a.type === f.type) && (!f.state || a.state === f.state) &&
    (!f.camera || a.camera === f.camera) && (!f.station || a.station === f.station) &&
    (!f.from || (at !== null && at >= f.from)) && (!f.to || (at !== null && at <= f.to));
}

let filterLoads = 0;
async function reloadFiltered() {
  renderAlerts();
  const mine = ++filterLoads;
  const before = new Map(alerts);
  alerts.clear();
  try {
    await loadAlerts();
  } catch (err) {
    console.warn(err);
    if (mine === filterLoads) for (const [id, a] of before) alerts.set(id, a);
  }
  renderAlerts();
}

function resetFilters() {
  for (const id of ["filter-type", "filter-state", "filter-camera", "filter-station", "filter-from", "filter-to"]) {
    $(id).value = "";
  }
  reloadFiltered();
}

// ---------- sound: a short beep per new alert, unless muted (remembered in this browser) ----------

let audio = null;
let beeps = 0;

function beep() {
  if (muted) return;
  beeps += 1;
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume().catch(() => {});
    const now = audio.currentTime;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.setValueAtTime(880, now);
    osc.frequency.setValueAtTime(660, now + 0.12);
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(0.25, now + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.3);
    osc.connect(gain).connect(audio.destination);
    osc.start(now);
    osc.stop(now + 0.32);
  } catch (err) {
    console.warn("no sound:", err);
  }
}

function renderSound() {
  const button = $("sound-toggle");
  button.setAttribute("aria-pressed", String(!muted));
  button.classList.toggle("muted", muted);
  $("sound-label").textContent = t(muted ? "sound_off" : "sound_on");
}

function toggleSound() {
  muted = !muted;
  localStorage.setItem(SOUND_KEY, muted ? "off" : "on");
  // Browsers start audio only from a user gesture: this click is one.
  if (!muted) {
    audio = audio || new AudioContext();
    audio.resume().catch(() => {});
  }
  renderSound();
}

// ---------- views: the live wall and the evidence search, chosen by the URL's hash ----------

function currentView() {
  return location.hash.split("?")[0] === "#recordings" ? "recordings" : "live";
}

function renderView() {
  const view = currentView();
  document.querySelector("main.layout").hidden = view !== "live";
  $("recordings-view").hidden = view !== "recordings";
  for (const a of document.querySelectorAll("[data-view]")) {
    a.classList.toggle("active", a.dataset.view === view);
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (view === "recordings") enterRecordings();
}

// ---------- the case panel's media: the alert's clip (original or annotated) or its snapshot ----------

const media = { caseId: null, kind: "clip", annotated: false, url: null, token: 0, retry: null };

function setMediaStatus(text) {
  $("media-status").textContent = text;
}

function renderMediaBar() {
  $("media-clip").classList.toggle("active", media.kind === "clip");
  $("media-snapshot").classList.toggle("active", media.kind === "snapshot");
  $("clip-original").classList.toggle("active", !media.annotated);
  $("clip-annotated").classList.toggle("active", media.annotated);
  $("clip-versions").hidden = media.kind !== "clip";
  $("case-video").hidden = media.kind !== "clip";
  $("case-snapshot").hidden = media.kind !== "snapshot";
}

function stopCaseMedia() {
  media.token += 1;
  clearTimeout(media.retry);
  const video = $("case-video");
  video.pause();
  video.removeAttribute("src");
  video.load();
  if (media.url) URL.revokeObjectURL(media.url);
  media.url = null;
  media.caseId = null;
}

async function loadCaseMedia() {
  const c = openCaseData;
  if (!c) return;
  const token = ++media.token;
  clearTimeout(media.retry);
  renderMediaBar();
  const id = encodeURIComponent(c.id);
  if (media.kind === "snapshot") {
    const img = $("case-snapshot");
    setMediaStatus("");
    img.onerror = () => { if (token === media.token) setMediaStatus(t("snapshot_none")); };
    img.src = `/api/alerts/${id}/snapshot.jpg`;
    return;
  }
  const video = $("case-video");
  video.pause();
  video.removeAttribute("src");
  video.load();
  setMediaStatus(t("clip_loading"));
  try {
    const res = await api(`/api/alerts/${id}/clip.mp4${media.annotated ? "?annotated=1" : ""}`);
    if (token !== media.token) return;
    if (res.status === 409) {
      // Still being recorded: say so with the server's words, and try again shortly.
      setMediaStatus(sentence(await detailOf(res)));
      media.retry = setTimeout(() => { if (token === media.token) loadCaseMedia(); }, 5000);
      return;
    }
    if (!res.ok) {
      setMediaStatus(sentence(await detailOf(res)) || t("clip_none"));
      return;
    }
    const blob = await res.blob();
    if (token !== media.token) return;
    if (media.url) URL.revokeObjectURL(media.url);
    media.url = URL.createObjectURL(blob);
    video.src = media.url;
    setMediaStatus("");
    video.play().catch(() => {});
  } catch (err) {
    console.warn(err);
    if (token === media.token) setMediaStatus(t("clip_none"));
  }
}

function bindCaseMedia() {
  const choose = (kind, annotated) => {
    if (media.kind === kind && media.annotated === annotated) return;
    media.kind = kind;
    media.annotated = annotated;
    loadCaseMedia();
  };
  $("media-clip").addEventListener("click", () => choose("clip", media.annotated));
  $("media-snapshot").addEventListener("click", () => choose("snapshot", media.annotated));
  $("clip-original").addEventListener("click", () => choose("clip", false));
  $("clip-annotated").addEventListener("click", () => choose("clip", true));
  $("case-recordings").addEventListener("click", () => {
    const c = openCaseData;
    if (!c || !c.alert.ts) return;
    closeCase();
    openRecordingsAt(c.alert.camera, new Date(c.alert.ts));
  });
}

// ---------- the case panel's notification deliveries ----------

let deliveries = null; // the rows of the open case, null when the server has none to show

async function loadDeliveries(caseId) {
  deliveries = null;
  renderDeliveries();
  try {
    const res = await api(`/api/alerts/${encodeURIComponent(caseId)}/deliveries`);
    if (!res.ok || !openCaseData || openCaseData.id !== caseId) return;
    const body = await res.json();
    deliveries = Array.isArray(body) ? body : body.deliveries || [];
  } catch (err) {
    console.warn(err);
  }
  renderDeliveries();
}

function renderDeliveries() {
  $("case-deliveries-box").hidden = deliveries === null;
  if (deliveries === null) return;
  const head = document.createElement("tr");
  for (const key of ["delivery_channel", "delivery_state", "delivery_attempts", "delivery_sent", "delivery_error"]) {
    const th = document.createElement("th");
    th.textContent = t(key);
    head.appendChild(th);
  }
  const rows = deliveries.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.state = d.state || "";
    const cells = [d.channel, d.state, d.attempts ?? "", d.sent_at ? fullTime(new Date(d.sent_at)) : "",
      d.last_error || ""];
    for (const value of cells) {
      const td = document.createElement("td");
      td.textContent = String(value ?? "");
      tr.appendChild(td);
    }
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 5;
    td.className = "muted";
    td.textContent = t("no_deliveries");
    tr.appendChild(td);
    rows.push(tr);
  }
  $("case-deliveries").replaceChildren(head, ...rows);
}

// ---------- evidence export (a zip from the server; refused to roles without the right) ----------

async function exportEvidence() {
  const c = openCaseData;
  if (!c) return;
  showCaseError(t("exporting"), "notice");
  const res = await api(`/api/alerts/${encodeURIComponent(c.id)}/export`, { method: "POST" });
  if (!res.ok) return showCaseError(await errorSentence(res));
  const name = filenameOf(res) || `bondwatch-evidence-${c.id}.zip`;
  saveBlob(await res.blob(), name);
  showCaseError(t("exported", name), "notice");
}

// ---------- evidence search: a camera's recording timeline, playback from any moment, clips ----------

const PLAY_WINDOW_MS = 60_000; // one clip request per minute of playback
const rec = {
  data: null, // the TimelineOut shown, with times turned into milliseconds
  from: null, // Date: the window shown
  to: null,
  camera: "",
  cursor: null, // ms: the moment chosen or playing
  clipStart: null, // ms: the first moment of the clip in the player
  clipEnd: null,
  url: null,
  searchToken: 0,
  searching: false,
  playToken: 0,
  error: null, // () => the sentence saying why there is no timeline
  status: () => "", // what the player says, in the current language
};

function renderRecCameras() {
  const select = $("rec-camera");
  const current = select.value || rec.camera;
  select.replaceChildren(...cameras.map((c) => new Option(`${c.name} (${c.id})`, c.id)));
  if (cameras.some((c) => c.id === current)) select.value = current;
  if (currentView() === "recordings") enterRecordings();
}

function setRange(fromDate, toDate) {
  $("rec-from").value = toLocalInput(fromDate);
  $("rec-to").value = toLocalInput(toDate);
}

function enterRecordings() {
  if (!$("rec-from").value) {
    const now = new Date();
    setRange(new Date(now.getTime() - 3600_000), now);
  }
  if (!rec.data && !rec.error && !rec.searching && $("rec-camera").value) searchTimeline();
}

// Links from elsewhere: `/?alert=ID` (notifications) opens that case, `#recordings?camera=&t=`
// (the serial trace) opens that camera's recording at that moment (Unix seconds).
function openLinked() {
  const alertId = new URLSearchParams(location.search).get("alert");
  if (alertId) openCase(alertId);
  openLinkedRecording();
}

function openLinkedRecording() {
  const [view, query] = location.hash.split("?");
  const params = new URLSearchParams(query || "");
  if (view === "#recordings" && params.get("camera") && params.get("t")) {
    openRecordingsAt(params.get("camera"), new Date(Number(params.get("t")) * 1000));
  }
}

async function openRecordingsAt(camera, when) {
  location.hash = "#recordings";
  renderRecCameras();
  $("rec-camera").value = camera;
  setRange(new Date(when.getTime() - 10 * 60_000), new Date(when.getTime() + 10 * 60_000));
  await searchTimeline();
  playFrom(when.getTime() - 5000);
}

async function searchTimeline() {
  const camera = $("rec-camera").value;
  const from = fromLocalInput($("rec-from").value);
  const to = fromLocalInput($("rec-to").value);
  rec.error = null;
  if (!camera) return;
  if (!from || !to || to <= from) {
    rec.error = () => t("bad_range");
    return renderRecordings();
  }
  const token = ++rec.searchToken;
  const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  rec.searching = true;
  let res;
  try {
    res = await api(`/api/recordings/${encodeURIComponent(camera)}/timeline?${q}`);
  } finally {
    if (token === rec.searchToken) rec.searching = false;
  }
  if (token !== rec.searchToken) return;
  if (!res.ok) {
    rec.data = null;
    const refusal = await errorSentence(res);
    rec.error = () => refusal;
    return renderRecordings();
  }
  const body = await res.json();
  const ms = (iso) => (iso ? Date.parse(iso) : null);
  rec.data = {
    spans: body.spans.map((s) => ({ start: ms(s.start), end: ms(s.end), segments: s.segments })),
    gaps: body.gaps.map((g) => ({ start: ms(g.start), end: ms(g.end), reason: g.reason })),
    alerts: body.alerts,
  };
  Object.assign(rec, { from, to, camera, cursor: null, status: () => t("pick_time") });
  renderRecordings();
}

function pct(ms) {
  const span = rec.to.getTime() - rec.from.getTime();
  return Math.min(100, Math.max(0, ((ms - rec.from.getTime()) / span) * 100));
}

function block(className, startMs, endMs, title) {
  const div = document.createElement("div");
  div.className = className;
  div.style.left = `${pct(startMs)}%`;
  div.style.width = `${Math.max(0.2, pct(endMs) - pct(startMs))}%`;
  div.title = title;
  return div;
}

function niceStep(rangeMs) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440].map((m) => m * 60_000);
  return steps.find((s) => rangeMs / s <= 10) || 1440 * 60_000;
}

function renderAxis() {
  const axis = $("tl-axis");
  if (!rec.data) return axis.replaceChildren();
  const from = rec.from.getTime();
  const to = rec.to.getTime();
  const step = niceStep(to - from);
  const longRange = to - from > 86400_000 || rec.from.toDateString() !== rec.to.toDateString();
  const ticks = [];
  // Ticks fall on round local times: shift by the zone offset before rounding.
  const offset = rec.from.getTimezoneOffset() * 60_000;
  for (let ms = Math.ceil((from - offset) / step) * step + offset; ms <= to; ms += step) {
    const tick = document.createElement("span");
    tick.className = "tick";
    tick.style.left = `${pct(ms)}%`;
    const d = new Date(ms);
    const opts = { hour: "2-digit", minute: "2-digit", hour12: false };
    if (longRange && d.getHours() === 0 && d.getMinutes() === 0) Object.assign(opts, { month: "2-digit", day: "2-digit" });
    tick.textContent = d.toLocaleString(lang, opts);
    ticks.push(tick);
  }
  axis.replaceChildren(...ticks);
}

function gapTitle(g) {
  const end = g.end ? fullTime(new Date(g.end)) : t("gap_open");
  return `${fullTime(new Date(g.start))} – ${end}: ${g.reason}`;
}

function renderRecordings() {
  $("rec-tz").textContent = t("time_zone", timeZoneName());
  $("rec-download-box").hidden = !canDecide(); // only customs staff may export evidence
  renderDownloadStatus();
  const track = $("tl-track");
  const markers = $("tl-markers");
  const d = rec.data;
  if (!d) {
    track.replaceChildren();
    markers.replaceChildren();
    $("tl-summary").textContent = rec.error ? rec.error() : "";
    $("rec-gaps").replaceChildren();
    $("rec-alerts").replaceChildren();
    renderAxis();
    renderCursor();
    return;
  }
  const now = Date.now();
  track.replaceChildren(
    ...d.spans.map((s) => block("tl-span", s.start, s.end, `${fullTime(new Date(s.start))} – ${fullTime(new Date(s.end))}`)),
    ...d.gaps.map((g) => block("tl-gap", g.start, g.end ?? Math.min(now, rec.to.getTime()), gapTitle(g))),
  );
  markers.replaceChildren(...d.alerts.filter((a) => a.ts).map((a) => {
    const m = document.createElement("button");
    m.type = "button";
    m.className = "tl-marker";
    m.dataset.id = a.id;
    m.dataset.type = a.type;
    m.style.left = `${pct(Date.parse(a.ts))}%`;
    m.title = `${t(a.type)} · ${fullTime(new Date(a.ts))}`;
    m.addEventListener("click", (ev) => {
      ev.stopPropagation();
      openCase(a.id);
    });
    return m;
  }));
  $("tl-summary").textContent = rec.error ? rec.error() :
    (d.spans.length ? t("timeline_summary", d.spans.length, d.gaps.length, d.alerts.length) : t("timeline_empty"));
  $("rec-gaps").replaceChildren(...(d.gaps.length ? d.gaps.map((g) => {
    const li = document.createElement("li");
    li.className = "gap";
    li.textContent = gapTitle(g);
    return li;
  }) : [emptyItem(t("no_gaps"))]));
  $("rec-alerts").replaceChildren(...(d.alerts.length ? d.alerts.map((a) => {
    const li = document.createElement("li");
    li.className = "rec-alert";
    li.dataset.type = a.type;
    li.dataset.id = a.id;
    li.tabIndex = 0;
    const time = document.createElement("time");
    time.textContent = a.ts ? fullTime(new Date(a.ts)) : "";
    const what = document.createElement("span");
    what.textContent = t(a.type) + (a.zone ? ` · ${t("zone")} ${a.zone}` : "");
    const state = document.createElement("span");
    state.className = "state-badge";
    setStateBadge(state, a.state);
    li.append(time, what, state);
    li.addEventListener("click", () => openCase(a.id));
    return li;
  }) : [emptyItem(t("no_rec_alerts"))]));
  renderAxis();
  renderCursor();
}

function emptyItem(text) {
  const li = document.createElement("li");
  li.className = "muted";
  li.textContent = text;
  return li;
}

function renderCursor() {
  const cursor = $("tl-cursor");
  const show = rec.data && rec.cursor !== null;
  cursor.hidden = !show;
  if (show) cursor.style.left = `${pct(rec.cursor)}%`;
  $("rec-now").textContent = rec.cursor !== null ? fullTime(new Date(rec.cursor)) : "";
  $("rec-status").textContent = rec.status();
}

function msAt(clientX) {
  const box = $("timeline").getBoundingClientRect();
  const frac = Math.min(1, Math.max(0, (clientX - box.left) / box.width));
  return rec.from.getTime() + frac * (rec.to.getTime() - rec.from.getTime());
}

async function playFrom(ms) {
  if (!rec.data) return;
  rec.cursor = ms;
  $("dl-from").value = toLocalInput(new Date(ms));
  $("dl-to").value = toLocalInput(new Date(ms + PLAY_WINDOW_MS));
  const span = rec.data.spans.find((s) => ms >= s.start && ms < s.end);
  const video = $("rec-video");
  const token = ++rec.playToken;
  if (!span) {
    const gap = rec.data.gaps.find((g) => ms >= g.start && (g.end === null || ms < g.end));
    rec.status = () => t("no_recording_here") + (gap ? ` ${gap.reason}` : "");
    video.pause();
    video.removeAttribute("src");
    video.load();
    return renderCursor();
  }
  rec.status = () => t("clip_loading");
  renderCursor();
  const end = Math.max(Math.min(span.end, ms + PLAY_WINDOW_MS), ms + 1000);
  const q = new URLSearchParams({ from: new Date(ms).toISOString(), to: new Date(end).toISOString() });
  const res = await api(`/api/recordings/${encodeURIComponent(rec.camera)}/clip.mp4?${q}`);
  if (token !== rec.playToken) return;
  if (!res.ok) {
    const refusal = await errorSentence(res);
    rec.status = () => refusal;
    return renderCursor();
  }
  rec.clipStart = Date.parse(res.headers.get("X-Clip-Start"));
  rec.clipEnd = Date.parse(res.headers.get("X-Clip-End"));
  const blob = await res.blob();
  if (token !== rec.playToken) return;
  if (rec.url) URL.revokeObjectURL(rec.url);
  rec.url = URL.createObjectURL(blob);
  video.src = rec.url;
  // The clip starts on the keyframe at or before the moment asked for: skip that lead.
  video.addEventListener("loadedmetadata", () => {
    video.currentTime = Math.max(0, (ms - rec.clipStart) / 1000);
    video.play().catch(() => {});
  }, { once: true });
  rec.status = () => "";
  renderCursor();
}

let downloadStatus = { kind: "notice", text: () => "" }; // in the current language

function renderDownloadStatus() {
  const el = $("dl-status");
  el.dataset.kind = downloadStatus.kind;
  el.textContent = downloadStatus.text();
}

function setDownloadStatus(kind, text) {
  downloadStatus = { kind, text };
  renderDownloadStatus();
}

async function downloadClip() {
  const from = fromLocalInput($("dl-from").value);
  const to = fromLocalInput($("dl-to").value);
  const camera = $("rec-camera").value;
  if (!from || !to || to <= from) return setDownloadStatus("error", () => t("bad_range"));
  setDownloadStatus("notice", () => t("downloading"));
  const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), download: "1" });
  const res = await api(`/api/recordings/${encodeURIComponent(camera)}/clip.mp4?${q}`);
  if (!res.ok) {
    const refusal = await errorSentence(res);
    return setDownloadStatus("error", () => refusal);
  }
  const name = filenameOf(res) || `${camera}.mp4`;
  saveBlob(await res.blob(), name);
  setDownloadStatus("notice", () => t("downloaded", name));
}

function bindRecordings() {
  $("rec-search").addEventListener("click", searchTimeline);
  $("rec-camera").addEventListener("change", searchTimeline);
  for (const b of document.querySelectorAll("#rec-quick [data-range]")) {
    b.addEventListener("click", () => {
      const now = new Date();
      setRange(new Date(now.getTime() - Number(b.dataset.range) * 1000), now);
      searchTimeline();
    });
  }
  const timeline = $("timeline");
  timeline.addEventListener("click", (ev) => {
    if (rec.data && !ev.target.closest(".tl-marker")) playFrom(msAt(ev.clientX));
  });
  timeline.addEventListener("mousemove", (ev) => {
    const hover = $("tl-hover");
    if (!rec.data) return;
    const ms = msAt(ev.clientX);
    hover.hidden = false;
    hover.style.left = `${pct(ms)}%`;
    hover.dataset.time = new Date(ms).toLocaleTimeString(lang, { hour12: false });
  });
  timeline.addEventListener("mouseleave", () => { $("tl-hover").hidden = true; });
  const video = $("rec-video");
  video.addEventListener("timeupdate", () => {
    if (rec.clipStart === null || !video.src) return;
    rec.cursor = rec.clipStart + video.currentTime * 1000;
    renderCursor();
  });
  // At the end of a clip, carry on with the next minute of the same recorded stretch.
  video.addEventListener("ended", () => {
    if (rec.data && rec.clipEnd && rec.data.spans.some((s) => rec.clipEnd >= s.start && rec.clipEnd < s.end - 500)) {
      playFrom(rec.clipEnd);
    }
  });
  $("dl-button").addEventListener("click", downloadClip);
}

window.bondwatch = {
  framesDecoded: (camera) => (tiles.has(camera) ? tiles.get(camera).framesDecoded() : 0),
  alertCount: () => alerts.size,
  beeps: () => beeps,
  recordingCursor: () => rec.cursor,
};

document.addEventListener("DOMContentLoaded", async () => {
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.addEventListener("click", () => setLang(b.dataset.lang));
  }
  document.getElementById("logout").addEventListener("click", signOut);
  for (const id of ["filter-type", "filter-state", "filter-camera", "filter-station", "filter-from", "filter-to"]) {
    document.getElementById(id).addEventListener("change", reloadFiltered);
  }
  document.getElementById("filter-reset").addEventListener("click", resetFilters);
  document.getElementById("sound-toggle").addEventListener("click", toggleSound);
  window.addEventListener("hashchange", () => { renderView(); openLinkedRecording(); });
  bindCaseMedia();
  bindRecordings();
  document.getElementById("case-close").addEventListener("click", closeCase);
  document.getElementById("case-backdrop").addEventListener("click", (ev) => {
    if (ev.target.id === "case-backdrop") closeCase();
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape") return;
    if (!document.getElementById("case-backdrop").hidden) closeCase();
    else setSolo(null);
  });
  for (const action of ["acknowledge", "resolve", "reopen"]) {
    document.getElementById(`act-${action}`).addEventListener("click", () => act(action));
  }
  document.getElementById("act-note").addEventListener("click", () => act("notes"));
  document.getElementById("act-export").addEventListener("click", exportEvidence);
  setLang(lang);
  setInterval(tickClock, 1000);
  loadMe().then(() => { renderCase(); renderRecordings(); openLinked(); }).catch((err) => console.warn(err));
  connectAlerts();
  await refreshHealth();
  setInterval(refreshHealth, HEALTH_REFRESH_MS);
  renderAlerts();
});
