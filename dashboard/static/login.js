// BondWatch sign-in page: posts the name and password, then opens the dashboard.
"use strict";

const I18N = {
  "zh-CN": {
    sign_in_title: "登录监控台",
    sign_in_hint: "请使用您的 BondWatch 账户登录。",
    name: "用户名",
    password: "密码",
    sign_in: "登录",
    signing_in: "正在登录…",
    accounts_hint: "账户由管理员创建（bondwatch user add）。",
    missing: "请输入用户名和密码。",
    wrong: "用户名或密码错误。",
    throttled: (s) => `登录失败次数过多，请在 ${Math.ceil(s / 60)} 分钟后重试。`,
    failed: "无法连接服务器，请稍后重试。",
  },
  en: {
    sign_in_title: "Sign in to the dashboard",
    sign_in_hint: "Use your BondWatch account.",
    name: "User name",
    password: "Password",
    sign_in: "Sign in",
    signing_in: "Signing in…",
    accounts_hint: "Accounts are created by an administrator (bondwatch user add).",
    missing: "Enter your user name and password.",
    wrong: "Wrong user name or password.",
    throttled: (s) => `Too many failed sign-ins. Try again in ${Math.ceil(s / 60)} min.`,
    failed: "The server cannot be reached. Try again shortly.",
  },
};
const LANG_KEY = "bondwatch.lang"; // shared with the dashboard page
let lang = I18N[localStorage.getItem(LANG_KEY)] ? localStorage.getItem(LANG_KEY) : "zh-CN";
let error = null; // [key, ...args] of the message shown, re-rendered on a language switch

function t(key, ...args) {
  const value = I18N[lang][key] ?? key;
  return typeof value === "function" ? value(...args) : value;
}

function render() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.classList.toggle("active", b.dataset.lang === lang);
  }
  document.getElementById("login-error").textContent = error ? t(...error) : "";
}

function showError(...message) {
  error = message;
  render();
}

async function signIn(ev) {
  ev.preventDefault();
  const name = document.getElementById("login-name").value.trim();
  const password = document.getElementById("login-password").value;
  if (!name || !password) return showError("missing");
  const button = document.getElementById("login-submit");
  button.disabled = true;
  button.textContent = t("signing_in");
  try {
    const res = await fetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name, password }),
    });
    if (res.ok) {
      location.replace("/");
      return;
    }
    if (res.status === 429) showError("throttled", Number(res.headers.get("Retry-After")) || 300);
    else if (res.status === 401) showError("wrong");
    else showError("failed");
    document.getElementById("login-password").select();
  } catch (err) {
    console.warn(err);
    showError("failed");
  } finally {
    button.disabled = false;
    button.textContent = t("sign_in");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.addEventListener("click", () => {
      lang = b.dataset.lang;
      localStorage.setItem(LANG_KEY, lang);
      render();
    });
  }
  document.getElementById("login-form").addEventListener("submit", signIn);
  render();
});
