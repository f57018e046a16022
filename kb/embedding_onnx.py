"""The embedding model run by ONNX Runtime: the same vectors as sentence-transformers, faster.

For one short query, PyTorch spends most of its time in per-operator overhead rather than
arithmetic; ONNX Runtime runs the same graph with attention, layer norms and GELU fused into
single kernels, and it starts without importing torch, so a re-index command or a server starts
sooner (figures: bench/NOTES.md). The model is exported once per model version into a cache
folder, with its tokenizer, and checked against sentence-transformers before it is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kb.embedding import SentenceTransformerEmbedder, resolve_model
from kb.errors import ModelError
from kb.text import normalize

log = logging.getLogger(__name__)

EXPORT_FORMAT = 3  # bump when the export changes: older cached exports are then made afresh
# Model inputs, and the tokenizer's Encoding attribute that fills each.
INPUTS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
# Mixed scripts, case, padding and truncation: an export that differs anywhere shows here.
PROBES = ["退款多久到账", "How long does a REFUND take?", "印表機無法列印 error 0x8007",
          "VPN", "密码 " * 400]
TOLERANCE = 1e-4
TOKENS_PER_BATCH = 4096  # padded tokens per model call: 16 full 256-token sections, or 64 short texts
FUSABLE = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet"}


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kb" / "onnx"


def export_key(spec: str, location: str) -> str:
    """Names the export after the model's files, so a changed model directory is exported anew."""
    digest = hashlib.sha256(f"{EXPORT_FORMAT}:{spec}:{location}".encode())
    path = Path(location)
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    slug = "".join(c if c.isalnum() else "-" for c in Path(spec).name)[:40]
    return f"{slug}-{digest.hexdigest()[:16]}"


def export(spec: str, location: str, target: Path) -> None:
    """Export the sentence-transformers pipeline (encoder, pooling, normalisation) of ``spec``,
    found at ``location``, to ``target``."""
    import torch

    source = SentenceTransformerEmbedder(spec)
    model = source.model.eval()
    tokenizer = model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"model {spec!r} has no fast tokenizer to run without PyTorch")
    lower = bool(getattr(model[0], "do_lower_case", False))
    encoder = getattr(model[0], "auto_model", None)
    if encoder is not None and hasattr(encoder, "set_attn_implementation"):
        # Plain attention operators, which ONNX Runtime fuses into one kernel below (a fused
        # SDPA graph is not recognised).
        encoder.set_attn_implementation("eager")
    # A padded batch of two, so the traced graph keeps the attention mask.
    sample = tokenizer(["kb", "knowledge base search"], padding=True, return_tensors="pt")
    names = [n for n in INPUTS if n in sample]

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, inputs, strict=True)))["sentence_embedding"]

    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"embedding": {0: "batch"}}
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    work.chmod(0o755)  # a cache shared by the service account and writers' shells
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            # The tracer's notes (shape checks it froze, the legacy exporter's deprecation) do
            # not apply to an encoder traced with padding; the check below is what counts.
            warnings.simplefilter("ignore")
            # The TorchScript exporter: the newer one needs onnxscript and trips on
            # transformers' masking code.
            torch.onnx.export(Pipeline(), tuple(sample[n] for n in names), work / "model.onnx",
                              input_names=names, output_names=["embedding"], dynamic_axes=axes,
                              opset_version=17, dynamo=False)
        plain = _fuse(work / "model.onnx", getattr(encoder, "config", None))
        tokenizer.backend_tokenizer.save(str(work / "tokenizer.json"))
        meta = {"spec": spec, "location": location, "inputs": names, "lowercase": lower,
                "pad_id": tokenizer.pad_token_id or 0,
                "max_tokens": int(model.get_max_seq_length() or tokenizer.model_max_length),
                "dim": source.dim}
        (work / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        expected = source.embed(PROBES)

        def error() -> float:
            return float(np.abs(OnnxEmbedder.from_export(work, spec).embed(PROBES) - expected).max())

        worst = error()
        if plain is not None:
            if worst > TOLERANCE:  # the fused graph drifted: keep the plain one, checked in turn
                plain.replace(work / "model.onnx")
                worst = error()
            else:
                plain.unlink()
        if worst > TOLERANCE:
            raise ModelError(f"the ONNX export of {spec!r} differs from the model by {worst:.2g}")
        try:
            work.rename(target)
        except OSError:  # another process finished the same export first
            if not (target / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    prune_stale(target.parent, keep=target)


def prune_stale(root: Path, keep: Path) -> list[Path]:
    """Delete the exports nothing will load again (about 90 MB each): those whose model files
    have changed or gone, or that an older export format made. Exports of other models, or of
    the same model installed elsewhere, stay. Returns the folders deleted."""
    stale = []
    for folder in root.iterdir():
        if folder == keep or folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            spec, location = meta["spec"], meta.get("location")
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not an export of ours, or being written: leave it alone
        if location is None or export_key(spec, location) != folder.name:
            shutil.rmtree(folder, ignore_errors=True)
            stale.append(folder)
    if stale:
        log.info("removed %d outdated model export(s) from %s", len(stale), root)
    return stale


def _fuse(path: Path, config: object) -> Path | None:
    """Fuse attention, layer norms and GELU of a BERT-like encoder in place (faster on long
    sections); returns the plain graph, kept aside, or None if nothing changed."""
    heads, hidden = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
    if getattr(config, "model_type", "") not in FUSABLE or not heads or not hidden:
        return None
    from onnxruntime.transformers.optimizer import optimize_model

    plain = path.with_suffix(".plain")
    path.rename(plain)
    try:
        optimize_model(str(plain), model_type="bert", num_heads=heads, hidden_size=hidden,
                       opt_level=1).save_model_to_file(str(path))
    except Exception as exc:  # an architecture the fusion does not know: the plain graph runs
        log.info("kept the plain ONNX graph: %s", exc)
        plain.replace(path)
        return None
    return plain


class OnnxEmbedder:
    def __init__(self, spec: str, cache: Path | None = None, batch_size: int = 64, *,
                 query_prompt: str = "", passage_prompt: str = "") -> None:
        self.query_prompt, self.passage_prompt = query_prompt, passage_prompt
        location = resolve_model(spec)
        if Path(location).is_dir():  # one export per folder, whichever directory names it
            location = str(Path(location).resolve())
        root = cache or default_cache()
        target = root / export_key(spec, location)
        if not (target / "meta.json").exists():
            log.info("exporting the embedding model %s to ONNX, once (about 15 s), into %s",
                     spec, target)
            try:
                root.mkdir(parents=True, exist_ok=True)
                export(spec, location, target)
            except ModelError:
                raise
            except Exception as exc:  # export failures come in many types; say which model
                raise ModelError(f"cannot export embedding model {spec!r} to ONNX: {exc}") from exc
        try:
            self._load(target, spec, batch_size)
        except Exception as exc:
            raise ModelError(f"cannot load the ONNX export of {spec!r} from {target} ({exc}); "
                             "delete that folder to export the model again") from exc

    @classmethod
    def from_export(cls, folder: Path, spec: str, batch_size: int = 64) -> OnnxEmbedder:
        self = cls.__new__(cls)
        self._load(folder, spec, batch_size)
        return self

    def _load(self, folder: Path, spec: str, batch_size: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self.name = spec
        self.folder = folder
        self.dim = int(meta["dim"])
        self.batch_size = batch_size
        self._inputs: list[str] = meta["inputs"]
        self._lowercase = bool(meta["lowercase"])
        self._pad_id = int(meta["pad_id"])
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(int(meta["max_tokens"]))
        self._tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Idle pool threads would otherwise spin for a while after each query, burning the core
        # that the server needs for the next request.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options,
                                                     providers=["CPUExecutionProvider"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, getattr(self, "passage_prompt", ""))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, getattr(self, "query_prompt", ""))

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        prepared = [prompt + normalize(t) for t in texts]
        if self._lowercase:
            prepared = [t.lower() for t in prepared]
        encodings = self._tokenizer.encode_batch(prepared)
        # Similar lengths share a batch, so little of each batch is padding; long texts go in
        # smaller batches, which stay in the CPU's caches.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        start = 0
        while start < len(order):
            stop = start + 1
            while (stop < len(order) and stop - start < self.batch_size
                   and (stop - start + 1) * len(encodings[order[stop]].ids) <= TOKENS_PER_BATCH):
                stop += 1
            rows = order[start:stop]
            out[rows] = self._run([encodings[i] for i in rows])
            start = stop
        return out

    def _run(self, encodings: list) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        feeds = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in self._inputs}
        feeds["input_ids"][:] = self._pad_id
        for row, encoding in enumerate(encodings):
            for name in self._inputs:
                values = getattr(encoding, INPUTS[name])
                feeds[name][row, : len(values)] = values
        (vectors,) = self._session.run(None, feeds)
        return np.asarray(vectors, dtype=np.float32)
