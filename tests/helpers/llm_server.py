"""A chat API on 127.0.0.1 for tests: speaks OpenAI's /v1/chat/completions and Anthropic's /v1/messages, records
every request (path, headers with lower-case names, JSON body), and answers from a script of faults, then from a
reply function.

    with LLMServer() as server:
        server.faults += ["429", "timeout"]          # the next requests get these, in order
        server.reply = lambda body: "a red fox"      # then: the text of each answer's visual_prompt
        ... OpenAI(base_url=server.openai_url) / Anthropic(base_url=server.anthropic_url) ...
        server.requests                              # everything that arrived

Faults: "ok" (no fault: the reply function answers), "429" / "500" (with retry-after-ms: 1, so the clients'
backoff is quick), "401" (its message echoes the key, as a careless server might), "404", "timeout" (the answer
comes after `slow_seconds`), "malformed" (the model's content is not JSON), "too_long" (a 120-word prompt),
"duplicate" (the same prompt as the answer before), "deep" (OpenAI route: the model's content is JSON nested
100,000 deep), "html" (200 with a web page, as a wrong --llm-base-url gives), "nested_body" (the response body
itself nested 100,000 deep).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOO_LONG = ", ".join(f"a towering crystal spire number {i} glowing softly" for i in range(17))  # ~120 words


def default_reply(body: dict) -> str:
    """A distinct, deterministic prompt per request (from a hash of its body)."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    return f"a quiet harbour at dusk, lanterns on the water, soft watercolour, detail {digest}"


class LLMServer:
    def __init__(self, slow_seconds: float = 3.0):
        self.requests: list[dict] = []
        self.reply_delay = 0.0  # seconds before every answer (to see requests overlap)
        self.in_flight = self.max_in_flight = 0
        self.faults: deque[str] = deque()
        self.reply = default_reply
        self.slow_seconds = slow_seconds
        self._lock = threading.Lock()
        self._last_text = "a first prompt"
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    anthropic_url = url

    def __enter__(self) -> "LLMServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def bodies(self, path: str | None = None) -> list[dict]:
        return [r["body"] for r in self.requests if path is None or r["path"] == path]

    # What each request gets --------------------------------------------------------------------------------------
    def _next(self, path: str, headers: dict, body: dict) -> tuple[str | None, str]:
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
            fault = self.faults.popleft() if self.faults else None
            if fault == "duplicate":
                text = self._last_text
            elif fault == "too_long":
                text = TOO_LONG
            else:
                text = self.reply(body)
            if fault not in ("401", "404", "429", "500", "malformed"):
                self._last_text = text
        return fault, text

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

            def do_POST(self):
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer()
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                anthropic = self.path == "/v1/messages"
                if self.path not in ("/v1/messages", "/v1/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                fault, text = server._next(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if fault in ("401", "404", "429", "500"):
                    kinds = {"401": "authentication_error", "404": "not_found_error", "429": "rate_limit_error",
                             "500": "api_error"}
                    # A careless server that echoes the key it got: the client side must not repeat it.
                    echoed = self.headers.get("authorization") or self.headers.get("x-api-key")
                    message = {"404": f"model '{body.get('model')}' not found", "401": f"invalid key: {echoed}"}.get(
                        fault, "try again")
                    error = {"type": kinds[fault], "message": message}
                    payload = {"type": "error", "error": error} if anthropic else {"error": {**error, "code": None}}
                    return self._send(int(fault), payload, {"retry-after-ms": "1"})
                time.sleep(server.slow_seconds if fault == "timeout" else server.reply_delay)
                if fault in ("html", "nested_body"):
                    data = (b"<html><body>It works!</body></html>" if fault == "html"
                            else b'{"id": "x", "choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    return self.wfile.write(data)
                content = "Sure! here is your prompt: {visual_prompt" if fault == "malformed" else json.dumps(
                    {"visual_prompt": text})
                if fault == "deep":  # (OpenAI's route: the content is the model's text, not parsed by the server)
                    content = "[" * 100_000 + "]" * 100_000
                if anthropic:
                    block = ({"type": "text", "text": content} if fault == "malformed" else
                             {"type": "tool_use", "id": "toolu_01", "name": body["tools"][0]["name"],
                              "input": json.loads(content)})
                    return self._send(200, {
                        "id": "msg_01", "type": "message", "role": "assistant", "model": body.get("model"),
                        "content": [block], "stop_reason": "tool_use", "stop_sequence": None,
                        "usage": {"input_tokens": 10, "output_tokens": 10}})
                return self._send(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop", "logprobs": None}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}})

        return Handler
