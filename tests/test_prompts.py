"""Query and passage prompts reach the encoder on both backends, and search embeds queries with
the query prompt."""

from __future__ import annotations

import numpy as np
import pytest

from kb.config import DEFAULT_MODEL, Settings
from kb.embedding import (
    BatchingEmbedder,
    SentenceTransformerEmbedder,
    embed_queries,
    encode_one,
    prompts,
)
from kb.models import profile


def test_known_models_get_their_prompts_and_settings_override_them():
    assert profile("intfloat/multilingual-e5-small").query_prompt == "query: "
    assert profile("/models/multilingual-e5-base").passage_prompt == "passage: "
    assert profile("intfloat/multilingual-e5-small").multilingual
    assert profile("BAAI/bge-small-zh-v1.5").query_prompt.startswith("为这个句子")
    assert profile("BAAI/bge-m3").multilingual and profile("BAAI/bge-m3").query_prompt == ""
    assert profile(DEFAULT_MODEL) == profile("some/unknown-model")
    assert not profile(DEFAULT_MODEL).multilingual
    assert prompts(Settings(model="intfloat/multilingual-e5-small")) == ("query: ", "passage: ")
    assert prompts(Settings(model="intfloat/multilingual-e5-small", query_prompt="",
                            passage_prompt="doc: ")) == ("", "doc: ")
    assert prompts(Settings()) == ("", "")


def check(plain, prompted) -> None:
    text = "printer offline"
    q = embed_queries(prompted, [text])[0]
    p = prompted.embed([text])[0]
    assert not np.allclose(q, p)  # the prompts differ, so the encoder saw different input
    assert np.allclose(q, plain.embed(["query: " + text])[0], atol=1e-5)
    assert np.allclose(p, plain.embed(["passage: " + text])[0], atol=1e-5)
    # Search and the batching thread embed a query with the query prompt too.
    assert np.allclose(encode_one(prompted, text, wait=True).result(), q, atol=1e-5)
    batching = BatchingEmbedder(prompted)
    assert np.allclose(batching.submit(text).result(), q, atol=1e-5)
    assert np.allclose(batching.embed([text])[0], q, atol=1e-5)
    assert np.allclose(batching.embed([text, text])[0], p, atol=1e-5)


def test_the_onnx_backend_applies_both_prompts(real_embedder):
    from kb.embedding_onnx import OnnxEmbedder

    assert isinstance(real_embedder, OnnxEmbedder)
    prompted = OnnxEmbedder.from_export(real_embedder.folder, real_embedder.name)
    prompted.query_prompt, prompted.passage_prompt = "query: ", "passage: "
    check(real_embedder, prompted)


@pytest.mark.slow
def test_the_torch_backend_applies_both_prompts():
    plain = SentenceTransformerEmbedder()
    prompted = SentenceTransformerEmbedder(query_prompt="query: ", passage_prompt="passage: ")
    check(plain, prompted)
