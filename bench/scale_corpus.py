"""A large knowledge base made from the shared benchmark sets' real text.

The shared sets hold about 8,600 short articles; a support organisation's knowledge base after a
few years holds tens of thousands of longer ones (case write-ups with symptom, cause, steps and
related documents, FAQs with alternative questions). This module recombines the shared sets'
sentences into articles of that shape: each generated article takes its title from one source
article (with a product and version, as case write-ups name them), its sections from sentences
of that article and of others in the same department or set, and its alternative questions from
the titles of other articles in the same language. Every sentence is real text written by
people; only the arrangement is generated, deterministically from a seed.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

SHARED = Path(__file__).resolve().parents[2] / "shared" / "bench"
SOURCES = {  # set: language; atec holds titles only, used as questions
    "toyhom-med-faq-zh": "zh",
    "covidqa-faq-en": "en",
    "stackfaq-en": "en",
    "atec-faq-zh": "zh",
}
SECTIONS = {
    "zh": {"case": ["症状", "原因", "解决步骤", "相关文档"],
           "sop": ["适用范围", "操作步骤", "回复模板", "注意事项"], "faq": ["说明", "处理方法"]},
    "en": {"case": ["Symptom", "Cause", "Resolution steps", "Related documents"],
           "sop": ["Scope", "Steps", "Reply template", "Notes"], "faq": ["Answer", "What to do"]},
}
PRODUCTS = ["Acme VPN", "花呗", "借呗", "Acme Mail", "门户网站", "Acme Pay", "客服工作台", "Acme Print",
            "会员中心", "Acme Cloud Drive", "订单系统", "Acme Mobile"]
EN_SHARE = 0.3  # the sample knowledge base is mostly Chinese, with English beside it
SENTENCE = {"zh": re.compile(r"(?<=[。！？；!?])"), "en": re.compile(r"(?<=[.!?])\s+")}


@dataclass
class Source:
    id: str
    title: str
    lang: str
    group: str  # department tag or set: where related sentences come from
    sentences: list[str]


def _front_matter(text: str) -> tuple[dict, str]:
    _, head, body = text.split("---", 2)
    return yaml.safe_load(head), body


def read_sources(shared: Path = SHARED) -> list[Source]:
    if not all((shared / name / "articles").is_dir() for name in SOURCES):
        # From a git worktree outside the checkout's parent the sets are not where ../shared
        # points: say so, rather than fail later on an empty list of sentences.
        raise SystemExit(f"{shared}: the shared bench sets ({', '.join(SOURCES)}) are not there")
    sources = []
    for name, lang in SOURCES.items():
        for path in sorted((shared / name / "articles").glob("*.md")):
            meta, body = _front_matter(path.read_text(encoding="utf-8"))
            text = "\n".join(line for line in body.splitlines() if not line.startswith("#"))
            sentences = [s.strip() for s in SENTENCE[lang].split(text)
                         if 8 <= len(s.strip()) <= 300]
            group = f"{name}/{(meta.get('tags') or [name])[0]}"
            sources.append(Source(str(meta["id"]), str(meta["title"]), lang, group, sentences))
    return sources


def _paragraph(rng: random.Random, own: list[str], related: list[str], lang: str,
               limit: int) -> str:
    """One to four sentences, mostly the article's own, within ``limit`` characters."""
    out: list[str] = []
    for _ in range(rng.randint(1, 4)):
        pool = own if own and rng.random() < 0.6 else related
        if not pool:
            break
        sentence = rng.choice(pool)
        if sum(map(len, out)) + len(sentence) > limit and out:
            break
        out.append(sentence)
    return ("" if lang == "zh" else " ").join(out)


def generate(target: Path, articles: int = 20_000, seed: int = 18,
             shared: Path = SHARED) -> int:
    """Write ``articles`` generated articles below ``target``; returns how many were written."""
    rng = random.Random(seed)
    sources = read_sources(shared)
    bodies = [s for s in sources if s.sentences]
    by_group: dict[str, list[str]] = {}
    titles: dict[str, list[str]] = {"zh": [], "en": []}
    for s in sources:
        by_group.setdefault(s.group, []).extend(s.sentences)
        titles[s.lang].append(s.title)
    target.mkdir(parents=True, exist_ok=True)
    by_lang = {lang: [s for s in bodies if s.lang == lang] for lang in ("zh", "en")}
    for n in range(articles):
        lang = "en" if rng.random() < EN_SHARE else "zh"
        base = rng.choice(by_lang[lang])
        kind = rng.choices(["case", "faq", "sop"], [5, 3, 2])[0]
        product = rng.choice(PRODUCTS)
        version = f"{rng.randint(1, 9)}.{rng.randint(0, 12)}"
        title = f"{base.title}（{product} {version}）" if lang == "zh" else \
            f"{base.title} ({product} {version})"
        related = by_group[base.group]
        limit = 160 if lang == "zh" else 320
        lines = [_paragraph(rng, base.sentences, related, lang, limit), ""]
        for heading in SECTIONS[lang][kind]:
            lines += [f"## {heading}", ""]
            if heading in ("相关文档", "Related documents"):
                for other in rng.sample(range(articles), 3):
                    lines.append(f"- gen-{other:05d}")
                lines.append("")
                continue
            for _ in range(rng.choices([1, 2], [3, 1])[0]):
                lines += [_paragraph(rng, base.sentences, related, lang, limit), ""]
        meta = {
            "id": f"gen-{n:05d}", "title": title, "type": kind, "lang": lang,
            "product": product, "tags": [base.group.split("/", 1)[1].lower()[:30]],
            "audience": "internal" if rng.random() < 0.2 else "public",
            "questions": [f"{product} {version} {q}"
                          for q in rng.sample(titles[lang], rng.randint(3, 6))],
        }
        text = "---\n" + json.dumps(meta, ensure_ascii=False) + "\n---\n# " + title + "\n\n" + \
            "\n".join(lines)
        (target / f"gen-{n:05d}.md").write_text(text, encoding="utf-8")
    return articles
