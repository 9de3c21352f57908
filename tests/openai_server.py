"""A real (stdlib) HTTP server speaking a subset of the OpenAI REST API, for tests and benchmarks.

Usage::

    from tests.openai_server import FakeOpenAIServer

    with FakeOpenAIServer(latency_s=0.0) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x")
        srv.faults.append(("status", 429, {"Retry-After": "1"}))
        ...
        srv.requests, srv.max_concurrent, srv.records

Endpoints (non-streaming): ``POST /v1/chat/completions``, ``POST /v1/completions``,
``GET /v1/models``.

``responder(prompt_text, request_json) -> str`` produces the completion text.  For chat
requests ``prompt_text`` is the content of the last user message; for completion requests
it is the ``prompt``.  The default responder is a deterministic "minimal-edit flipper".

Faults (consumed one per request, FIFO, from ``srv.faults``):

* ``("status", code, headers)``  – reply with an OpenAI-style error JSON and status ``code``;
* ``("hang", seconds)``          – sleep ``seconds`` before answering normally (client time-outs);
* ``("text", "some text")``      – answer normally but with this exact text;
* ``("content", value)``         – answer with this JSON value as the content (an int, a list, null);
* ``("trickle", seconds)``       – answer normally, one byte every ``seconds`` (a deadline, not a read timeout).

Observability: ``srv.requests`` (count), ``srv.max_concurrent`` (peak parallel requests) and
``srv.records`` (one dict per request: ``path``, ``headers`` with lower-cased names, parsed
``body`` and ``raw`` body text).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = ["FakeOpenAIServer", "flip_responder", "flip_words", "extract_target_sentence"]

_SWAPS = {
    "good": "bad",
    "bad": "good",
    "great": "terrible",
    "terrible": "great",
    "love": "hate",
    "hate": "love",
    "loved": "hated",
    "hated": "loved",
    "positive": "negative",
    "negative": "positive",
    "best": "worst",
    "worst": "best",
    "excellent": "awful",
    "awful": "excellent",
    "wonderful": "horrible",
    "horrible": "wonderful",
}
_WORD_RE = re.compile(r"[A-Za-z]+")


def flip_words(text: str) -> str:
    """Swap sentiment words (good<->bad, great<->terrible, love<->hate, ...) preserving case."""

    def sub(m: re.Match) -> str:
        w = m.group(0)
        repl = _SWAPS.get(w.lower())
        if repl is None:
            return w
        if w.isupper():
            return repl.upper()
        if w[0].isupper():
            return repl[0].upper() + repl[1:]
        return repl

    return _WORD_RE.sub(sub, text)


_LINE_PATTERNS = [
    # completion-mode few-shot: "Original (positive): text"
    re.compile(r"^\s*(?:Original|Sentence|Input|Text)(?:\s*\([^)]*\))?\s*:\s*(.+?)\s*$", re.IGNORECASE),
]
_QUOTED_RE = re.compile(r"\"([^\"\n]+)\"|“([^”\n]+)”")


def extract_target_sentence(prompt: str) -> str:
    """The sentence to rewrite: last "Original/Sentence/Input/Text: ..." line, else last quoted span,
    else last non-empty line."""
    lines = [ln for ln in prompt.splitlines() if ln.strip()]
    for ln in reversed(lines):
        for pat in _LINE_PATTERNS:
            m = pat.match(ln)
            if m:
                s = m.group(1).strip()
                if len(s) >= 2 and s[0] in "\"“" and s[-1] in "\"”":
                    s = s[1:-1]
                return s
    quoted = _QUOTED_RE.findall(prompt)
    if quoted:
        a, b = quoted[-1]
        return a or b
    return lines[-1].strip() if lines else ""


def flip_responder(prompt_text: str, request_json: dict) -> str:
    """Default responder: behave like a minimal-edit LLM that flips sentiment words."""
    return flip_words(extract_target_sentence(prompt_text))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: "FakeOpenAIServer"

    def handle_error(self, request, client_address):  # silence client disconnects
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid delayed-ACK stalls
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    # -- helpers -----------------------------------------------------------------------------
    def _send_json(self, code: int, obj: Any, headers: dict | None = None, trickle_s: float = 0.0) -> None:
        data = json.dumps(obj).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.end_headers()
            if trickle_s > 0:
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    if self.server.owner._stop.wait(trickle_s):
                        break
            else:
                self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout, OSError):
            self.close_connection = True

    def do_GET(self):  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model",
                                                               "created": 0, "owned_by": "tests"}]})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):  # noqa: N802
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = None
        path = self.path.split("?", 1)[0].rstrip("/")
        record = {"path": path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                  "raw": raw.decode("utf-8", "replace")}
        owner._enter(record)
        try:
            self._serve(owner, path, body, record)
        finally:
            owner._exit()

    def _serve(self, owner: "FakeOpenAIServer", path: str, body: Any, record: dict) -> None:
        fault = owner._pop_fault()
        if owner.latency_s > 0:
            owner._stop.wait(owner.latency_s)
        forced_text, content, trickle = None, _NO_CONTENT, 0.0
        if fault is not None:
            kind = fault[0]
            if kind == "status":
                code = int(fault[1])
                headers = dict(fault[2]) if len(fault) > 2 and fault[2] else {}
                etype = {429: "rate_limit_exceeded", 400: "invalid_request_error",
                         401: "invalid_api_key"}.get(code, "server_error")
                self._send_json(code, {"error": {"message": f"injected fault {code}", "type": etype,
                                                  "param": None, "code": etype}}, headers)
                return
            if kind == "hang":
                owner._stop.wait(float(fault[1]))
            elif kind == "text":
                forced_text = str(fault[1])
            elif kind == "content":
                content = fault[1]
            elif kind == "trickle":
                trickle = float(fault[1])
            else:
                raise ValueError(f"unknown fault {fault!r}")

        if not isinstance(body, dict):
            self._send_json(400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}})
            return
        model = body.get("model", "fake-model")
        n = int(body.get("n") or 1)
        if path.endswith("/chat/completions"):
            msgs = body.get("messages") or []
            users = [m for m in msgs if m.get("role") == "user"]
            prompt = _content_text((users or msgs or [{"content": ""}])[-1].get("content"))
            texts = [forced_text if forced_text is not None else owner.responder(prompt, body) for _ in range(n)]
            texts = [_apply_stop(t, body.get("stop")) for t in texts]
            resp = {
                "id": "chatcmpl-" + uuid.uuid4().hex[:12],
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": i, "message": {"role": "assistant",
                                                     "content": t if content is _NO_CONTENT else content},
                             "logprobs": None, "finish_reason": "stop"} for i, t in enumerate(texts)],
                "usage": _usage(prompt, texts),
            }
        elif path.endswith("/completions"):
            prompt = body.get("prompt", "")
            if isinstance(prompt, list):
                prompt = prompt[0] if prompt else ""
            texts = [forced_text if forced_text is not None else owner.responder(prompt, body) for _ in range(n)]
            texts = [_apply_stop(t, body.get("stop")) for t in texts]
            resp = {
                "id": "cmpl-" + uuid.uuid4().hex[:12],
                "object": "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": i, "text": t, "logprobs": None, "finish_reason": "stop"}
                            for i, t in enumerate(texts)],
                "usage": _usage(prompt, texts),
            }
        else:
            self._send_json(404, {"error": {"message": f"unknown path {path}", "type": "invalid_request_error"}})
            return
        record["usage"] = resp["usage"]  # what this answer reported: tests compare the run's totals
        self._send_json(200, resp, trickle_s=trickle)


_NO_CONTENT = object()


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal-style content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _apply_stop(text: str, stop: Any) -> str:
    if not stop:
        return text
    stops = [stop] if isinstance(stop, str) else list(stop)
    cut = len(text)
    for s in stops:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def _usage(prompt: str, texts: list[str]) -> dict:
    p = len(prompt.split())
    c = sum(len(t.split()) for t in texts)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


class FakeOpenAIServer:
    """Threaded fake OpenAI server on 127.0.0.1 with a free port; use as a context manager."""

    def __init__(
        self,
        responder: Callable[[str, dict], str] | None = None,
        latency_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.responder = responder or flip_responder
        self.latency_s = float(latency_s)
        self.host = host
        self._port = port
        self.faults: list = []
        self.records: list[dict] = []
        self.requests = 0
        self.in_flight = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "FakeOpenAIServer":
        self._stop.clear()
        self._httpd = _Server((self.host, self._port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="FakeOpenAIServer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes up hanging / sleeping handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- info --------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def reset_stats(self) -> None:
        with self._lock:
            self.records.clear()
            self.requests = 0
            self.max_concurrent = 0

    # -- internals used by the handler -------------------------------------------------------
    def _enter(self, record: dict) -> None:
        with self._lock:
            self.requests += 1
            self.records.append(record)
            self.in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self.in_flight)

    def _exit(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _pop_fault(self):
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
        return None
