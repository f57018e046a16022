/* The article view: /a/{id}#anchor, scrolled to the section a search result pointed at. */
"use strict";

(() => {
  const { el, api, problem, TYPES, LANGS } = KB;
  const $ = (id) => document.getElementById(id);
  const articleId = decodeURIComponent(location.pathname.replace(/^\/a\//, ""));
  const queryId = new URLSearchParams(location.search).get("qid");
  const COPY = { reply: "复制回复 Copy reply", answer: "复制答案 Copy answer" };

  function target() {
    const raw = location.hash.slice(1);
    if (!raw) return null;
    let anchor = raw;
    try { anchor = decodeURIComponent(raw); } catch (_) { /* a malformed escape: use it as is */ }
    return document.getElementById("s-" + anchor);
  }

  function scrollToTarget() {
    document.querySelectorAll("section.target").forEach((s) => s.classList.remove("target"));
    const section = target();
    if (section) {
      section.classList.add("target");
      section.scrollIntoView({ block: "start" });
    }
  }

  function copyButton(section) {
    const button = el("button", { type: "button", class: "small copy", "data-anchor": section.anchor,
      onclick: async () => {
        const ok = await KB.copyText(section.text);
        if (!ok) { button.textContent = "复制失败 · copy failed"; return; }
        button.textContent = "✓ 已复制 Copied";
        button.classList.add("done");
        setTimeout(() => { button.textContent = COPY[section.copy_kind]; button.classList.remove("done"); }, 2500);
        api("/events", { json: { kind: "copied", article_id: articleId, query_id: queryId || null } })
          .catch(() => { /* the copy worked; its count is best effort */ });
      } }, COPY[section.copy_kind]);
    return button;
  }

  function sectionNode(a, s, i) {
    const heading = s.heading_path[s.heading_path.length - 1];
    const titled = !(s.level === 1 && heading === a.title);
    const tag = "h" + Math.min(Math.max(s.level, 2), 4);
    const head = el("div", { class: "sechead" },
      titled ? el(tag, {}, heading) : el("span"), s.copy_kind ? copyButton(s) : null);
    const body = el("div", { class: "secbody" });
    body.innerHTML = s.html; // markdown-it output with raw HTML off: escaped by the server
    return el("section", { id: "s-" + s.anchor, class: s.copy_kind === "reply" ? "reply" : null,
                           dataset: { anchor: s.anchor, index: i } },
      (titled || s.copy_kind) ? head : null, body);
  }

  function render(a) {
    document.title = `${a.title} · 知识库`;
    const overdue = a.review_by && a.review_by < new Date().toISOString().slice(0, 10);
    const toc = a.sections.filter((s) => s.heading_path.length > 1);
    const doc = el("article", { class: "doc", lang: a.lang === "en" ? "en" : "zh" },
      a.audience === "internal" ? el("div", { class: "internal-banner", role: "note", id: "internal" },
        "⚠ 内部资料 — 请勿发送给客户 · Internal — do not send to the customer") : null,
      el("h1", {}, a.title),
      el("div", { class: "meta" },
        el("span", { class: "badge" }, TYPES[a.type] || a.type),
        el("span", {}, LANGS[a.lang] || a.lang),
        a.product ? el("span", {}, "产品 Product: " + a.product) : null,
        a.tags.length ? el("span", {}, "标签 Tags: " + a.tags.join(" · ")) : null,
        a.updated ? el("span", {}, "更新 Updated " + a.updated) : null,
        a.review_by ? el("span", { class: overdue ? "overdue" : null },
          (overdue ? "已过复核期 Review overdue " : "复核 Review by ") + a.review_by) : null,
        el("span", {}, a.id)),
      a.questions.length ? el("p", { class: "hint" }, "也问作 Also asked as: " + a.questions.join(" / ")) : null,
      toc.length > 2 ? el("nav", { class: "toc" }, el("details", {},
        el("summary", {}, "目录 Contents"),
        el("ol", {}, toc.map((s) => el("li", {}, el("a", { href: "#" + encodeURIComponent(s.anchor) },
          s.heading_path.slice(1).join(" › "))))))) : null,
      a.sections.map((s, i) => sectionNode(a, s, i)),
      queryId ? KB.feedback(queryId, a.id, "这篇文章有帮助吗？ Was this article helpful?") : null);
    $("page").replaceChildren(doc);
  }

  async function start() {
    if (queryId && history.length > 1) {
      $("back").addEventListener("click", (ev) => { ev.preventDefault(); history.back(); });
    }
    try {
      const a = await api("/articles/" + encodeURIComponent(articleId));
      $("status").remove();
      render(a);
      scrollToTarget();
      window.addEventListener("hashchange", scrollToTarget);
      api("/events", { json: { kind: "opened", article_id: a.id, query_id: queryId || null } })
        .catch(() => { /* counting is best effort */ });
    } catch (err) {
      $("status").remove();
      if (err.status === 404) err.message = "找不到这篇文章 · Article not found — " + err.message;
      $("page").replaceChildren(problem(err));
      document.title = "找不到文章 · Article not found";
    }
  }

  start();
})();
