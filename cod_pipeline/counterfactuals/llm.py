"""OpenAI-compatible counterfactual-explanation (CFE) proposer.

Talks to the hosted OpenAI API or to any OpenAI-compatible server (vLLM, llama.cpp,
Ollama, ...) through the official ``openai`` async client.  Retries are implemented here
(the client is created with ``max_retries=0``) so that every HTTP call and retry is
counted; concurrency is bounded by an ``asyncio.Semaphore(max_in_flight)``.

The API key is read from the environment variable named by ``LLMConfig.api_key_env`` at
call time and is never stored in the config, in ``self.stats`` or in any log message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from cod_pipeline import ConfigError

from .tasks import SYSTEM, prompt_task
from .textclean import clean_llm_output, max_answer_chars

log = logging.getLogger(__name__)

__all__ = [
    "LLMConfig",
    "Proposal",
    "PromptItem",
    "TaskPrompt",
    "task_prompt",
    "OpenAIProposer",
    "MISSING_KEY_MESSAGE",
    "EndpointFailed",
    "is_transport_error",
    "endpoint_url",
]

MISSING_KEY_MESSAGE = (
    "cfe=openai needs ${env} in the environment (or set cfe.runtime.base_url to a local server)"
)


ERROR_PREFIX = "error:"  # Proposal.rejection of a call that failed (after its retries), not of the text


def is_transport_error(reason: str | None) -> bool:
    """A failed call (connection, DNS, timeout, 5xx/429 after all retries, a refused request): a
    fact about the endpoint, never a verdict on the original, so it must not be cached as one."""
    return bool(reason) and str(reason).startswith(ERROR_PREFIX)


def endpoint_url(cfg: "LLMConfig") -> str:
    """Where requests go: ``cfe.runtime.base_url``, else ``$OPENAI_BASE_URL`` (as the openai client
    reads it), else the public endpoint."""
    return cfg.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"


class EndpointFailed(ConfigError):
    """Every request of a chunk failed in transit: the stage stops (one line) and nothing is stored."""


# --------------------------------------------------------------------------------------------
# Config / data classes
# --------------------------------------------------------------------------------------------
@dataclass
class LLMConfig:
    """Mirrors the ``cfe`` node's ``llm`` (what is asked) and ``runtime`` (how: endpoint, concurrency,
    retries) keys. Holds the *name* of the key env var, never the key."""

    model: str = "gpt-4o"
    base_url: str | None = None  # None -> OpenAI default
    api_key_env: str = "OPENAI_API_KEY"
    mode: str = "chat"  # "chat" | "completion"
    max_in_flight: int = 8
    timeout_s: float = 30.0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    retry_after_max_s: float = 60.0  # a server's Retry-After is obeyed up to this
    temperature: float = 0.0
    max_tokens: int = 96
    prompt_version: str = "v1"

    @classmethod
    def from_mapping(cls, m: Any) -> "LLMConfig":
        """Build from a dict / DictConfig, ignoring unknown keys (``_target_``; the loop's and the
        server's runtime keys beside the client's, e.g. ``chunk_size``, ``n_ctx``)."""
        names = set(cls.__dataclass_fields__)
        items = dict(m.items()) if hasattr(m, "items") else dict(m)
        return cls(**{k: v for k, v in items.items() if k in names})


@dataclass
class Proposal:
    text: str | None  # cleaned candidate, None if rejected/failed
    raw: str | None
    rejection: str | None  # textclean reason, or "error:<kind>" when the call failed after retries
    calls: int  # HTTP calls made for this proposal (incl. retries)
    retries: int
    tokens: tuple[int, int] = (0, 0)  # prompt and completion tokens the endpoint reported, all attempts


@dataclass
class PromptItem:
    text: str
    source_label: str  # the teacher's current class name, e.g. "positive"
    target_label: str  # class name we ask for, e.g. "negative"
    feedback: str | None = None


@dataclass
class TaskPrompt:
    """Prompt material for one task.

    ``instruction``: chat user-message template with ``{source_label}``, ``{target_label}``,
    ``{text}`` and optionally ``{feedback}`` (filled with ``"<feedback>\\n\\n"`` or ``""``; if
    the placeholder is absent, feedback is inserted before the final sentence block).

    ``fewshot``: (original, flipped) pairs for completion mode, written in the direction
    ``fewshot_labels[0] -> fewshot_labels[1]``; they are reversed automatically when the
    query goes the other way.  4-tuples ``(original, flipped, src_label, tgt_label)`` are
    also accepted and used as-is.

    ``completion_template``: per-example block with ``{source_label}``, ``{target_label}``,
    ``{text}`` and ``{flipped}``; the query uses the same block with ``{flipped}`` empty.
    """

    instruction: str
    fewshot: list = field(default_factory=list)
    completion_template: str = "Original ({source_label}): {text}\nFlipped ({target_label}):{flipped}"
    system: str | None = None
    completion_header: str = ""
    fewshot_labels: tuple[str, str] | None = None
    stop: tuple[str, ...] = ("\n",)

    # -- builders ----------------------------------------------------------------------------
    def chat_messages(self, item: PromptItem) -> list[dict]:
        fb = (item.feedback.strip() + "\n\n") if item.feedback else ""
        vals = dict(source_label=item.source_label, target_label=item.target_label, text=item.text)
        if "{feedback}" in self.instruction:
            user = self.instruction.format(feedback=fb, **vals)
        else:
            user = self.instruction.format(**vals)
            if fb:
                head, sep, tail = user.rpartition("\n\n")
                user = f"{head}\n\n{fb}{tail}" if sep else f"{fb}{user}"
        msgs = []
        if self.system:
            msgs.append({"role": "system", "content": self.system})
        msgs.append({"role": "user", "content": user})
        return msgs

    def _examples(self, item: PromptItem) -> list[tuple[str, str, str, str]]:
        out = []
        for ex in self.fewshot:
            ex = tuple(ex)
            if len(ex) == 4:
                out.append(ex)
                continue
            orig, flipped = ex[0], ex[1]
            src, tgt = self.fewshot_labels or (item.source_label, item.target_label)
            if self.fewshot_labels and item.source_label == tgt and item.target_label == src:
                orig, flipped, src, tgt = flipped, orig, tgt, src
            out.append((orig, flipped, src, tgt))
        return out

    def completion_prompt(self, item: PromptItem) -> str:
        parts = [self.completion_header] if self.completion_header else []
        for orig, flipped, src, tgt in self._examples(item):
            parts.append(
                self.completion_template.format(source_label=src, target_label=tgt, text=orig, flipped=" " + flipped)
                + "\n\n"
            )
        if item.feedback:
            parts.append(f"Note: {' '.join(item.feedback.split())}\n")
        parts.append(
            self.completion_template.format(
                source_label=item.source_label, target_label=item.target_label, text=item.text, flipped=""
            )
        )
        return "".join(parts)


def task_prompt(task: str, fewshot: Sequence | None = None) -> TaskPrompt:
    """The prompt of ``task``'s registry entry (``tasks.py``: sentiment, acceptability, or the
    generic entry for any other task, where the class names carry the meaning); ``fewshot``
    replaces the entry's own examples (then no direction is assumed)."""
    entry = prompt_task(task)
    return TaskPrompt(
        instruction=entry.instruction,
        fewshot=list(fewshot) if fewshot is not None else list(entry.fewshot),
        system=SYSTEM,
        completion_header=entry.header.format(task=task.lower()),
        fewshot_labels=entry.fewshot_labels if fewshot is None else None,
    )


# --------------------------------------------------------------------------------------------
# Proposer
# --------------------------------------------------------------------------------------------
class _CallFailed(Exception):
    def __init__(self, kind: str, retryable: bool, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after


def _parse_retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        ra = headers.get("retry-after")
    except Exception:  # pragma: no cover - exotic header containers
        return None
    if ra is None:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:  # HTTP-date form
        dt = email.utils.parsedate_to_datetime(ra)
        return max(0.0, dt.timestamp() - time.time())
    except Exception:
        return None


def _usage(resp) -> tuple[int, int]:
    """Prompt and completion tokens as the endpoint reports them (0 where it does not)."""
    u = getattr(resp, "usage", None)
    return int(getattr(u, "prompt_tokens", 0) or 0), int(getattr(u, "completion_tokens", 0) or 0)


def _content(value: Any) -> str:
    """The answer's text: a string, or a list of text parts joined. Empty (``""``, null) is a
    failed call to ask again, never a verdict on the original; anything else is a bad response."""
    if isinstance(value, list) and all(isinstance(p, str) or (isinstance(p, dict) and isinstance(p.get("text"), str))
                                       for p in value):
        value = "".join(p if isinstance(p, str) else p["text"] for p in value)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _CallFailed("empty_response", True, "the answer's content is empty")
    if not isinstance(value, str):
        raise _CallFailed("bad_response", True, f"the answer's content is a {type(value).__name__}, not text")
    return value


class OpenAIProposer:
    """Propose counterfactual rewrites through an OpenAI-compatible endpoint."""

    def __init__(self, cfg: LLMConfig, task: TaskPrompt | str = "sentiment") -> None:
        if cfg.mode not in ("chat", "completion"):
            raise ValueError(f"cfe.mode must be 'chat' or 'completion', got {cfg.mode!r}")
        if cfg.max_in_flight < 1:
            raise ValueError("cfe.runtime.max_in_flight must be >= 1")
        self.cfg = cfg
        self.task = task_prompt(task) if isinstance(task, str) else task
        self._check_key()  # fail fast, before any network call
        self.stats: dict[str, int] = {"calls": 0, "retries": 0, "rejected": 0, "peak_in_flight": 0, "errors": 0}
        self._in_flight = 0
        self._warned: set[str] = set()
        self.alive = lambda: True  # a local server's owner sets this: no retries into a dead process
        self._down = False  # the last batch failed entirely: no more retries until a call succeeds

    # -- key handling ------------------------------------------------------------------------
    def _check_key(self) -> str:
        key = os.environ.get(self.cfg.api_key_env)
        if not key:
            if self.cfg.base_url is None and not os.environ.get("OPENAI_BASE_URL"):
                raise RuntimeError(MISSING_KEY_MESSAGE.replace("{env}", self.cfg.api_key_env))
            key = "EMPTY"  # local OpenAI-compatible servers usually ignore the key
        return key

    def _redact(self, msg: str) -> str:
        key = os.environ.get(self.cfg.api_key_env)
        if key and key != "EMPTY":
            msg = msg.replace(key, "***")
        return msg

    def _make_client(self):
        import openai

        kwargs: dict[str, Any] = dict(api_key=self._check_key(), timeout=self.cfg.timeout_s, max_retries=0)
        if self.cfg.base_url is not None:
            kwargs["base_url"] = self.cfg.base_url
        return openai.AsyncOpenAI(**kwargs)

    # -- public API --------------------------------------------------------------------------
    def propose(self, items: Sequence[PromptItem]) -> list[Proposal]:
        """Synchronous wrapper around :meth:`apropose`."""
        items = list(items)
        if not items:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            try:
                return asyncio.run(self.apropose(items))
            except KeyboardInterrupt:
                raise KeyboardInterrupt() from None  # not asyncio's chain of CancelledError tracebacks
        # Called from inside a running event loop (e.g. notebook): run in a worker thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
            return ex.submit(asyncio.run, self.apropose(items)).result()

    async def apropose(self, items: Sequence[PromptItem]) -> list[Proposal]:
        items = list(items)
        if not items:
            return []
        from tqdm.auto import tqdm

        client = self._make_client()
        sem = asyncio.Semaphore(self.cfg.max_in_flight)
        bar = tqdm(total=len(items), desc="cfe-llm requests", disable=len(items) < 8, mininterval=1.0, leave=False)

        async def one(it):
            p = await self._one(client, sem, it)
            bar.update(1)
            return p

        try:
            out = list(await asyncio.gather(*(one(it) for it in items)))
        finally:
            bar.close()
            await client.close()
        # a batch whose every request failed after its retries: until a call succeeds again,
        # later batches (feedback attempts) try each request once instead of retrying again
        self._down = all(is_transport_error(p.rejection) for p in out)
        return out

    # -- internals ---------------------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        d = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * (2**attempt))
        return d + random.uniform(0, 0.1 * d)

    async def _one(self, client, sem: asyncio.Semaphore, item: PromptItem) -> Proposal:
        calls = retries = 0
        attempt = 0
        used = [0, 0]
        while True:
            async with sem:
                self._in_flight += 1
                self.stats["peak_in_flight"] = max(self.stats["peak_in_flight"], self._in_flight)
                calls += 1
                self.stats["calls"] += 1
                try:  # timeout_s is a deadline for the whole request, not per socket read
                    raw, usage = await asyncio.wait_for(self._call(client, item), self.cfg.timeout_s)
                    used = [used[0] + usage[0], used[1] + usage[1]]
                    err = None
                except asyncio.TimeoutError:
                    err = _CallFailed("timeout", True, f"no complete answer within {self.cfg.timeout_s}s")
                except _CallFailed as e:
                    err = e
                finally:
                    self._in_flight -= 1
            if err is None:
                self._down = False
                text, reason = clean_llm_output(raw, item.text)
                if reason is not None:
                    self.stats["rejected"] += 1
                raw = raw[:max_answer_chars(item.text)] if raw else raw  # a 5 MB answer is not kept whole
                return Proposal(text=text, raw=raw, rejection=reason, calls=calls, retries=retries, tokens=tuple(used))
            if not err.retryable or attempt >= self.cfg.max_retries or self._down or not self.alive():
                self.stats["errors"] += 1
                self._warn_once(err, gave_up=err.retryable)
                return Proposal(text=None, raw=None, rejection=f"error:{err.kind}", calls=calls, retries=retries,
                                tokens=tuple(used))
            delay = self._backoff(attempt)
            if err.retry_after is not None:
                delay = max(min(err.retry_after, self.cfg.retry_after_max_s), 0.0) + random.uniform(0, 0.05)
            log.debug("CFE call failed (%s), retry %d in %.2fs", err.kind, attempt + 1, delay)
            await asyncio.sleep(delay)
            attempt += 1
            retries += 1
            self.stats["retries"] += 1

    def _warn_once(self, err: _CallFailed, gave_up: bool) -> None:
        if err.kind in self._warned:
            return
        self._warned.add(err.kind)
        where = endpoint_url(self.cfg)
        what = f"after {self.cfg.max_retries} retries" if gave_up else "(not retryable)"
        log.warning("CFE request to %s (model=%s) failed %s: %s", where, self.cfg.model, what,
                    self._redact(str(err)))

    async def _call(self, client, item: PromptItem) -> tuple[str, tuple[int, int]]:
        import openai

        cfg = self.cfg
        # Build prompts outside the try: template errors are programming errors, not retryable.
        if cfg.mode == "chat":
            messages = self.task.chat_messages(item)
        else:
            prompt = self.task.completion_prompt(item)
        try:
            if cfg.mode == "chat":
                resp = await client.chat.completions.create(
                    model=cfg.model,
                    messages=messages,
                    temperature=cfg.temperature,
                    max_tokens=cfg.max_tokens,
                    n=1,
                )
                if not resp.choices:
                    raise _CallFailed("bad_response", True, "response has no choices")
                return _content(resp.choices[0].message.content), _usage(resp)
            resp = await client.completions.create(
                model=cfg.model,
                prompt=prompt,
                temperature=cfg.temperature,
                max_tokens=cfg.max_tokens,
                stop=list(self.task.stop) or None,
                n=1,
            )
            if not resp.choices:
                raise _CallFailed("bad_response", True, "response has no choices")
            return _content(resp.choices[0].text), _usage(resp)
        except _CallFailed:
            raise
        except openai.APITimeoutError as e:  # subclass of APIConnectionError: check first
            raise _CallFailed("timeout", True, f"timed out after {cfg.timeout_s}s") from e
        except openai.APIConnectionError as e:
            raise _CallFailed("connection", True, f"connection error: {e}") from e
        except openai.APIStatusError as e:
            code = int(getattr(e, "status_code", 0) or 0)
            headers = getattr(getattr(e, "response", None), "headers", None)
            if code == 429:
                raise _CallFailed("rate_limit", True, f"HTTP 429: {e}", _parse_retry_after(headers)) from e
            if code >= 500 or code in (408, 409):
                raise _CallFailed(f"http_{code}", True, f"HTTP {code}: {e}", _parse_retry_after(headers)) from e
            raise _CallFailed(f"http_{code}", False, f"HTTP {code}: {e}") from e
        except (openai.APIResponseValidationError, AttributeError, ValueError) as e:
            raise _CallFailed("bad_response", True, f"malformed response: {e}") from e
