/* The search page: the URL holds the query and filters (/?q=…&type=faq&tags=…), so the back
   button, a reload and a pasted link all show the same search. */
"use strict";

(() => {
  const { el, api, problem, marked, articleHref, TYPES, LANGS } = KB;
  const $ = (id) => document.getElementById(id);
  const K = 8;
  let facets = null;
  let seq = 0;
  let inflight = null;

  function readURL() {
    const p = new URLSearchParams(location.search);
    return { q: p.get("q") || "", type: p.getAll("type"), tags: p.getAll("tags"),
             product: p.get("product") || "", lang: p.get("lang") || "" };
  }

  function toURL(s) {
    const p = new URLSearchParams();
    if (s.q) p.set("q", s.q);
    for (const t of s.type) p.append("type", t);
    for (const t of s.tags) p.append("tags", t);
    if (s.product) p.set("product", s.product);
    if (s.lang) p.set("lang", s.lang);
    const qs = p.toString();
    return "/" + (qs ? "?" + qs : "");
  }

  function readForm() {
    return {
      q: $("q").value.trim(),
      type: [...document.querySelectorAll("#types input:checked")].map((i) => i.value),
      tags: [...document.querySelectorAll("#taglist input:checked")].map((i) => i.value),
      product: $("product").value, lang: $("lang").value,
    };
  }

  /** Filter controls from the values the index holds; values in the URL it lacks stay shown. */
  function buildFilters(s) {
    const withWanted = (values, wanted) => {
      const have = new Set(values.map((v) => v.value));
      return values.concat(wanted.filter((w) => w && !have.has(w)).map((w) => ({ value: w, count: 0 })));
    };
    const types = $("types");
    types.querySelectorAll("label").forEach((n) => n.remove());
    for (const v of withWanted(facets ? facets.type : [], s.type)) {
      types.append(el("label", {}, el("input", { type: "checkbox", value: v.value, checked: s.type.includes(v.value) }),
        " ", TYPES[v.value] || v.value, " ", el("span", { class: "count" }, `(${v.count})`)));
    }
    for (const [id, values, labels, wanted] of [
      ["product", facets ? facets.product : [], {}, s.product],
      ["lang", facets ? facets.lang : [], LANGS, s.lang]]) {
      const select = $(id);
      select.replaceChildren(el("option", { value: "" }, "全部 all"));
      for (const v of withWanted(values, [wanted])) {
        select.append(el("option", { value: v.value, selected: v.value === wanted },
          `${labels[v.value] || v.value} (${v.count})`));
      }
    }
    const list = $("taglist");
    list.replaceChildren();
    for (const v of withWanted(facets ? facets.tags : [], s.tags)) {
      list.append(el("label", {}, el("input", { type: "checkbox", value: v.value, checked: s.tags.includes(v.value) }),
        " ", v.value, " ", el("span", { class: "count" }, `(${v.count})`)));
    }
    showChips(s);
  }

  function showChips(s) {
    $("tagcount").textContent = s.tags.length ? `(${s.tags.length})` : "";
    $("chips").replaceChildren(...s.tags.map((t) => el("span", { class: "chip" }, t,
      el("button", { type: "button", "aria-label": `去掉标签 remove tag ${t}`, onclick: () => {
        const box = [...document.querySelectorAll("#taglist input")].find((i) => i.value === t);
        if (box) box.checked = false;
        go(true);
      } }, "×"))));
  }

  function setForm(s) {
    $("q").value = s.q;
    buildFilters(s);
  }

  function filtersOf(s) {
    const f = {};
    if (s.type.length) f.type = s.type;
    if (s.tags.length) f.tags = s.tags;
    if (s.product) f.product = s.product;
    if (s.lang) f.lang = s.lang;
    return f;
  }

  function card(r, queryId, weak) {
    const meta = el("div", { class: "meta" },
      el("span", { class: "badge" }, TYPES[r.type] || r.type),
      r.audience === "internal" ? KB.internalBadge() : null,
      r.section ? el("span", {}, "§ " + r.section) : null,
      r.tags && r.tags.length ? el("span", {}, r.tags.join(" · ")) : null);
    return el("article", { class: "card result", dataset: { id: r.id } },
      el("h2", {}, el("a", { class: "title", href: articleHref(r.id, r.anchor, queryId) }, r.title)),
      meta,
      el("p", { class: "snippet" }, marked(r.snippet || "")),
      KB.feedback(queryId, r.id, weak ? "这条有用吗？ Useful after all?" : "有帮助吗？ Helpful?"));
  }

  function reportButton(queryId, label) {
    const button = el("button", { type: "button", id: "report", onclick: async () => {
      button.disabled = true;
      try {
        await api("/events", { json: { kind: "reported_missing", query_id: queryId } });
        button.textContent = "已报告缺失 · reported as missing";
        button.classList.add("done");
      } catch (err) {
        button.disabled = false;
        button.after(problem(err));
      }
    } }, label);
    return button;
  }

  function render(data) {
    const results = $("results");
    const cards = data.results.map((r) => card(r, data.query_id, !data.answered));
    if (data.answered) {
      $("status").textContent = `${data.results.length} 条结果 · ${data.results.length} results`;
      results.replaceChildren(...cards,
        el("div", { class: "gapbar hint" }, "都不对？ None of these answers it? ",
          reportButton(data.query_id, "报告缺失 Report as missing")));
      return;
    }
    $("status").textContent = "没有可靠答案 · No confident answer";
    results.replaceChildren(el("div", { class: "weak", id: "weak" },
      el("div", { class: "notice" }, "⚠ 知识库里没有可靠答案，以下结果只是可能相关 · No confident answer: these results may not fit"),
      el("div", { class: "gapbar" }, reportButton(data.query_id, "报告缺失 Report as missing"),
        el("span", { class: "hint" }, "告诉写作者这里缺一篇文章 · tells the writers an article is missing")),
      ...(cards.length ? cards : [el("p", { class: "hint" }, "没有结果 · no results")])));
  }

  async function run(s) {
    const mine = ++seq;
    if (inflight) inflight.abort();
    if (!s.q) {
      $("status").textContent = "";
      $("status").classList.remove("busy");
      $("results").replaceChildren();
      document.title = "知识库搜索 · Knowledge base";
      return;
    }
    document.title = `${s.q} · 知识库搜索`;
    inflight = new AbortController();
    $("status").textContent = "搜索中… Searching…";
    $("status").classList.add("busy");
    $("results").classList.add("busy");
    $("results").setAttribute("aria-busy", "true");
    $("go").disabled = true;
    try {
      const data = await api("/search", { json: { query: s.q, k: K, filters: filtersOf(s) }, signal: inflight.signal });
      if (mine === seq) {
        render(data);
        // Kept with the history entry: going back shows these results (and their query id for
        // feedback) without searching, and logging, the same query again.
        history.replaceState({ search: data, url: toURL(s) }, "", location.href);
      }
    } catch (err) {
      if (err.name === "AbortError" || mine !== seq) return;
      $("status").textContent = "";
      $("results").replaceChildren(problem(err));
    } finally {
      if (mine === seq) {
        $("results").dataset.done = String(mine); // which search the list shows, for tests and tools
        $("status").classList.remove("busy");
        $("results").classList.remove("busy");
        $("results").removeAttribute("aria-busy");
        $("go").disabled = false;
      }
    }
  }

  /** Search what the form holds; `push`: a new history entry when the URL changes. */
  function go(push) {
    const s = readForm();
    showChips(s);
    const url = toURL(s);
    if (push && url !== location.pathname + location.search) history.pushState(null, "", url);
    run(s);
  }

  function moveFocus(step) {
    const links = [...document.querySelectorAll("#results a.title")];
    if (!links.length) return false;
    const at = links.indexOf(document.activeElement);
    if (at === -1) { if (step > 0) links[0].focus(); return step > 0; }
    const next = at + step;
    if (next < 0) $("q").focus();
    else links[Math.min(next, links.length - 1)].focus();
    return true;
  }

  document.addEventListener("keydown", (ev) => {
    const typing = ev.target.closest && ev.target.closest("input, textarea, select");
    if (ev.key === "/" && !typing && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      ev.preventDefault();
      $("q").focus();
      $("q").select();
    } else if ((ev.key === "ArrowDown" || ev.key === "ArrowUp") && (!typing || ev.target.id === "q")) {
      if (moveFocus(ev.key === "ArrowDown" ? 1 : -1)) ev.preventDefault();
    } else if (ev.key === "Escape" && !typing) {
      $("q").focus();
    }
  });
  document.addEventListener("focusin", (ev) => {
    document.querySelectorAll(".card.selected").forEach((c) => c.classList.remove("selected"));
    const c = ev.target.closest && ev.target.closest("#results .card");
    if (c) c.classList.add("selected");
  });

  async function start() {
    $("f").addEventListener("submit", (ev) => { ev.preventDefault(); go(true); });
    $("filters").addEventListener("change", () => go(true));
    window.addEventListener("popstate", (ev) => { const s = readURL(); setForm(s); show(s, ev.state); });
    const s = readURL();
    $("q").value = s.q;
    buildFilters(s);
    try { facets = await api("/facets"); } catch (err) {
      if (err.status === 401 || err.status === 403) $("results").replaceChildren(problem(err));
    }
    buildFilters(readURL());
    const nav = performance.getEntriesByType("navigation")[0];
    if (s.q) show(s, nav && nav.type === "back_forward" ? history.state : null);
    else $("q").focus();
  }

  /** The results kept with this history entry, or else a new search. */
  function show(s, state) {
    if (state && state.search && state.url === toURL(s)) {
      seq++;
      if (inflight) inflight.abort();
      render(state.search);
      $("results").dataset.done = String(seq);
    } else run(s);
  }

  start();
})();
