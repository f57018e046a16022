"""Turn a ticket (subject + long description) into a query that keeps the subject in charge.

A description can run to pages of logs and signatures. It is not cut at a character count:
its sentences are ranked by how much they share with the subject and whether they carry
identifiers (error codes, versions), and the best few are kept in their original order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.text import content_terms

BUDGET = 300  # characters of description kept: the model reads ~256 tokens in all
_SENTENCE = re.compile(r"[^。！？!?\n.;；]+(?:[。！？!?.;；]+|\n|$)")
# Starts only where a letter run starts: tried inside a long run of letters without a digit,
# every start position rescanned the rest of the run (quadratic; 20,000 letters took a minute).
_IDENT = re.compile(r"(?<![A-Za-z])[A-Za-z]*\d[\w.\-]*|0x[0-9A-Fa-f]+")


@dataclass(frozen=True)
class TicketQuery:
    lexical: str
    dense: str
    display: str


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


def ticket_query(subject: str, description: str) -> TicketQuery:
    subject = subject.strip()
    body = " ".join(key_sentences(subject, description)) if description.strip() else ""
    # The subject leads both texts (the model truncates at the end) and counts twice lexically.
    return TicketQuery(
        lexical=f"{subject}\n{subject}\n{body}".strip(),
        dense=f"{subject}\n{body}".strip(),
        display=subject or body[:200],
    )
