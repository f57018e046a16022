"""Turn a ticket (subject + long description) into a query that keeps the subject in charge.

A description can run to pages of logs and signatures. It is not cut at a character count:
its sentences are ranked by how much they share with the subject and whether they carry
identifiers (error codes, versions), and the best few are kept in their original order.

Lexically a description of several clauses counts as a set of tokens, each distinct token
once: read as a query, a long description's repeated words, and the sub-words and bigrams each
Chinese word brings, count over and over and drown out the rest. A description of one clause
is a query, and is read as ``POST /search`` reads one. The subject's distinct tokens, and
identifiers anywhere in the ticket, count twice: they are the most specific evidence a ticket
carries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.audience import INTERNAL
from kb.search import Filters, Searcher, Started
from kb.text import content_terms, is_identifier, tokenize

BUDGET = 300  # characters of description kept: the model reads ~256 tokens in all
SUBJECT_WEIGHT = 2  # times a subject token (or an identifier) counts; a description token once
_SENTENCE = re.compile(r"[^。！？!?\n.;；]+(?:[。！？!?.;；]+|\n|$)")
# Starts only where a letter run starts: tried inside a long run of letters without a digit,
# every start position rescanned the rest of the run (quadratic; 20,000 letters took a minute).
_IDENT = re.compile(r"(?<![A-Za-z])[A-Za-z]*\d[\w.\-]*|0x[0-9A-Fa-f]+")
_CLAUSE_END = re.compile(r"[，。！？,!?；;：:\n]|\.(?:\s|$)")


@dataclass(frozen=True)
class TicketQuery:
    tokens: list[str]  # BM25 tokens, repeated as often as each should count
    terms: set[str]  # content terms, for coverage and snippets
    dense: str  # the text the model embeds
    display: str  # the query as results and the log show it


def key_sentences(subject: str, description: str, budget: int = BUDGET) -> list[str]:
    sentences = [s.strip() for s in _SENTENCE.findall(description) if len(s.strip()) > 1]
    subject_terms = content_terms(subject)

    def score(item: tuple[int, str]) -> float:
        pos, sentence = item
        terms = content_terms(sentence)
        shared = len(terms & subject_terms)
        idents = len(_IDENT.findall(sentence))
        return 2.0 * shared + 1.5 * min(idents, 3) + len(terms) * 0.1 - 0.05 * pos

    chosen: list[tuple[int, str]] = []
    used = 0
    for pos, sentence in sorted(enumerate(sentences), key=score, reverse=True):
        if used + len(sentence) > budget and chosen:
            continue
        chosen.append((pos, sentence[:budget]))
        used += len(sentence)
    return [s for _, s in sorted(chosen)]


def clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE_END.split(text) if c.strip()]


def ticket_tokens(subject: str, body: str) -> list[str]:
    """The subject's distinct tokens and the body's identifiers SUBJECT_WEIGHT times, then the
    body's other tokens: each distinct one once if the body has several clauses."""
    subject_tokens = list(dict.fromkeys(tokenize(subject)))
    heavy, rest = set(subject_tokens), []
    found = tokenize(body)
    identifiers = [t for t in dict.fromkeys(found) if is_identifier(t) and t not in heavy]
    heavy.update(identifiers)
    for token in dict.fromkeys(found) if len(clauses(body)) > 1 else found:
        if token not in heavy:
            rest.append(token)
    return (subject_tokens + identifiers) * SUBJECT_WEIGHT + rest


def ticket_query(subject: str, description: str) -> TicketQuery:
    subject = subject.strip()
    body = " ".join(key_sentences(subject, description)) if description.strip() else ""
    # The subject leads the model's text: the model truncates at the end.
    dense = f"{subject}\n{body}".strip()
    return TicketQuery(tokens=ticket_tokens(subject, body), terms=content_terms(dense),
                       dense=dense, display=subject or body[:200])


def derived_subject(description: str, limit: int = 30) -> str:
    """A stand-in subject for a ticket that has none: the description's first clause (up to the
    first comma, full stop, question mark or line break), at most ``limit`` characters."""
    text = description.strip()
    first = clauses(text)
    return (first[0] if first else text).strip()[:limit]


def begin_ticket(searcher: Searcher, subject: str, description: str, filters: Filters, k: int,
                 wait: bool = False, audience: str = INTERNAL) -> Started:
    """A ticket's search begun (see Searcher.begin) with its tokens weighted as above."""
    tq = ticket_query(subject, description)
    return searcher.begin(tq.display, tq.dense, filters, k, wait, audience,
                          analyzed=(tq.tokens, tq.terms))
