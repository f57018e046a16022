"""Group gap queries into topics by meaning, for the writers' gap report.

Two queries belong together when their texts normalise to the same thing (Traditional and
Simplified forms meet here), when the embedding model puts them close, when they share most
character bigrams (robust for Chinese with an English-only model), or when the knowledge base
sends them to articles with the same tags: the tag vocabulary is shared across languages, so it
bridges a Chinese and an English phrasing of one question even with a monolingual model.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from kb.gaps import LoggedQuery

LINK = 0.6  # average similarity needed to stay in one topic
TAG_WEIGHT = 0.85  # tag agreement alone is weaker evidence than the same words
MAX_TEXTS = 5000


@dataclass
class Topic:
    id: str
    kind: str  # "unanswered": nothing answers it; "not_helpful": an article did not answer it
    article_id: str | None
    representative: str
    count: int
    first_seen: str
    last_seen: str
    last_7_days: int
    before: int
    trend: str
    channels: dict[str, int]
    examples: list[str]
    status: str = "open"
    resolved_by: str | None = None
    resolved_at: str | None = None
    ticket_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)} or {text}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def similarity(texts: list[LoggedQuery], tags: dict[str, set[str]]) -> np.ndarray:
    n = len(texts)
    sim = np.eye(n)
    grams = [_bigrams(t.norm) for t in texts]
    neighbour_tags = [set().union(*(tags.get(a, set()) for a in t.neighbours[:3]))
                      for t in texts]
    vectors = [t.vector for t in texts]
    dims = {v.shape[0] for v in vectors if v is not None}
    dense = None
    if len(dims) == 1 and all(v is not None for v in vectors):
        matrix = np.stack([v for v in vectors if v is not None])
        dense = matrix @ matrix.T
    for i in range(n):
        for j in range(i + 1, n):
            s = max(_jaccard(grams[i], grams[j]),
                    TAG_WEIGHT * _jaccard(neighbour_tags[i], neighbour_tags[j]))
            if dense is not None:
                s = max(s, float(dense[i, j]))
            sim[i, j] = sim[j, i] = s
    return sim


def cluster(texts: list[LoggedQuery], tags: dict[str, set[str]]) -> list[list[int]]:
    if len(texts) < 2:
        return [list(range(len(texts)))] if texts else []
    # Imported here: scikit-learn takes a second and a half to import, which every `kb index`
    # would pay through the engine even with no gaps to cluster.
    from sklearn.cluster import AgglomerativeClustering

    sim = similarity(texts, tags)
    model = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                    distance_threshold=1 - LINK)
    labels = model.fit_predict(np.clip(1 - sim, 0, None))
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    return list(groups.values())


def _trend(recent: int, before: int) -> str:
    if before == 0:
        return "new" if recent else "quiet"
    if recent > before * 1.25:
        return "rising"
    if recent < before * 0.75:
        return "falling"
    return "steady"


def build_topics(
    entries: list[tuple[LoggedQuery, str | None]], kind: str, tags: dict[str, set[str]],
    today: dt.datetime | None = None,
) -> list[Topic]:
    """Cluster ``(query, article)`` gap entries into topics, one clustering per article."""
    today = today or dt.datetime.now(dt.UTC)
    cutoff = (today - dt.timedelta(days=7)).isoformat(timespec="seconds")
    by_article: dict[str | None, list[LoggedQuery]] = {}
    for query, article in entries:
        by_article.setdefault(article, []).append(query)
    topics = []
    for article, queries in by_article.items():
        distinct: dict[str, list[LoggedQuery]] = {}
        for q in queries:
            distinct.setdefault(q.norm, []).append(q)
        keys = sorted(distinct, key=lambda k: -len(distinct[k]))[:MAX_TEXTS]
        heads = [distinct[k][-1] for k in keys]
        for group in cluster(heads, tags):
            members = [q for i in group for q in distinct[keys[i]]]
            rep = max(group, key=lambda i: len(distinct[keys[i]]))
            recent = sum(1 for q in members if q.ts >= cutoff)
            open_members = [q for q in members if q.resolved_at is None]
            resolved = [q for q in members if q.resolved_at]
            examples = list(dict.fromkeys(q.query for q in reversed(members)))[:5]
            topic_key = f"{kind}:{article}:{keys[rep]}"
            topics.append(Topic(
                id=hashlib.sha1(topic_key.encode()).hexdigest()[:10],
                kind=kind,
                article_id=article,
                representative=distinct[keys[rep]][-1].query,
                count=len(members),
                first_seen=min(q.ts for q in members),
                last_seen=max(q.ts for q in members),
                last_7_days=recent,
                before=len(members) - recent,
                trend=_trend(recent, len(members) - recent),
                channels=dict(Counter(q.channel for q in members)),
                examples=examples,
                status="open" if open_members or kind != "unanswered" else "resolved",
                resolved_by=resolved[-1].resolved_by if resolved and not open_members else None,
                resolved_at=resolved[-1].resolved_at if resolved and not open_members else None,
                ticket_ids=sorted({q.ticket_id for q in members if q.ticket_id})[:10],
            ))
    return sorted(topics, key=lambda t: (-t.count, t.last_seen), reverse=False)


CSV_FIELDS = ("id", "kind", "status", "article_id", "representative", "count", "last_7_days",
              "before", "trend", "first_seen", "last_seen", "channels", "examples", "resolved_by",
              "resolved_at")


def topics_csv(topics: list[Topic]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    for t in topics:
        row = t.to_dict()
        row["channels"] = " ".join(f"{k}:{v}" for k, v in sorted(t.channels.items()))
        row["examples"] = " | ".join(t.examples)
        writer.writerow([row[f] for f in CSV_FIELDS])
    return buffer.getvalue()
