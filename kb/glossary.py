"""The writers' glossary: groups of terms that mean the same thing to this team, across Chinese
and English and jargon (退款 / 退钱 / refund). Kept beside the articles as ``glossary.yml``,
validated and published with every index version, so a search uses the glossary of the
version it reads.

File format, one group per item, two or more terms each::

    - [退款, 退钱, 退費, refund, money back]
    - [VPN, 虚拟专用网, 翻墙软件]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from kb.errors import ArticleError, Problem
from kb.text import is_cjk, normalize, tokenize
from kb.yamlfile import Loader, TextError, decode, error_at

FILE = "glossary.yml"


@dataclass(frozen=True)
class Term:
    text: str  # normalized, as kb.text folds query and article text
    tokens: tuple[str, ...]  # its BM25 tokens

    def found_in(self, text: str, tokens: set[str]) -> bool:
        """Whether a normalized query (its text and its tokens) names this term."""
        if is_cjk(self.text):
            # One character inside a word is another morpheme (件 in 邮件): it names the term
            # only as a word of its own.
            return self.text in tokens if len(self.text) == 1 else self.text in text
        return bool(self.tokens) and all(t in tokens for t in self.tokens)


@dataclass(frozen=True)
class Glossary:
    groups: tuple[tuple[Term, ...], ...] = ()

    def to_list(self) -> list[list[str]]:
        return [[t.text for t in group] for group in self.groups]

    @classmethod
    def from_list(cls, groups: list[list[str]]) -> Glossary:
        return cls(tuple(tuple(_term(t) for t in group) for group in groups))

    def equivalents(self, text: str, tokens: set[str]) -> list[tuple[Term, list[Term]]]:
        """For each term of the glossary the query names, the terms of its group it does not."""
        out = []
        for group in self.groups:
            named = [t for t in group if t.found_in(text, tokens)]
            if named:
                others = [t for t in group if t not in named]
                if others:
                    out.append((max(named, key=lambda t: len(t.text)), others))
        return out


def _term(text: str) -> Term:
    norm = normalize(text).strip()
    return Term(norm, tuple(tokenize(norm, normalized=True)))


def load_glossary(articles_dir: Path, shown_as: str | None = None) -> Glossary:
    """The glossary of an articles folder (empty when it has none); raises ArticleError with
    a ``path:line`` problem for each mistake in it."""
    path = articles_dir / FILE
    name = str(Path(shown_as) / FILE) if shown_as else str(path)
    if not path.exists():
        return Glossary()
    try:
        raw = decode(path.read_bytes())
    except OSError as exc:
        raise ArticleError([Problem(name, 1, f"cannot read glossary: {exc}")]) from None
    except TextError as exc:
        raise ArticleError([Problem(name, exc.line, exc.message)]) from None
    loader = Loader(raw)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        line, problem = error_at(exc, raw, 1)
        raise ArticleError([Problem(name, line, f"invalid YAML: {problem}")]) from None
    finally:
        loader.dispose()
    if node is None:
        return Glossary()
    problems: list[Problem] = []
    if not isinstance(node, yaml.SequenceNode):
        raise ArticleError([Problem(name, node.start_mark.line + 1,
                                    "the glossary must be a list of groups, each a list of "
                                    "equivalent terms, e.g. - [退款, 退钱, refund]")])
    groups: list[tuple[Term, ...]] = []
    first_seen: dict[str, tuple[int, str]] = {}
    for item in node.value:
        line = item.start_mark.line + 1
        if not isinstance(item, yaml.SequenceNode):
            problems.append(Problem(name, line, "a group must be a list of terms, e.g. "
                                                "[退款, 退钱, refund]"))
            continue
        terms: list[Term] = []
        for value in item.value:
            at = value.start_mark.line + 1
            if not isinstance(value, yaml.ScalarNode) or not str(value.value).strip():
                problems.append(Problem(name, at, "a term must be a non-empty string"))
                continue
            term = _term(str(value.value))
            if not term.tokens:
                problems.append(Problem(name, at, f"term {value.value!r} has no searchable "
                                                  "words (only stop words or punctuation)"))
                continue
            if term.text in first_seen:
                where, before = first_seen[term.text]
                same = "" if before == value.value else f" as {before!r}, once folded"
                problems.append(Problem(name, at, f"term {value.value!r} is already listed"
                                                  f"{same} (line {where}); a term belongs to "
                                                  "one group"))
                continue
            first_seen[term.text] = (at, str(value.value))
            terms.append(term)
        if len(item.value) < 2:
            problems.append(Problem(name, line, "a group needs at least two equivalent terms"))
        elif len(terms) >= 2:
            groups.append(tuple(terms))
    if problems:
        raise ArticleError(problems)
    return Glossary(tuple(groups))
