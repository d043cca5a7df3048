// Overview: alerts per day and type (stacked bars), camera uptime and recording coverage
// (horizontal bars), drawn as plain SVG: the page works with no internet and no build step.
"use strict";

Object.assign(I18N["zh-CN"], {
  overview_title: "运行概览",
  ov_days: (n) => `近 ${n} 天`,
  ov_range: (from, to, tz) => `${from} 至 ${to}（${tz}）`,
  ov_alerts_per_day: "每日告警（按类型）",
  ov_uptime: "摄像头在线率",
  ov_uptime_note: "根据“摄像头离线 / 恢复”告警推算（系统未保存健康历史）；服务未运行的时间计为在线。",
  ov_coverage: "录像覆盖率",
  ov_coverage_note: "已录制时长 / 统计时段；服务未运行或录像中断的时间计为缺口。",
  ov_no_recording: "未启用录像",
  ov_kpi_total: "告警总数",
  ov_kpi_uptime: "平均在线率",
  ov_kpi_coverage: "平均录像覆盖率",
  ov_outages: (n) => `${n} 次离线`,
  ov_gaps: (n) => `${n} 处缺口`,
  ov_loading: "加载中…",
  ov_failed: (status) => `概览加载失败（${status}）。`,
  ov_no_alerts: "该时段内没有告警",
  camera_tamper: "摄像头遮挡",
});
Object.assign(I18N.en, {
  overview_title: "Overview",
  ov_days: (n) => `Last ${n} days`,
  ov_range: (from, to, tz) => `${from} to ${to} (${tz})`,
  ov_alerts_per_day: "Alerts per day, by type",
  ov_uptime: "Camera uptime",
  ov_uptime_note:
    "Derived from camera offline / back online alerts (no health history is stored); time the service was not running counts as up.",
  ov_coverage: "Recording coverage",
  ov_coverage_note: "Recorded time over the period; time the service was down or recording failed counts as a gap.",
  ov_no_recording: "Recording disabled",
  ov_kpi_total: "Alerts",
  ov_kpi_uptime: "Mean uptime",
  ov_kpi_coverage: "Mean recording coverage",
  ov_outages: (n) => `${n} outage${n === 1 ? "" : "s"}`,
  ov_gaps: (n) => `${n} gap${n === 1 ? "" : "s"}`,
  ov_loading: "Loading…",
  ov_failed: (status) => `The overview could not be loaded (${status}).`,
  ov_no_alerts: "No alerts in this period",
  camera_tamper: "Camera tampered",
});

const TYPE_COLORS = {
  unscanned_departure: "#f5a623",
  unauthorized_entry: "#ff4d4f",
  camera_tamper: "#e05fd0",
  camera_offline: "#b583ff",
  camera_online: "#2ecc71",
};
const overviewState = { days: 7, data: null, error: null };

async function loadOverview() {
  overviewState.error = null;
  renderOverview();
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  try {
    const res = await api(`/api/overview?${new URLSearchParams({ days: overviewState.days, tz })}`);
    if (!res.ok) throw new Error(String(res.status));
    overviewState.data = await res.json();
  } catch (err) {
    console.warn(err);
    overviewState.error = t("ov_failed", err.message);
  }
  renderOverview();
}

function percent(x) {
  return `${(x * 100).toFixed(x >= 0.9995 || x === 0 ? 0 : 1)}%`;
}

function renderOverview() {
  for (const b of document.querySelectorAll("#overview-days button")) {
    b.textContent = t("ov_days", Number(b.dataset.days));
    b.classList.toggle("active", Number(b.dataset.days) === overviewState.days);
  }
  const d = overviewState.data;
  const charts = ["ov-alerts", "ov-uptime", "ov-coverage"].map((id) => document.getElementById(id));
  if (overviewState.error || !d) {
    const text = overviewState.error || t("ov_loading");
    for (const c of charts) c.replaceChildren(htmlEl("div", "empty", text));
    return;
  }
  const day = (ts) => new Date(ts * 1000).toLocaleDateString(lang, { year: "numeric", month: "2-digit", day: "2-digit" });
  document.getElementById("overview-range").textContent = t("ov_range", day(d.from_ts), day(d.to_ts), d.timezone);
  renderKpis(d);
  renderLegend(d.types);
  // Drawn at the size they are shown, so text stays at its CSS size whatever the window.
  const width = (el) => Math.max(320, Math.floor(el.clientWidth || 760));
  charts[0].replaceChildren(alertsChart(d, width(charts[0])));
  charts[1].replaceChildren(barList(d.uptime.map((u) => ({
    id: u.camera, name: u.name, value: u.uptime, note: t("ov_outages", u.outages),
  })), width(charts[1])));
  charts[2].replaceChildren(barList(d.coverage.map((c) => ({
    id: c.camera, name: c.name, value: c.coverage, note: c.coverage === null ? t("ov_no_recording") : t("ov_gaps", c.gaps),
  })), width(charts[2])));
}

function renderKpis(d) {
  const total = d.days.reduce((n, day) => n + Object.values(day.counts).reduce((a, b) => a + b, 0), 0);
  const byType = (type) => d.days.reduce((n, day) => n + (day.counts[type] || 0), 0);
  const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  const uptime = mean(d.uptime.map((u) => u.uptime));
  const coverage = mean(d.coverage.filter((c) => c.coverage !== null).map((c) => c.coverage));
  const kpis = [
    ["total", t("ov_kpi_total"), String(total)],
    ["unscanned_departure", t("unscanned_departure"), String(byType("unscanned_departure"))],
    ["unauthorized_entry", t("unauthorized_entry"), String(byType("unauthorized_entry"))],
    ["uptime", t("ov_kpi_uptime"), uptime === null ? "—" : percent(uptime)],
    ["coverage", t("ov_kpi_coverage"), coverage === null ? "—" : percent(coverage)],
  ];
  document.getElementById("overview-kpis").replaceChildren(...kpis.map(([key, label, value]) => {
    const div = htmlEl("div", "kpi");
    div.dataset.kpi = key;
    div.append(htmlEl("div", "kpi-value", value), htmlEl("div", "kpi-label", label));
    return div;
  }));
}

function renderLegend(types) {
  document.getElementById("ov-legend").replaceChildren(...types.map((type) => {
    const span = htmlEl("span", "legend-item");
    const key = htmlEl("span", "legend-key");
    key.style.background = TYPE_COLORS[type] || "#7d8a99";
    span.append(key, document.createTextNode(t(type)));
    return span;
  }));
}

// Stacked bars, one per day, with a value axis of round steps and a label on each day.
function alertsChart(d, W) {
  const H = 280, left = 36, right = 8, top = 18, bottom = 30;
  const totals = d.days.map((day) => Object.values(day.counts).reduce((a, b) => a + b, 0));
  const max = Math.max(...totals, 0);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "bar-chart", role: "img", "aria-label": t("ov_alerts_per_day") });
  const step = niceStep(max);
  const top_ = Math.max(step, Math.ceil(max / step) * step);
  const y = (v) => top + (H - top - bottom) * (1 - v / top_);
  for (let v = 0; v <= top_; v += step) {
    svg.append(svgEl("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), class: v ? "grid" : "axis" }));
    svg.append(svgEl("text", { x: left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, String(v)));
  }
  const slot = (W - left - right) / d.days.length;
  const bar = Math.min(48, slot * 0.62);
  const labelEvery = Math.ceil(d.days.length / 12);
  d.days.forEach((day, i) => {
    const x = left + slot * i + (slot - bar) / 2;
    let acc = 0;
    const g = svgEl("g", { class: "day", "data-date": day.date, "data-total": String(totals[i]) });
    for (const type of d.types) {
      const n = day.counts[type] || 0;
      if (!n) continue;
      const rect = svgEl("rect", {
        x, width: bar, y: y(acc + n), height: y(acc) - y(acc + n), fill: TYPE_COLORS[type] || "#7d8a99",
        class: "seg-rect", "data-type": type, rx: 2,
      });
      rect.append(svgEl("title", {}, `${day.date} · ${t(type)}: ${n}`));
      g.append(rect);
      acc += n;
    }
    if (totals[i]) {
      g.append(svgEl("text", { x: x + bar / 2, y: y(acc) - 4, class: "bar-total", "text-anchor": "middle" }, String(totals[i])));
    }
    if (i % labelEvery === 0 || i === d.days.length - 1) {
      const [, m, dd] = day.date.split("-");
      g.append(svgEl("text", { x: x + bar / 2, y: H - bottom + 16, class: "tick", "text-anchor": "middle" }, `${m}-${dd}`));
    }
    svg.append(g);
  });
  if (!max) {
    svg.append(svgEl("text", { x: (W + left) / 2, y: H / 2, class: "chart-empty", "text-anchor": "middle" }, t("ov_no_alerts")));
  }
  return svg;
}

function niceStep(max) {
  if (max <= 5) return 1;
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
}

// One horizontal bar per camera: value 0-1 (null: not applicable), coloured by how good it is.
function barList(rows, W) {
  const rowH = 40, labelW = 140, valueW = 56;
  const H = Math.max(rowH * rows.length, rowH);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "hbar-chart", role: "img" });
  const width = W - labelW - valueW - 8;
  rows.forEach((r, i) => {
    const y = i * rowH;
    const g = svgEl("g", { class: "hbar", "data-camera": r.id });
    g.append(svgEl("text", { x: 0, y: y + 16, class: "hbar-label" }, r.name));
    g.append(svgEl("text", { x: 0, y: y + 31, class: "hbar-note" }, r.note));
    g.append(svgEl("rect", { x: labelW, y: y + 10, width, height: 12, rx: 6, class: "hbar-track" }));
    if (r.value !== null) {
      const level = r.value >= 0.99 ? "good" : r.value >= 0.9 ? "fair" : "poor";
      const fill = svgEl("rect", {
        x: labelW, y: y + 10, width: Math.max(r.value * width, r.value > 0 ? 3 : 0), height: 12, rx: 6,
        class: `hbar-fill ${level}`, "data-value": String(r.value),
      });
      fill.append(svgEl("title", {}, `${r.name}: ${percent(r.value)}`));
      g.append(fill);
    }
    g.append(svgEl("text", { x: W, y: y + 21, class: "hbar-value", "text-anchor": "end" }, r.value === null ? "—" : percent(r.value)));
    svg.append(g);
  });
  return svg;
}

registerPage("overview", {
  enter(params) {
    const days = Number(params.get("days"));
    if ([7, 30].includes(days)) overviewState.days = days;
    loadOverview();
  },
  render: renderOverview,
});

document.addEventListener("DOMContentLoaded", () => {
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (pageRoute().name === "overview") renderOverview(); }, 150);
  });
  for (const b of document.querySelectorAll("#overview-days button")) {
    b.addEventListener("click", () => goPage("overview", { days: b.dataset.days }));
  }
});
