"""What kb knows about embedding models by name: the prompts they were trained with, and
whether their vectors compare texts across Chinese and English.

e5 models were trained with ``query: `` / ``passage: `` prefixes and lose much of their
quality without them; the BGE Chinese and English v1.5 models want an instruction before
short queries and nothing before passages; bge-m3 and the paraphrase-multilingual models take
plain text. A site can override both prompts (``KB_QUERY_PROMPT``, ``KB_PASSAGE_PROMPT``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    query_prompt: str = ""
    passage_prompt: str = ""
    multilingual: bool = False  # cosines between a Chinese and an English text mean something


_BGE_ZH = "为这个句子生成表示以用于检索相关文章："
_BGE_EN = "Represent this sentence for searching relevant passages: "

# First match wins; the pattern is searched in the model's name or path, case-insensitively.
PROFILES: tuple[tuple[str, Profile], ...] = (
    (r"multilingual-e5|e5-.*multilingual", Profile("query: ", "passage: ", True)),
    (r"(^|/)e5-", Profile("query: ", "passage: ", False)),
    (r"bge-m3", Profile("", "", True)),
    (r"bge-.*-zh", Profile(_BGE_ZH, "", True)),
    (r"bge-.*-en", Profile(_BGE_EN, "", False)),
    (r"paraphrase-multilingual|distiluse-base-multilingual|labse|gte-multilingual"
     r"|jina-embeddings-v3|text2vec-base-multilingual", Profile("", "", True)),
)


def profile(model: str) -> Profile:
    """The known profile of ``model`` (a name or a local path); plain text and English-only
    for a model kb does not know."""
    for pattern, found in PROFILES:
        if re.search(pattern, model, re.IGNORECASE):
            return found
    return Profile()
