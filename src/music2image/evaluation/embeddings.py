"""CLIP image and text embeddings (transformers' CLIPModel), and their cache in the evaluation folder.

Every embedding is L2-normalised, so a dot product is a cosine. The cache is keyed by the sha256 of the image
file (or of the prompt's text) and by the model's identity, so a re-run after more images were generated embeds
only the new ones, and a changed image or another model is never served a stale vector.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError
from ..outputs import atomic_write_bytes

log = logging.getLogger("music2image")

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
TINY_CLIP = "tiny"


@dataclass(frozen=True)
class ClipSource:
    """Where a CLIP model comes from: `name` as the user gave it, `location` what from_pretrained reads."""

    name: str
    location: str
    is_hub_id: bool


def _quiet_transformers() -> None:
    """Our progress is the only one: no loading or saving bars, no backend notices from transformers."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def resolve_clip_model(name: str) -> ClipSource:
    """`tiny`, a local folder (with config.json) or a hub id. A path that does not exist is an error here,
    before anything is loaded or written."""
    if name == TINY_CLIP:
        _quiet_transformers()  # building the tiny model on first use saves with transformers
        from ..tiny import tiny_model_path

        return ClipSource(name, str(tiny_model_path("clip")), is_hub_id=False)
    path = Path(os.path.expanduser(name))
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"--clip-model {name}: not a transformers model folder (it has no config.json)")
        return ClipSource(name, str(path.resolve()), is_hub_id=False)
    # A hub id is `name` or `org/name`; anything else that does not exist is a mistyped path.
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or not name.strip():
        raise ModelLoadError(f"--clip-model {name}: no such folder (give a hub id such as {DEFAULT_CLIP_MODEL}, a "
                             f"local CLIP folder, or `tiny`)")
    return ClipSource(name, name, is_hub_id=True)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _folder_fingerprint(folder: Path) -> str:
    """Name, size and mtime of every file in a local model folder: a re-saved model is another model."""
    parts = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = file.stat()
        parts.append(f"{file.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    return sha256_of("\n".join(parts).encode())[:16]


class ClipEmbedder:
    """A CLIPModel and its processor on one device; `model_key` names the exact weights (for the cache)."""

    def __init__(self, source: ClipSource, device: str):
        import torch
        from transformers import CLIPModel, CLIPProcessor

        _quiet_transformers()
        try:
            self.model = CLIPModel.from_pretrained(source.location).to(device).eval()
            self.processor = CLIPProcessor.from_pretrained(source.location)
        except Exception as exc:  # whatever from_pretrained raises for a missing, partial or foreign model
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            hint = ("\nA hub id is downloaded on first use (ViT-L/14 is about 1.7 GB); offline, give a local CLIP "
                    "folder or try `--clip-model tiny`.") if source.is_hub_id else ""
            raise ModelLoadError(f"--clip-model {source.name}: could not load a CLIP model ({first_line}){hint}") from exc
        self.device = device
        self.torch = torch
        self.dimension = int(self.model.config.projection_dim)
        self.max_tokens = int(self.model.config.text_config.max_position_embeddings)
        if source.is_hub_id:
            revision = getattr(self.model.config, "_commit_hash", None) or "unknown-revision"
            self.model_key = f"hub:{source.name}@{revision}"
        elif source.name == TINY_CLIP:
            self.model_key = f"tiny:{Path(source.location).name}"
        else:
            self.model_key = f"folder:{source.location}@{_folder_fingerprint(Path(source.location))}"

    def _normalised(self, features) -> np.ndarray:
        # transformers 5 returns a model output whose pooler_output is the projected embedding; 4.x a tensor.
        tensor = features if isinstance(features, self.torch.Tensor) else features.pooler_output
        tensor = tensor.float()
        return (tensor / tensor.norm(dim=-1, keepdim=True)).cpu().numpy().astype(np.float32)

    def image_embeddings(self, images: list) -> np.ndarray:
        """PIL RGB images → (n, dimension) unit vectors, preprocessed by the model's own CLIPProcessor."""
        with self.torch.inference_mode():
            pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
            return self._normalised(self.model.get_image_features(pixel_values=pixels))

    def text_embeddings(self, texts: list[str]) -> np.ndarray:
        """Texts → unit vectors. CLIP reads 77 tokens: longer prompts are cut there, as CLIPScore does."""
        with self.torch.inference_mode():
            tokens = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True,
                                    max_length=self.max_tokens)
            return self._normalised(self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                                                 attention_mask=tokens["attention_mask"].to(self.device)))


def clip_score(image_embedding: np.ndarray, text_embedding: np.ndarray) -> float:
    """CLIPScore as torchmetrics defines it: 100 × max(cos(image, text), 0) (Hessel et al. 2021 use 2.5 × max)."""
    return float(100.0 * max(float(np.dot(image_embedding, text_embedding)), 0.0))


class EmbeddingCache:
    """Embeddings by `kind:sha256` for one model, in one .npz file (no pickle), written atomically."""

    def __init__(self, path: Path, model_key: str, dimension: int):
        self.path = path
        self.model_key = model_key
        self.dimension = dimension
        self.vectors: dict[str, np.ndarray] = {}
        self.changed = False

    @staticmethod
    def file_for(folder: Path, model_key: str) -> Path:
        return folder / f"embeddings-{sha256_of(model_key.encode())[:16]}.npz"

    @classmethod
    def load(cls, folder: Path, model_key: str, dimension: int) -> EmbeddingCache:
        cache = cls(cls.file_for(folder, model_key), model_key, dimension)
        if not cache.path.is_file():
            return cache
        try:
            with np.load(cache.path, allow_pickle=False) as stored:
                keys, vectors, stored_key = stored["keys"], stored["vectors"], str(stored["model_key"])
            valid = (keys.ndim == 1 and keys.dtype.kind == "U" and vectors.ndim == 2 and vectors.dtype.kind == "f"
                     and len(keys) == len(vectors) and vectors.shape[1] == dimension and stored_key == model_key
                     and bool(np.isfinite(vectors).all()))
        except (OSError, ValueError, KeyError, EOFError) as exc:
            log.warning("%s: unreadable embedding cache, computing every embedding again (%s)", cache.path, exc)
            return cache
        if not valid:
            log.warning("%s: the embedding cache does not match this model; computing every embedding again", cache.path)
            return cache
        cache.vectors = {str(key): vector.astype(np.float32) for key, vector in zip(keys, vectors)}
        return cache

    def get(self, kind: str, digest: str) -> np.ndarray | None:
        return self.vectors.get(f"{kind}:{digest}")

    def put(self, kind: str, digest: str, vector: np.ndarray) -> None:
        self.vectors[f"{kind}:{digest}"] = vector
        self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        keys = sorted(self.vectors)
        buffer = io.BytesIO()
        np.savez(buffer, model_key=np.array(self.model_key), keys=np.array(keys, dtype=str),
                 vectors=np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, self.dimension), np.float32))
        atomic_write_bytes(self.path, buffer.getvalue())
        self.changed = False
