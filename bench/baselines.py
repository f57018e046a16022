"""The two baselines every set is compared against, built the plain way on whole articles:
bm25s (jieba for Chinese, bm25s' own English tokenizer otherwise) and dense-only (the same model,
one vector per whole article, exact FAISS search)."""

from __future__ import annotations

import bm25s
import faiss
import jieba
import numpy as np

from kb.articles import Article
from kb.embedding import Embedder


def article_text(article: Article) -> str:
    return "\n".join([article.title, *(s.text for s in article.sections)])


class BM25Baseline:
    def __init__(self, articles: list[Article], lang: str) -> None:
        self.ids = [a.id for a in articles]
        self.lang = lang
        self.bm25 = bm25s.BM25()
        self.bm25.index(self._tokenize([article_text(a) for a in articles]), show_progress=False)

    def _tokenize(self, texts: list[str]):  # type: ignore[no-untyped-def]
        if self.lang == "zh":
            return [[w for w in jieba.lcut(t.lower()) if w.strip()] for t in texts]
        return bm25s.tokenize(texts, stopwords="en", show_progress=False)

    def search(self, query: str, k: int = 10) -> list[tuple[str, float]]:
        if self.lang == "zh":
            tokens = [t for t in self._tokenize([query])[0] if t in self.bm25.vocab_dict]
            if not tokens:
                return []
            scores = self.bm25.get_scores(tokens)
        else:
            tokenized = bm25s.tokenize([query], stopwords="en", show_progress=False)
            vocab = {v: k for k, v in tokenized.vocab.items()}
            tokens = [vocab[i] for i in tokenized.ids[0] if vocab[i] in self.bm25.vocab_dict]
            if not tokens:
                return []
            scores = self.bm25.get_scores(tokens)
        order = np.argsort(-scores)[:k]
        return [(self.ids[i], float(scores[i])) for i in order if scores[i] > 0]


class DenseBaseline:
    def __init__(self, articles: list[Article], embedder: Embedder) -> None:
        self.ids = [a.id for a in articles]
        self.embedder = embedder
        vectors = embedder.embed([article_text(a) for a in articles])
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)

    def search(self, query: str, k: int = 10) -> list[tuple[str, float]]:
        scores, rows = self.index.search(self.embedder.embed([query]), k)
        return [(self.ids[r], float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]
