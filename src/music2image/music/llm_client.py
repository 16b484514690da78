"""The two chat APIs behind `--llm`, through their official clients: request bodies, answers, errors for people.

- `openai`: any OpenAI-compatible `/chat/completions` endpoint (OpenAI, Ollama's /v1, vLLM, llama.cpp, LM Studio).
  Temperature and seed are sent; the answer is asked for with a `json_schema` response format.
- `anthropic`: the Messages API. The installed client's `messages.create` has no temperature (nor top_p/top_k, nor
  seed) parameter, so none is sent and each prompt records `temperature_sent: false`; the answer is asked for by
  forcing one tool call whose input schema is the answer's.

Keys come only from the environment and live only inside the client object: never in a body, a file or a message.
Retries (429, 408/409, 5xx, timeouts, dropped connections) are the clients' own, with exponential backoff that
honours `retry-after`/`retry-after-ms`.
"""

from __future__ import annotations

import json
import math
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..errors import LLMError, LLMServiceError
from ..untrusted_json import without_lone_surrogates

PROVIDERS = ("openai", "anthropic")
KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
# Sent as the key to a --llm-base-url server when the environment has none (local servers often need no auth).
PLACEHOLDER_KEY = "no-key-set"
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"visual_prompt": {"type": "string", "description": "the image prompt, one line"}},
    "required": ["visual_prompt"],
    "additionalProperties": False,
}
TOOL_NAME = "write_visual_prompt"
MAX_ANSWER_TOKENS = 300  # a 75-token prompt in JSON needs ~100; room for a model that overshoots once
OPENAI_MAX_TEMPERATURE = 2.0  # the OpenAI API's range is 0..2


@dataclass(frozen=True)
class LLMSettings:
    """Which chat model writes the prompts, and how it is reached. `cache_dir=None`: answers kept in memory only
    (write_prompts_file puts them next to the prompts file)."""

    provider: str
    model: str
    base_url: str | None = None
    timeout: float = 60.0  # seconds per request attempt
    concurrency: int = 4  # requests in flight at once
    max_retries: int = 3
    cache_dir: Path | None = None

    def validate(self) -> "LLMSettings":
        problems = []
        if self.provider not in PROVIDERS:
            problems.append(f"--llm must be one of {', '.join(PROVIDERS)}, got {self.provider!r}")
        if not self.model or not self.model.strip():
            problems.append(f"--llm {self.provider} needs --llm-model NAME (e.g. llama3.2 for Ollama, gpt-4o-mini, "
                            "claude-sonnet-4-5)")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append(f"--llm-base-url must be an http(s) URL such as http://localhost:11434/v1, got "
                                f"{redact_url(self.base_url)!r}")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            problems.append(f"--llm-timeout must be more than 0 seconds, got {self.timeout}")
        if not 1 <= self.concurrency <= 64:
            problems.append(f"--llm-concurrency must be from 1 to 64, got {self.concurrency}")
        if self.max_retries < 0:
            problems.append(f"max_retries must be 0 or more, got {self.max_retries}")
        if problems:
            raise LLMError("\n".join(problems))
        return self

    @property
    def endpoint(self) -> str:
        """The base URL as recorded and as part of the cache key: no user:password@, query or fragment."""
        return redact_url(self.base_url or DEFAULT_BASE_URLS[self.provider])


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def plain_text(text: str, limit: int = 300) -> str:
    """A server's message made safe to print: one line, no control characters, at most `limit` characters."""
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in str(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ChatClient:
    """One official client and the request shape of its API. `ask(body)` returns the answer as text (the JSON the
    model wrote), raising LLMServiceError with a message for people when the service fails after its retries."""

    def __init__(self, settings: LLMSettings):
        self.settings = settings
        self.provider = settings.provider
        self.temperature_sent = self.seed_sent = settings.provider == "openai"
        variable = KEY_VARIABLES[self.provider]
        key = os.environ.get(variable, "").strip()
        if not key and settings.base_url is None:
            raise LLMError(f"--llm {self.provider}: set {variable} in the environment (the key is read only from "
                           f"there); for a local server without auth give --llm-base-url")
        self.key_is_placeholder = not key
        self._key = key  # only to scrub it from a server's error message
        try:
            if self.provider == "openai":
                import openai as sdk

                client_class = sdk.OpenAI
            else:
                import anthropic as sdk

                client_class = sdk.Anthropic
        except ImportError:
            raise LLMError(f"--llm {self.provider} needs the official `{self.provider}` client: "
                           "pip install 'music2image[llm]'") from None
        self._sdk = sdk
        self._client = client_class(api_key=key or PLACEHOLDER_KEY,
                                    base_url=settings.base_url or DEFAULT_BASE_URLS[self.provider],
                                    timeout=settings.timeout, max_retries=settings.max_retries)

    def body(self, system: str, user: str, temperature: float, seed: int | None) -> dict:
        """The full request body (what the cache is keyed by), without anything secret."""
        messages = [{"role": "user", "content": user}]
        if self.provider == "openai":
            return {"model": self.settings.model, "messages": [{"role": "system", "content": system}, *messages],
                    "temperature": temperature, "seed": seed, "max_tokens": MAX_ANSWER_TOKENS,
                    "response_format": {"type": "json_schema", "json_schema": {
                        "name": "visual_prompt", "strict": True, "schema": ANSWER_SCHEMA}}}
        return {"model": self.settings.model, "system": system, "messages": messages,
                "max_tokens": MAX_ANSWER_TOKENS,
                "tools": [{"name": TOOL_NAME, "description": "Give the image prompt.", "input_schema": ANSWER_SCHEMA}],
                "tool_choice": {"type": "tool", "name": TOOL_NAME}}

    def ask(self, body: dict) -> str:
        try:
            answer = self._answer(body)
            # The clients parse the server's JSON, which may escape half a surrogate pair ("\\ud800"): no UTF-8 for
            # it, and the answer is cached (and its prompt written) as UTF-8.
            return without_lone_surrogates(answer) if isinstance(answer, str) else answer
        except self._sdk.APIError as exc:
            raise LLMServiceError(self._explain(exc)) from None
        except (ValueError, RecursionError, AttributeError, TypeError, KeyError, IndexError) as exc:
            # The clients build their response objects without validating them: a server answering 200 with an
            # HTML page, with JSON nested 100,000 deep, or with `"choices": "nope"` raised these, as tracebacks.
            what = "a chat completion" if self.provider == "openai" else "a Messages API message"
            raise LLMServiceError(f"--llm {self.provider}: {self.settings.endpoint} answered with something that is "
                                  f"not {what} ({type(exc).__name__}); check --llm-base-url") from None

    def _answer(self, body: dict) -> str:
        if self.provider == "openai":
            choices = self._client.chat.completions.create(**body).choices
            if not choices:  # a malformed completion: treated like an unusable answer
                return ""
            return choices[0].message.content or choices[0].message.refusal or ""
        message = self._client.messages.create(**body)
        for block in message.content:
            if block.type == "tool_use":
                return json.dumps(block.input, ensure_ascii=False)
        return " ".join(block.text for block in message.content if block.type == "text")

    def _explain(self, exc) -> str:
        sdk, where = self._sdk, self.settings.endpoint
        variable = KEY_VARIABLES[self.provider]
        said = plain_text(getattr(exc, "message", "") or str(exc))
        if self._key:  # some servers echo the key they were sent
            said = said.replace(self._key, "***")
        if isinstance(exc, sdk.AuthenticationError):
            if self.key_is_placeholder:
                return f"--llm {self.provider}: {where} wants a key (401) and {variable} is not set: export it"
            return f"--llm {self.provider}: {where} refused the key in {variable} (401): {said}"
        if isinstance(exc, sdk.PermissionDeniedError):
            return f"--llm {self.provider}: {where} refused access (403): {said}"
        if isinstance(exc, sdk.NotFoundError):
            return (f"--llm-model {self.settings.model}: not found at {where} (404: {said}); check the model name "
                    "(for Ollama: `ollama list`) and --llm-base-url (Ollama's is http://localhost:11434/v1)")
        if isinstance(exc, sdk.APITimeoutError):
            return (f"--llm {self.provider}: {where} did not answer within --llm-timeout {self.settings.timeout:g} s, "
                    f"{self.settings.max_retries} retries included")
        if isinstance(exc, sdk.APIConnectionError):
            cause = plain_text(exc.__cause__ or exc)
            return f"--llm-base-url {where}: cannot connect ({cause}); is the server running?"
        if isinstance(exc, sdk.BadRequestError):
            return f"--llm {self.provider} --llm-model {self.settings.model}: the request was refused (400): {said}"
        status = getattr(exc, "status_code", None)
        return (f"--llm {self.provider}: {where} failed (HTTP {status}) after {self.settings.max_retries} retries: "
                f"{said}")
