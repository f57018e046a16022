/* The writers' dashboard: gap topics to write for, how each article does, the index status. */
"use strict";

(() => {
  const { el, api, problem, TYPES } = KB;
  const $ = (id) => document.getElementById(id);
  const KIND = { unanswered: "未回答 unanswered", not_helpful: "没帮助 not helpful", reported: "坐席报告 reported" };
  const STATUS = { open: "待处理 open", resolved: "已解决 resolved", answered: "已回答 answered",
                   dismissed: "已忽略 dismissed", mostly_answered: "多数已答 mostly answered",
                   doubtful: "答复存疑 answered doubtfully" };
  let health = {};

  function params() {
    const p = new URLSearchParams();
    if ($("since").value) p.set("since", $("since").value);
    if ($("until").value) p.set("until", $("until").value);
    return p;
  }

  function td(label, ...content) { return el("td", { "data-label": label }, ...content); }
  function num(label, value) { return el("td", { class: "num", "data-label": label }, String(value ?? 0)); }

  function table(headers, rows, cls) {
    return el("div", { class: "table-wrap" }, el("table", { class: "data cards " + (cls || "") },
      el("thead", {}, el("tr", {}, headers.map(([h, numeric]) => el("th", { class: numeric ? "num" : null }, h)))),
      el("tbody", {}, rows)));
  }

  /** Bars of the counts per week, oldest first. */
  function sparkline(counts, title) {
    const max = Math.max(1, ...counts);
    const w = 7, gap = 2, h = 22;
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", counts.length * (w + gap));
    svg.setAttribute("height", h);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", title);
    const tip = document.createElementNS("http://www.w3.org/2000/svg", "title");
    tip.textContent = title;
    svg.append(tip);
    counts.forEach((c, i) => {
      const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      const bh = c ? Math.max(2, Math.round((c / max) * h)) : 1;
      bar.setAttribute("x", i * (w + gap));
      bar.setAttribute("y", h - bh);
      bar.setAttribute("width", w);
      bar.setAttribute("height", bh);
      svg.append(bar);
    });
    return svg;
  }

  /** Counts of the last WEEKS ISO weeks, oldest first (weeks without a query count 0). */
  const WEEKS = 8;
  function isoWeek(d) {
    const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
    const day = t.getUTCDay() || 7;
    t.setUTCDate(t.getUTCDate() + 4 - day);
    const year = t.getUTCFullYear();
    const week = Math.ceil(((t - Date.UTC(year, 0, 1)) / 86400000 + 1) / 7);
    return `${year}-W${String(week).padStart(2, "0")}`;
  }
  function weekly(t) {
    const w = t.weekly;
    if (w && typeof w === "object" && !Array.isArray(w) && Object.keys(w).length) {
      // The weeks up to the range's end (or today): the bars of the range asked for.
      const until = $("until").value;
      const end = until && until < new Date().toISOString().slice(0, 10) ? new Date(until + "T12:00:00Z") : new Date();
      const weeks = [];
      for (let i = WEEKS - 1; i >= 0; i--) weeks.push(isoWeek(new Date(end - i * 7 * 86400000)));
      const shown = weeks.map((k) => w[k] || 0);
      // Weeks named another way than ISO: show them as they come.
      return shown.some((n) => n) ? shown : Object.keys(w).sort().slice(-WEEKS).map((k) => w[k]);
    }
    if (Array.isArray(w) && w.length) return w.map((x) => (typeof x === "number" ? x : x.count || 0));
    return [t.before || 0, t.last_7_days || 0];
  }

  function dict(d) {
    if (!d) return "—";
    if (Array.isArray(d)) return d.join(" · ") || "—";
    return Object.entries(d).map(([k, v]) => `${k} ${v}`).join(" · ") || "—";
  }

  function nearest(t) {
    let list = t.nearest || t.nearest_articles || [];
    if (!Array.isArray(list)) list = [list];
    list = list.map((n) => (typeof n === "string" ? { id: n } : n)).filter((n) => n && (n.id || n.article_id));
    if (!list.length && t.article_id) list = [{ id: t.article_id }];
    if (!list.length) return ["—"];
    return list.slice(0, 3).map((n) => {
      const id = n.id || n.article_id;
      const bad = n.not_helpful ?? (health[id] ? health[id].not_helpful : 0);
      return el("div", {}, el("a", { href: KB.articleHref(id) }, n.title || (health[id] && health[id].title) || id),
        " ", el("span", { class: "count", title: "没帮助次数 not-helpful votes" }, `没帮助 ${bad} not helpful`));
    });
  }

  async function act(t, action, body, box) {
    try {
      await api(`/gaps/${encodeURIComponent(t.id)}/${action}`, { json: body || {} });
      load();
    } catch (err) {
      box.append(problem(err));
    }
  }

  function actions(t) {
    const box = el("div", { class: "topic-actions" });
    if (t.status !== "open" && t.status !== "mostly_answered") {
      if (t.resolved_by) box.append(el("span", { class: "hint" }, "→ ", el("a", { href: KB.articleHref(t.resolved_by) }, t.resolved_by)));
      if (t.status === "dismissed" || t.status === "answered") {
        box.append(el("button", { type: "button", class: "small reopen", onclick: () => act(t, "reopen", {}, box) }, "重新打开 Reopen"));
      }
      return box;
    }
    const input = el("input", { type: "text", placeholder: "文章 id article id", "aria-label": "回答它的文章 id · id of the answering article",
                                list: "article-ids" });
    box.append(
      el("button", { type: "button", class: "small dismiss", onclick: () => act(t, "dismiss", {}, box) }, "忽略 Dismiss"),
      input,
      el("button", { type: "button", class: "small answer", onclick: () => {
        if (!input.value.trim()) { input.focus(); return; }
        act(t, "answered", { article_id: input.value.trim() }, box);
      } }, "已回答 Answered"));
    return box;
  }

  const same = (text) => String(text || "").toLowerCase().replace(/[\s\p{P}]+/gu, "");

  function topicRow(t) {
    const examples = (t.examples || []).filter((e) => same(e) !== same(t.representative) && same(e) !== same(t.title));
    return el("tr", { class: "topic", dataset: { id: t.id } },
      td("话题 Topic", el("div", {},
        el("strong", {}, t.title || t.representative),
        " ", el("span", { class: "badge" }, KIND[t.kind] || t.kind),
        t.title && same(t.title) !== same(t.representative) ? el("div", { class: "hint" }, "问法 Asked as: " + t.representative) : null,
        examples.length ? el("ul", { class: "examples" }, examples.slice(0, 4).map((e) => el("li", {}, e))) : null,
        t.first_seen ? el("div", { class: "hint seen" }, `首次 first ${t.first_seen.slice(0, 10)} · 最近 last ${String(t.last_seen || "").slice(0, 10)}`) : null,
        t.ticket_ids && t.ticket_ids.length ? el("div", { class: "hint" }, "工单 Tickets: " + t.ticket_ids.join(", ")) : null)),
      num("次数 Count", t.count),
      td("趋势 Trend", el("div", {}, sparkline(weekly(t), `每周次数 per week: ${weekly(t).join(", ")}`),
        " ", el("span", { class: "hint" }, t.trend || ""))),
      td("渠道 Channels", dict(t.channels)),
      td("语言 Languages", dict(t.languages || t.langs)),
      td("最近文章 Nearest article", el("div", {}, nearest(t))),
      el("td", { "data-label": "状态 Status", class: "nowrap" }, el("span", { class: "st-" + t.status }, STATUS[t.status] || t.status)),
      td("操作 Actions", actions(t)));
  }

  function renderGaps(data) {
    // The range is the API's: counts, trend and weeks are those of the range's queries.
    const topics = data.topics;
    $("gap-count").textContent = `(${topics.length})`;
    if (!topics.length) { $("gaps").replaceChildren(el("p", { class: "hint" }, "没有缺口 · no gap topics in this range")); return; }
    $("gaps").replaceChildren(table([["话题 Topic"], ["次数 Count", 1], ["趋势 Trend"], ["渠道 Channels"],
      ["语言 Languages"], ["最近文章 Nearest article"], ["状态 Status"], ["操作 Actions"]], topics.map(topicRow), "gaps"));
  }

  function articleCell(r) {
    return td("文章 Article", el("div", {}, el("a", { href: KB.articleHref(r.id) }, r.title),
      r.audience === "internal" ? [" ", el("span", { class: "badge internal" }, "内部 internal")] : null,
      el("div", { class: "hint" }, r.id)));
  }

  function renderHealth(data) {
    health = Object.fromEntries(data.articles.map((r) => [r.id, r]));
    const cols = [["文章 Article"], ["类型 Type"], ["前三 Top 3", 1], ["打开 Opened", 1], ["复制 Copied", 1],
                  ["有帮助 Helpful", 1], ["没帮助 Not helpful", 1]];
    $("health").replaceChildren(table(cols, data.articles.map((r) => el("tr", { class: "health", dataset: { id: r.id } },
      articleCell(r), td("类型 Type", TYPES[r.type] || r.type), num("前三 Top 3", r.shown), num("打开 Opened", r.opened),
      num("复制 Copied", r.copied), num("有帮助 Helpful", r.helpful), num("没帮助 Not helpful", r.not_helpful))), "health"));
    $("review-count").textContent = `(${data.past_review.length})`;
    $("review").replaceChildren(data.past_review.length ? table([["文章 Article"], ["复核日期 Review by"]],
      data.past_review.map((r) => el("tr", {}, articleCell(r), td("复核日期 Review by", el("span", { class: "overdue" }, r.review_by)))))
      : el("p", { class: "hint" }, "没有 · none"));
    $("unseen-count").textContent = `(${data.never_shown.length})`;
    $("unseen").replaceChildren(data.never_shown.length ? table([["文章 Article"], ["类型 Type"]],
      data.never_shown.map((r) => el("tr", {}, articleCell(r), td("类型 Type", TYPES[r.type] || r.type))))
      : el("p", { class: "hint" }, "没有 · none"));
    const ids = el("datalist", { id: "article-ids" }, data.articles.map((r) => el("option", { value: r.id }, r.title)));
    document.getElementById("article-ids")?.remove();
    document.body.append(ids);
  }

  /** Rows as CSV, cells a spreadsheet would run as formulas quoted. */
  function csv(header, rows) {
    const cell = (v) => {
      let t = String(v ?? "");
      if (/^[=+\-@\t\r]/.test(t)) t = "'" + t;
      return /[",\n\r]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
    };
    return [header, ...rows].map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
  }

  function problemRows(lines) {
    return lines.map((line) => {
      const m = /^(.*?):(\d+): (.*)$/s.exec(line);
      return m ? [m[1], m[2], m[3]] : ["", "", line];
    });
  }

  function renderIndex(s) {
    const problems = s.problems || [];
    const failed = s.last_build_ok === false;
    const link = $("problems-csv");
    if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([csv(["path", "line", "message"], problemRows(problems))],
                                             { type: "text/csv;charset=utf-8" }));
    $("index").replaceChildren(el("dl", { class: "kv" },
      el("dt", {}, "版本 Version"), el("dd", { id: "index-version" }, s.index_version),
      el("dt", {}, "构建时间 Built"), el("dd", {}, s.created || s.built || "—"),
      el("dt", {}, "文章 Articles"), el("dd", {}, String(s.articles)),
      el("dt", {}, "分块 Chunks"), el("dd", {}, String(s.chunks)),
      el("dt", {}, "模型 Model"), el("dd", {}, s.model)),
      failed ? el("div", {}, el("p", { class: "err" },
        `上次构建失败 Last build failed ${s.last_build_time || ""} — 已发布的版本继续服务 · the published version keeps serving`),
        el("pre", { class: "problems", id: "problems" }, problems.join("\n")))
        : el("p", { class: "hint" }, s.last_build_ok ? "上次构建成功 · the last build succeeded" : "没有构建记录 · no build recorded"));
  }

  async function part(id, promise, show) {
    try { show(await promise); } catch (err) { $(id).replaceChildren(problem(err)); }
  }

  async function load() {
    const p = params();
    const gp = new URLSearchParams(p);
    gp.set("min_count", String(Math.max(1, parseInt($("min").value, 10) || 1)));
    if ($("closed").checked) gp.set("include_resolved", "true");
    const hp = new URLSearchParams();
    $("gaps-csv").href = "/gaps?" + new URLSearchParams([...gp, ["format", "csv"]]);
    for (const [id, table] of [["health-csv", "articles"], ["review-csv", "past_review"], ["unseen-csv", "never_shown"]]) {
      $(id).href = "/stats/articles?" + new URLSearchParams([...hp, ["format", "csv"], ["table", table]]);
    }
    const url = "/writers" + (gp.toString() ? "?" + gp : "");
    if (url !== location.pathname + location.search) history.replaceState(null, "", url);
    await part("health", api("/stats/articles?" + hp), renderHealth);
    await Promise.all([part("gaps", api("/gaps?" + gp), renderGaps), part("index", api("/index/status"), renderIndex)]);
  }

  function start() {
    const p = new URLSearchParams(location.search);
    $("since").value = p.get("since") || "";
    $("until").value = p.get("until") || "";
    $("min").value = p.get("min_count") || "1";
    $("closed").checked = p.get("include_resolved") === "true";
    $("range").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    load();
  }

  start();
})();
