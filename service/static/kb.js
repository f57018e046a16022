/* Shared by the pages: DOM building (text is always set as text), the API client, errors. */
"use strict";

const KB = (() => {
  /** An element; strings in `children` become text nodes, never markup. */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** The search snippet, keeping only its text and <mark> highlights whatever it holds. */
  function marked(html) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html; // inert: nothing in a template runs or loads
    const out = document.createDocumentFragment();
    const walk = (node, into) => {
      for (const child of node.childNodes) {
        if (child.nodeType === Node.TEXT_NODE) into.append(child.textContent);
        else if (child.nodeName === "MARK") { const m = el("mark"); walk(child, m); into.append(m); }
        else if (child.nodeType === Node.ELEMENT_NODE) walk(child, into);
      }
    };
    walk(tpl.content, out);
    return out;
  }

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  /** fetch with the page's own credentials (the session cookie); JSON in, JSON out. */
  async function api(path, { json, method, signal } = {}) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" }, signal };
    if (json !== undefined) {
      init.method = method || "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (method) init.method = method;
    let res;
    try { res = await fetch(path, init); }
    catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "network", "连不上服务 · cannot reach the service");
    }
    let data = null;
    try { data = await res.json(); } catch (_) { /* an empty or non-JSON body */ }
    if (!res.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(res.status, err.code || "http_error", err.message || `HTTP ${res.status}`);
    }
    return data;
  }

  function loginUrl() {
    return "/login?next=" + encodeURIComponent(location.pathname + location.search + location.hash);
  }

  /** An error box; for a missing or refused key, a way to log in. */
  function problem(err) {
    if (err && (err.status === 401 || err.status === 403)) {
      const text = err.status === 401 ? "请先登录 · Please log in" : "没有权限 · Your key may not see this";
      return el("div", { class: "err", role: "alert" }, text, " — ",
        el("a", { href: loginUrl() }, "登录 Log in"), el("span", { class: "hint" }, ` (${err.message})`));
    }
    return el("div", { class: "err", role: "alert" }, (err && err.message) || String(err));
  }

  /** Copy plain text: the Clipboard API where the page is a secure context, else a textarea. */
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); return true; } catch (_) { /* fall back */ }
    }
    const area = el("textarea", { class: "offscreen", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } finally { area.remove(); }
    return ok;
  }

  function articleHref(id, anchor, queryId) {
    let href = "/a/" + encodeURIComponent(id);
    if (queryId) href += "?qid=" + encodeURIComponent(queryId);
    if (anchor) href += "#" + encodeURIComponent(anchor);
    return href;
  }

  const TYPES = { faq: "FAQ 常见问题", sop: "SOP 操作流程", case: "案例 Case" };
  const LANGS = { zh: "中文 Chinese", en: "English 英文" };

  function internalBadge() {
    return el("span", { class: "badge internal", title: "内部资料，请勿发送给客户 · internal — do not send to the customer" },
      "内部 · internal — 勿发给客户 do not send to the customer");
  }

  /** Helpful / not helpful buttons for one result of one query. */
  function feedback(queryId, articleId, label) {
    const box = el("div", { class: "fb" }, el("span", { class: "fb-label" }, label || "有帮助吗？ Helpful?"));
    const send = async (helpful, button) => {
      for (const b of box.querySelectorAll("button")) b.classList.remove("done");
      try {
        await api("/feedback", { json: { query_id: queryId, article_id: articleId, helpful } });
        button.classList.add("done");
        note.textContent = "已记录 · recorded";
      } catch (err) { note.textContent = err.message; }
    };
    const yes = el("button", { class: "small", type: "button", "data-fb": "yes", onclick: () => send(true, yes) }, "有帮助 Helpful");
    const no = el("button", { class: "small", type: "button", "data-fb": "no", onclick: () => send(false, no) }, "没帮助 Not helpful");
    const note = el("span", { class: "fb-note", "aria-live": "polite" });
    box.append(yes, no, note);
    return box;
  }

  return { el, marked, api, ApiError, problem, copyText, articleHref, TYPES, LANGS, internalBadge, feedback, loginUrl };
})();
