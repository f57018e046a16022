"""Shared fixtures: a deterministic fake embedder for unit tests, and the real packaged model on a
small fixture knowledge base (index built once per session) for integration tests."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from kb.build import build_index
from kb.config import Settings
from kb.embedding import Embedder, load_embedder
from kb.text import tokenize
from service.app import create_app

pytest_plugins = ["tests.postgres"]  # the PostgreSQL server and the two-backend fixture

FIXTURE_KB = Path(__file__).parent / "fixtures" / "kb"
GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).parent.parent


class FakeEmbedder:
    """Hashed bag of tokens: texts sharing words get similar vectors. Counts what it embeds."""

    name = "fake"
    dim = 32
    batch_size = 4

    def __init__(self) -> None:
        self.calls = 0
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in tokenize(text) or ["<empty>"]:
                out[i, int(hashlib.md5(tok.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


REAL_MODEL_FIXTURES = {"real_embedder"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the real model, directly or through another fixture, is ``slow``:
    ``pytest -m 'not slow'`` is the unit layer, which runs on the fake embedder alone."""
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _no_kb_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set the KB_* variables they mean; a developer's shell does not leak into them."""
    for name in [n for n in os.environ if n.upper().startswith("KB_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def fake_index(tmp_path: Path, fake_embedder: FakeEmbedder) -> Path:
    """The fixture knowledge base indexed with the fake embedder: a writable index folder for
    tests of the build, the store and the service that need no real model."""
    root = tmp_path / "fake-index"
    build_index(FIXTURE_KB, root, lambda: fake_embedder, fake_embedder.name)
    return root


@pytest.fixture(scope="session")
def real_embedder() -> Embedder:
    """The packaged model on the default backend (ONNX Runtime, exported once per machine)."""
    return load_embedder(Settings())


@pytest.fixture(scope="session")
def fixture_index(tmp_path_factory: pytest.TempPathFactory,
                  real_embedder: Embedder) -> Path:
    """The fixture knowledge base indexed with the real model, once per session (read-only)."""
    root = tmp_path_factory.mktemp("fixture-index")
    build_index(FIXTURE_KB, root, lambda: real_embedder, real_embedder.name)
    return root


@pytest.fixture
def kb_copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture articles."""
    target = tmp_path / "articles"
    shutil.copytree(FIXTURE_KB, target)
    return target


@pytest.fixture
def index_copy(tmp_path: Path, fixture_index: Path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(fixture_index, target)
    return target


@pytest.fixture
def settings(tmp_path: Path, index_copy: Path) -> Settings:
    return Settings(index=index_copy, gap_db=tmp_path / "gaps.sqlite3")


@pytest.fixture
def client(settings: Settings, real_embedder: Embedder):
    """The app over the real model and a writable copy of the fixture index, open (no keys)."""
    with TestClient(create_app(settings, real_embedder)) as c:
        yield c
