"""Read labelled queries and compute retrieval and answered/unanswered metrics (pytrec_eval)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytrec_eval

from kb.errors import EvalDataError, Problem

if TYPE_CHECKING:
    from kb.storage.base import FeedbackLabel

MEASURES = {"ndcg_cut.10", "recall.1,5,10", "recip_rank"}


@dataclass(frozen=True)
class LabelledQuery:
    qid: str
    query: str
    lang: str | None
    relevant: dict[str, int]  # article id -> grade; empty: the knowledge base has no answer


def read_queries(queries: Path, qrels: Path) -> list[LabelledQuery]:
    """Queries as JSON lines ``{"qid", "query", "lang"?}``; qrels as ``qid<TAB>id<TAB>grade``."""
    labels: dict[str, dict[str, int]] = {}
    for _, qid, article, grade in _qrels(qrels):
        labels.setdefault(qid, {})[article] = grade
    out: list[LabelledQuery] = []
    seen: set[str] = set()
    for n, line in _lines(queries):
        try:
            row = json.loads(line)
            qid, text = str(row["qid"]), str(row["query"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise EvalDataError(f"{queries}:{n}: expected a JSON object with qid and query") from exc
        if qid in seen:
            raise EvalDataError(f"{queries}:{n}: duplicate qid {qid!r}")
        seen.add(qid)
        grades = {a: g for a, g in labels.get(qid, {}).items() if g > 0}
        out.append(LabelledQuery(qid, text, row.get("lang"), grades))
    unknown = sorted(set(labels) - seen)
    if unknown:
        raise EvalDataError(f"{qrels}:1: qrels name queries not in {queries}: {unknown[:5]}")
    return out


def _qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """(line, qid, article id, grade) of each label in a qrels file."""
    for n, line in _lines(path):
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) != 3:
            raise EvalDataError(f"{path}:{n}: expected 'qid<TAB>article_id<TAB>relevance'")
        try:
            grade = int(parts[2])
        except ValueError as exc:
            raise EvalDataError(f"{path}:{n}: relevance must be an integer") from exc
        yield n, parts[0], parts[1], grade


def unknown_articles(qrels: Path, articles: Collection[str]) -> list[Problem]:
    """The labels naming an article the index does not hold (a typo, or an article since
    removed): a query labelled with one can never find its answer."""
    return [Problem(str(qrels), n, f"unknown article {article!r}")
            for n, _, article, _ in _qrels(qrels) if article not in articles]


def labelled_from_feedback(labels: Iterable[FeedbackLabel],
                           articles: set[str]) -> list[LabelledQuery]:
    """Agents' labels as labelled queries, one per phrasing (the same words asked again count
    once, with every article any asking named). An answer no longer in ``articles`` is
    dropped, and a query left with none is no label either way."""
    merged: dict[str, tuple[FeedbackLabel, set[str], bool]] = {}
    for label in labels:
        first, answers, named = merged.get(label.norm, (label, set(), False))
        kept = {a for a in label.answers if a in articles}
        merged[label.norm] = (first, answers | kept, named or bool(label.answers))
    return [LabelledQuery(first.query_id, first.query, first.lang, dict.fromkeys(answers, 1))
            for first, answers, named in merged.values() if answers or not named]


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"{path}: cannot read: {exc}") from exc
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield n, line.strip()


@dataclass
class Report:
    queries: int
    answerable: int
    unanswerable: int
    ndcg10: float
    recall1: float
    recall5: float
    recall10: float
    mrr10: float
    answered_when_answerable: float  # share of answerable queries reported answered
    flagged_when_unanswerable: float  # share of unanswerable queries reported as gaps

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("queries", f"{self.queries} ({self.answerable} answerable, "
                        f"{self.unanswerable} unanswerable)"),
            ("nDCG@10", f"{self.ndcg10:.4f}"),
            ("Recall@1", f"{self.recall1:.4f}"),
            ("Recall@5", f"{self.recall5:.4f}"),
            ("Recall@10", f"{self.recall10:.4f}"),
            ("MRR@10", f"{self.mrr10:.4f}"),
            ("answerable reported answered", f"{self.answered_when_answerable:.1%}"),
            ("answerable flagged as gaps", f"{1 - self.answered_when_answerable:.1%}"),
            ("unanswerable flagged as gaps", f"{self.flagged_when_unanswerable:.1%}"),
        ]


def retrieval_metrics(
    labelled: list[LabelledQuery], runs: dict[str, list[tuple[str, float]]]
) -> dict[str, dict[str, float]]:
    """Per-query measures for answerable queries; runs map qid -> ranked (article, score)."""
    qrels = {q.qid: q.relevant for q in labelled if q.relevant}
    run = {}
    for qid in qrels:
        ranked = runs.get(qid, [])[:10]
        # pytrec_eval sorts by score: encode rank so ties cannot reorder the list.
        run[qid] = {a: float(len(ranked) - i) for i, (a, _) in enumerate(ranked)} or {"-": 0.0}
    return pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(run)


def mean(per_query: dict[str, dict[str, float]], measure: str) -> float:
    values = [m[measure] for m in per_query.values()]
    return sum(values) / len(values) if values else 0.0


def evaluate(
    labelled: list[LabelledQuery],
    search: Callable[[LabelledQuery], tuple[list[tuple[str, float]], bool]],
    progress: Callable[[Iterable[LabelledQuery]], Iterable[LabelledQuery]] = lambda x: x,
) -> Report:
    """Run ``search`` (returning ranked articles and the answered flag) on every query."""
    runs: dict[str, list[tuple[str, float]]] = {}
    answered: dict[str, bool] = {}
    for q in progress(labelled):
        runs[q.qid], answered[q.qid] = search(q)
    return report_from_runs(labelled, runs, answered)


def report_from_runs(labelled: list[LabelledQuery], runs: dict[str, list[tuple[str, float]]],
                     answered: dict[str, bool]) -> Report:
    per_query = retrieval_metrics(labelled, runs)
    pos = [q for q in labelled if q.relevant]
    neg = [q for q in labelled if not q.relevant]
    return Report(
        queries=len(labelled),
        answerable=len(pos),
        unanswerable=len(neg),
        ndcg10=mean(per_query, "ndcg_cut_10"),
        recall1=mean(per_query, "recall_1"),
        recall5=mean(per_query, "recall_5"),
        recall10=mean(per_query, "recall_10"),
        mrr10=mean(per_query, "recip_rank"),
        answered_when_answerable=(sum(answered[q.qid] for q in pos) / len(pos)) if pos else 0.0,
        flagged_when_unanswerable=(sum(not answered[q.qid] for q in neg) / len(neg)) if neg else 0.0,
    )
