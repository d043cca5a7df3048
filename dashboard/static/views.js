// Pages beside the live wall and the recordings (trace.js, overview.js, zones.js): each is a
// `section.page[data-page=NAME]`, shown for the URL hash `#NAME` or `#NAME?key=value&...`.
// Loaded after app.js, whose string table (I18N, t), `api` and `lang` it shares.
"use strict";

Object.assign(I18N["zh-CN"], {
  view_trace: "序列号追溯",
  view_overview: "运行概览",
  view_zones: "区域编辑",
});
Object.assign(I18N.en, {
  view_trace: "Serial trace",
  view_overview: "Overview",
  view_zones: "Zone editor",
});

const PAGES = {}; // name -> { enter(params), render() }

function registerPage(name, page) {
  PAGES[name] = page;
}

function pageRoute() {
  const [name, query] = location.hash.replace(/^#/, "").split("?");
  return { name, params: new URLSearchParams(query || "") };
}

function goPage(name, params) {
  const query = params ? new URLSearchParams(params).toString() : "";
  location.hash = query ? `#${name}?${query}` : `#${name}`;
}

// Shows the page of the hash, if it is one of these; the live wall and the recordings view
// (app.js) hide themselves for any other hash, and this hides them again after app.js ran.
function showPage() {
  const { name } = pageRoute();
  const mine = Object.hasOwn(PAGES, name);
  for (const s of document.querySelectorAll("section.page[data-page]")) s.hidden = s.dataset.page !== name;
  if (!mine) return null;
  for (const el of document.querySelectorAll("main.layout, main.recordings")) el.hidden = true;
  for (const a of document.querySelectorAll("#views a[data-view]")) {
    a.classList.toggle("active", a.dataset.view === name);
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  return name;
}

function enterPage() {
  const name = showPage();
  if (name) PAGES[name].enter(pageRoute().params);
}

// A time to open the recordings at: app.js's recordings view when it is there.
function openVideoAt(camera, epochSeconds) {
  if (typeof openRecordingsAt === "function") {
    openRecordingsAt(camera, new Date(epochSeconds * 1000));
  } else {
    goPage("recordings", { camera, t: epochSeconds.toFixed(3) });
  }
}

function svgEl(tag, attrs = {}, text = null) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== null) el.textContent = text;
  return el;
}

function htmlEl(tag, className = "", text = null) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== null) el.textContent = text;
  return el;
}

document.addEventListener("DOMContentLoaded", () => {
  window.addEventListener("hashchange", enterPage);
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.addEventListener("click", () => {
      showPage();
      for (const page of Object.values(PAGES)) page.render();
    });
  }
  enterPage();
});
