"""`--llm openai|anthropic`: a chat model writes each prompt from the musical features and the mapping's descriptors.

Per sample, in this order:
1. Every prompt is asked at once (--llm-concurrency daemon threads): system instruction + the features, the emotion, the
   descriptors the mapping sampled at the prompt's temperature, the mode (convergent: stay close; divergent: free
   association) and a word budget; the answer is structured JSON. OpenAI-compatible endpoints also get the prompt's
   temperature and a seed from (seed, sample_idx, prompt_id); the Anthropic API takes neither (see llm_client.py).
2. An answer that is not the JSON asked for is asked again once; then the descriptors are joined instead (recorded).
3. An answer over 75 CLIP tokens (CLIP's real vocabulary) is asked again once with its count; then it is cut at a
   phrase boundary and the prompt records `clip_cut: true`.
4. A prompt equal to an earlier one of the sample is asked again (twice at most) with the others to avoid.
Every request goes through the answer cache first, so a re-run or a resume makes no request twice.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from dataclasses import dataclass, field, replace

from ..errors import LLMError, LLMServiceError
from .features import AudioProblem
from .llm_cache import AnswerCache, request_key
from .llm_client import OPENAI_MAX_TEMPERATURE, ChatClient, LLMSettings, plain_text
from .writer import MAX_PROMPT_TOKENS, clip_token_count, cut_to_clip, fit_to_clip

log = logging.getLogger("music2image")
WORD_BUDGET = 40  # words asked for: 40 words of comma-separated phrases measure 50–55 CLIP tokens
DUPLICATE_REASKS = 2
MODE_INSTRUCTIONS = {
    "convergent": "Convergent prompt: stay close to the musical features and the suggested descriptors; a faithful "
                  "reading of this music that other convergent prompts for it would agree with.",
    "divergent": "Divergent prompt: free association. Let the music suggest a scene of your own; the descriptors "
                 "are a starting point, not a requirement.",
}
SYSTEM_INSTRUCTION = (
    "You write prompts for an image generator (Stable Diffusion XL) from the analysis of a piece of music. The "
    "prompt is one line of comma-separated visual phrases: the subject first, then mood, colour palette, light, "
    "motion, texture, composition and medium. Describe only what is seen; do not name the music, its key or tempo. "
    "Answer with the JSON object asked for and nothing else."
)


class SampleWritingProblem(AudioProblem):
    """The model kept writing the same prompt for one sample: the sample is skipped with this reason."""


@dataclass
class Draft:
    """One prompt to write: what the mapping chose for it, and what the model wrote (filled in as it goes)."""

    prompt_id: int
    mode: str
    temperature: float
    descriptors: dict[str, str]
    seed: int | None
    text: str = ""
    requests: int = 0
    clip_cut: bool = False
    fallback_note: str | None = None
    notes: list[str] = field(default_factory=list)


def normalised(text: str) -> str:
    """What two prompts must differ in to count as different: words, ignoring case and punctuation."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def cut_at_phrase(text: str) -> str:
    """The longest run of whole phrases (split at , ; . :) within 75 CLIP tokens; whole words if one phrase is
    already too long."""
    phrases = [p.strip() for p in re.split(r"[,;.:]", text) if p.strip()]
    kept: list[str] = []
    for phrase in phrases:
        if clip_token_count(", ".join(kept + [phrase])) > MAX_PROMPT_TOKENS:
            break
        kept.append(phrase)
    return ", ".join(kept) if kept else cut_to_clip(text)


def parse_answer(answer: str) -> str | None:
    """The prompt in the model's JSON answer, as one clean line; None when the answer is not what was asked."""
    try:
        value = json.loads(answer)
    except (ValueError, RecursionError):  # RecursionError: the model's "[[[[…" 100,000 deep
        return None
    text = value.get("visual_prompt") if isinstance(value, dict) else None
    if not isinstance(text, str):
        return None
    text = " ".join(plain_text(text, limit=10_000).split()).strip(" \"'")
    return text or None


class LLMWriter:
    """Writes a sample's prompts with a chat model. `probe()` first: it fails fast, before any audio is analysed."""

    def __init__(self, settings: LLMSettings, temperatures: tuple[float, ...]):
        self.settings = settings.validate()
        if settings.provider == "openai":
            too_hot = [t for t in temperatures if t > OPENAI_MAX_TEMPERATURE]
            if too_hot:
                raise LLMError(f"--llm openai: OpenAI-compatible APIs take temperatures from 0 to "
                               f"{OPENAI_MAX_TEMPERATURE:g}, got {too_hot[0]:g}")
        self.client = ChatClient(settings)
        self.cache = AnswerCache(settings.cache_dir)
        self.name = f"{settings.provider}:{settings.model}"
        self._probe_temperature = temperatures[0] if temperatures else 0.0

    def metadata(self) -> dict:
        return {"provider": self.settings.provider, "model": self.settings.model, "base_url": self.settings.endpoint,
                "temperature_sent": self.client.temperature_sent, "seed_sent": self.client.seed_sent,
                "word_budget": WORD_BUDGET, "max_clip_tokens": MAX_PROMPT_TOKENS}

    def probe(self) -> None:
        """One small request of the same shape as the real ones: a bad key (401), an unknown model (404), an
        unreachable URL or a refused parameter stop the run here, with exit 2 and nothing written."""
        body = self.client.body(SYSTEM_INSTRUCTION, 'Reply with {"visual_prompt": "ready"}.',
                                self._probe_temperature, 0 if self.client.seed_sent else None)
        try:
            self._ask(body)
        except LLMServiceError as exc:
            raise LLMError(str(exc)) from None

    def _ask(self, body: dict) -> str:
        key = request_key(self.settings.endpoint, self.settings.provider, body)
        answer = self.cache.get(key)
        if answer is None:
            answer = self.client.ask(body)
            self.cache.put(key, body, answer)
        return answer

    # Writing ----------------------------------------------------------------------------------------------------
    def draft(self, prompt_id: int, mode: str, temperature: float, chosen: dict[str, str], rng) -> Draft:
        """A prompt to write; its API seed (where the API takes one) drawn from the prompt's own generator, seeded
        by (seed, sample_idx, prompt_id) like its descriptors."""
        seed = int(rng.integers(0, 2**31 - 1)) if self.client.seed_sent else None
        return Draft(prompt_id, mode, temperature, chosen, seed)

    def write_sample(self, context: dict, drafts: list[Draft]) -> list[dict]:
        """The sample's prompt records. `context`: its musical_features and emotion, as in the prompts file."""
        try:
            self._write_all(context, drafts)
            for index in range(len(drafts)):  # in prompt order, so the outcome does not depend on thread timing
                self._make_distinct(context, drafts, index)
        except LLMServiceError as exc:
            where = f"cached in {self.settings.cache_dir}" if self.settings.cache_dir else "kept in memory only"
            raise LLMServiceError(f"{exc}\nThe answers so far are {where}; run the same command again to resume "
                                  "without paying for them twice.") from None
        return [self._record(draft) for draft in drafts]

    def _write_all(self, context: dict, drafts: list[Draft]) -> None:
        """Every draft written, `concurrency` at a time, on daemon threads. A thread pool's workers are joined when
        the interpreter exits, so Ctrl-C (or SLURM's SIGTERM) waited minutes for the requests in flight (each up to
        --llm-timeout × its retries); here it stops at once, and an answer not yet cached is asked again next run."""
        pending: queue.SimpleQueue[Draft] = queue.SimpleQueue()
        for draft in drafts:
            pending.put(draft)
        failures: dict[int, BaseException] = {}

        def work() -> None:
            while not failures:  # after a failure, requests not yet sent are not sent
                try:
                    draft = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    self._write(context, draft, len(drafts))
                except BaseException as exc:  # raised again in the caller's thread, the first in prompt order
                    failures[draft.prompt_id] = exc

        workers = [threading.Thread(target=work, name=f"music2image-llm-{index}", daemon=True)
                   for index in range(min(self.settings.concurrency, len(drafts)))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise failures[min(failures)]

    def _make_distinct(self, context: dict, drafts: list[Draft], index: int) -> None:
        draft = drafts[index]
        earlier = {normalised(d.text) for d in drafts[:index]}
        for _ in range(DUPLICATE_REASKS):
            if normalised(draft.text) not in earlier:
                return
            others = "; ".join(f'"{d.text}"' for d in drafts if d is not draft)
            draft.notes.append(f"Your answer repeated another prompt for this piece. Write one that clearly differs "
                               f"from each of these: {others}.")
            self._write(context, draft, len(drafts))
        if normalised(draft.text) in earlier:
            joined, _ = fit_to_clip(draft.descriptors)
            if normalised(joined) in earlier:
                raise SampleWritingProblem(f"the model wrote the same prompt twice after {DUPLICATE_REASKS} re-asks "
                                           f"(prompt_id {draft.prompt_id})")
            draft.text, draft.clip_cut = joined, False
            draft.fallback_note = (f"the model repeated another prompt after {DUPLICATE_REASKS} re-asks; "
                                   "descriptors joined instead")

    def _request(self, context: dict, draft: Draft, prompts_in_sample: int) -> dict:
        payload = {
            "task": MODE_INSTRUCTIONS.get(draft.mode, MODE_INSTRUCTIONS["divergent"]),
            "prompt_number": f"{draft.prompt_id + 1} of {prompts_in_sample} for this piece",
            "word_budget": f"at most {WORD_BUDGET} words (the image generator reads {MAX_PROMPT_TOKENS} tokens)",
            "musical_features": context["musical_features"],
            "emotion": context["emotion"],
            "suggested_descriptors": draft.descriptors,
        }
        user = "Write one image prompt for this music.\n" + json.dumps(payload, indent=1, ensure_ascii=False)
        if draft.notes:
            user += "\n\nNotes on your earlier answers:\n" + "\n".join(f"- {note}" for note in draft.notes)
        user += '\n\nAnswer as {"visual_prompt": "..."}.'
        return self.client.body(SYSTEM_INSTRUCTION, user, draft.temperature, draft.seed)

    def _write(self, context: dict, draft: Draft, prompts_in_sample: int) -> None:
        def ask() -> str | None:
            draft.requests += 1
            return parse_answer(self._ask(self._request(context, draft, prompts_in_sample)))

        draft.fallback_note, draft.clip_cut = None, False
        text = ask()
        if text is None:
            draft.notes.append('Your answer was not the JSON object asked for. Answer only {"visual_prompt": "..."}.')
            text = ask()
        if text is None:
            log.warning("the model's answer for one prompt was not usable JSON twice; its descriptors were joined")
            draft.text, _ = fit_to_clip(draft.descriptors)
            draft.fallback_note = "the model's answer was not the JSON asked for, twice; descriptors joined instead"
            return
        count = clip_token_count(text)
        if count > MAX_PROMPT_TOKENS:
            budget = max(10, int(len(text.split()) * MAX_PROMPT_TOKENS / count * 0.85))
            draft.notes.append(f"Your prompt \"{text}\" is {count} CLIP tokens; the limit is {MAX_PROMPT_TOKENS}. "
                               f"Write it again in at most {budget} words.")
            shorter = ask()
            text = shorter or text
            if clip_token_count(text) > MAX_PROMPT_TOKENS:
                text, draft.clip_cut = cut_at_phrase(text), True
        draft.text = text

    def _record(self, draft: Draft) -> dict:
        """A prompt's entry in the prompts file: who wrote it, with what temperature and seed, what happened."""
        record = {"prompt_id": draft.prompt_id, "mode": draft.mode, "temperature": draft.temperature,
                  "visual_prompt": draft.text, "descriptors": draft.descriptors,
                  "token_count": clip_token_count(draft.text)}
        if draft.fallback_note:
            record.update(writer="vocabulary", model=None, temperature_sent=False, seed=None,
                          writer_note=draft.fallback_note)
        else:
            record.update(writer=self.settings.provider, model=self.settings.model,
                          temperature_sent=self.client.temperature_sent, seed=draft.seed)
        # Requests this prompt took, answered live or from the cache (so a re-run writes the same file).
        record.update(llm_requests=draft.requests, clip_cut=draft.clip_cut)
        return record


def with_cache_next_to(settings: LLMSettings, output) -> LLMSettings:
    """The answer cache of a prompts file: a folder beside it, e.g. prompts.json → prompts.llm-cache/."""
    if settings.cache_dir is not None:
        return settings
    return replace(settings, cache_dir=output.with_name(f"{output.stem}.llm-cache"))


__all__ = ["LLMSettings", "LLMWriter", "Draft", "with_cache_next_to", "SampleWritingProblem"]
