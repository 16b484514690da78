"""Descriptors → the prompt text, within CLIP's 77 tokens.

Two writers: `VocabularyWriter` (the default, and the tested one) joins the sampled phrases; `TransformersWriter`
asks a local text-generation model (any transformers causal LM folder) to write the sentence, with the prompt's
temperature really passed to the sampler — the upstream stage wrote 0.4/0.8 into its JSON but never used them.
"""

from __future__ import annotations

import logging
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import AudioInputError
from .mapping import SLOT_ORDER

log = logging.getLogger("music2image")

# SDXL's text encoders read 77 tokens: start, 75 of prompt, end.
MAX_PROMPT_TOKENS = 75
# When a prompt is too long, the least telling slots go first.
DROP_ORDER = ("composition", "texture", "motion", "light", "medium")


@lru_cache(maxsize=1)
def _clip_tokenizer():
    import instant_clip_tokenizer  # ships CLIP's real BPE vocabulary, offline

    return instant_clip_tokenizer.Tokenizer()


def clip_token_count(text: str) -> int:
    """Tokens of `text` for SDXL's CLIP tokenizers, without the start/end tokens."""
    return len(_clip_tokenizer().encode(text))


def join_descriptors(chosen: dict[str, str]) -> str:
    parts = []
    for slot in SLOT_ORDER:
        phrase = chosen.get(slot)
        if phrase is None:
            continue
        if slot == "mood":
            phrase = f"{phrase} mood"
        elif slot == "palette":
            phrase = f"{phrase} palette"
        parts.append(phrase)
    return ", ".join(parts)


def fit_to_clip(chosen: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The joined prompt, dropping the least telling slots until it fits 75 CLIP tokens."""
    kept = dict(chosen)
    text = join_descriptors(kept)
    for slot in DROP_ORDER:
        if clip_token_count(text) <= MAX_PROMPT_TOKENS:
            break
        kept.pop(slot, None)
        text = join_descriptors(kept)
    return text, kept


def cut_to_clip(text: str) -> str:
    """Whole words of `text`, as many as fit 75 CLIP tokens, without control characters (for free text from a
    language model: the prompts loader rejects control characters, and CLIP would drop them anyway)."""
    text = "".join(ch if not unicodedata.category(ch).startswith("C") else " " for ch in text)
    words = text.split()
    while words and clip_token_count(" ".join(words)) > MAX_PROMPT_TOKENS:
        words.pop()
    return " ".join(words).rstrip(",;: ")


class VocabularyWriter:
    name = "vocabulary"

    def write(self, chosen: dict[str, str], temperature: float, rng: np.random.Generator) -> tuple[str, dict]:
        return fit_to_clip(chosen)


class TransformersWriter:
    """A local causal language model writes one sentence from the descriptors, sampled at the prompt's temperature.

    Only local folders are read (`local_files_only`): nothing downloads behind the user's back.
    """

    def __init__(self, model_path: str, max_new_tokens: int = 60):
        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise AudioInputError(
                f"--text-model {model_path}: not a local transformers model folder (no config.json). Download one "
                "first, e.g. `huggingface-cli download Qwen/Qwen2.5-0.5B-Instruct --local-dir DIR`."
            )
        self.name = f"transformers:{model_path}"
        self.model_path = str(path)
        self.max_new_tokens = max_new_tokens
        self._model = self._tokenizer = None

    def _load(self):
        if self._model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
                self._model = AutoModelForCausalLM.from_pretrained(self.model_path, local_files_only=True).eval()
            except (OSError, ValueError) as exc:
                raise AudioInputError(f"--text-model {self.model_path}: cannot be loaded ({exc})") from None
        return self._tokenizer, self._model

    def write(self, chosen: dict[str, str], temperature: float, rng: np.random.Generator) -> tuple[str, dict]:
        import torch

        tokenizer, model = self._load()
        instruction = (
            "Write one vivid sentence describing a painting, for an image generator. Use these elements: "
            + "; ".join(f"{slot}: {phrase}" for slot, phrase in chosen.items())
            + ".\nSentence:"
        )
        inputs = tokenizer(instruction, return_tensors="pt")
        torch.manual_seed(int(rng.integers(0, 2**31 - 1)))  # seeded by (seed, sample_idx, prompt_id) like the rest
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            )
        text = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        text = cut_to_clip(" ".join(text.strip().splitlines()[:1]))
        if not text:  # the model wrote nothing usable: join the descriptors, and say so in the record and on screen
            log.warning("the text model wrote nothing usable for one prompt; its descriptors were joined instead")
            text, chosen = fit_to_clip(chosen)
            chosen = {**chosen, "writer_note": "the text model wrote nothing usable; descriptors joined instead"}
        return text, chosen
