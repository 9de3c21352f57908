"""OpenAIProposer through the real `openai` client against a real local HTTP server."""

import asyncio
import logging
import time

import pytest

from cod_pipeline.counterfactuals.llm import (
    LLMConfig,
    OpenAIProposer,
    PromptItem,
    Proposal,
    is_transport_error,
    task_prompt,
)
from tests.openai_server import FakeOpenAIServer, extract_target_sentence, flip_words

KEY_ENV = "COD_TEST_OPENAI_KEY"
SECRET = "sk-test-SECRET123"


@pytest.fixture
def srv():
    with FakeOpenAIServer() as s:
        yield s


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


def make(srv, **kw):
    cfg = LLMConfig(model="fake-model", base_url=srv.base_url, api_key_env=KEY_ENV,
                    backoff_base_s=0.01, backoff_max_s=0.05, **kw)
    return OpenAIProposer(cfg, task_prompt(kw.pop("task", "sentiment")))


POS = PromptItem("The movie was great and I love it.", "positive", "negative")
NEG = PromptItem("What a bad, terrible film.", "negative", "positive")


def test_fake_server_default_responder():
    assert flip_words("Good, GREAT and loved!") == "Bad, TERRIBLE and hated!"
    prompt = 'Your previous attempt "x is bad" failed.\n\nSentence: "The food was good."'
    assert extract_target_sentence(prompt) == "The food was good."
    assert extract_target_sentence("Original (positive): I love it\nFlipped (negative):") == "I love it"


def test_chat_happy_path(srv):
    p = make(srv, mode="chat", max_tokens=50, temperature=0.0)
    out = p.propose([POS, NEG])
    assert [o.text for o in out] == ["The movie was terrible and I hate it.", "What a good, great film."]
    assert all(o.rejection is None and o.calls == 1 and o.retries == 0 for o in out)
    assert p.stats["calls"] == 2 and p.stats["errors"] == 0 and p.stats["rejected"] == 0
    assert srv.requests == 2
    rec = srv.records[0]
    assert rec["path"] == "/v1/chat/completions"
    body = rec["body"]
    assert body["model"] == "fake-model" and body["max_tokens"] == 50 and body["temperature"] == 0.0
    user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    assert "minimal" in user.lower() and "ONLY" in user
    assert rec["headers"].get("authorization") == "Bearer EMPTY"  # local server, no key in env


def test_completion_happy_path(srv):
    p = make(srv, mode="completion")
    out = p.propose([POS, NEG])
    assert [o.text for o in out] == ["The movie was terrible and I hate it.", "What a good, great film."]
    bodies = sorted((r["body"] for r in srv.records), key=lambda b: b["prompt"].endswith("(positive):"))
    b = bodies[0]
    assert srv.records[0]["path"] == "/v1/completions"
    assert b["stop"] == ["\n"]
    assert b["prompt"].endswith(f"Original (positive): {POS.text}\nFlipped (negative):")
    assert b["prompt"].count("Original (positive):") == 4  # 3 few-shot + query
    # few-shot pairs are reversed for the other direction
    assert bodies[1]["prompt"].count("Original (negative):") == 4


def test_feedback_is_included(srv):
    fb = 'Your previous attempt "The movie was fine." was still classified as positive (confidence 0.91).'
    item = PromptItem(POS.text, "positive", "negative", feedback=fb)
    for mode in ("chat", "completion"):
        srv.reset_stats()
        out = make(srv, mode=mode).propose([item])
        assert out[0].text == "The movie was terrible and I hate it."  # sentence still found last
        body = srv.records[0]["body"]
        text = body["messages"][-1]["content"] if mode == "chat" else body["prompt"]
        assert fb in text


def test_429_retry_after_is_honoured(srv):
    srv.faults.append(("status", 429, {"Retry-After": "1"}))
    p = make(srv)
    t0 = time.monotonic()
    (o,) = p.propose([POS])
    elapsed = time.monotonic() - t0
    assert o.text == "The movie was terrible and I hate it."
    assert (o.calls, o.retries) == (2, 1) and p.stats["retries"] == 1
    assert elapsed >= 0.95
    assert srv.requests == 2


def test_500_and_timeout_are_retried(srv):
    srv.faults.extend([("status", 500, {}), ("hang", 2.0), ("status", 503, {})])
    p = make(srv, timeout_s=0.5)
    t0 = time.monotonic()
    (o,) = p.propose([POS])
    assert o.text == "The movie was terrible and I hate it." and o.rejection is None
    assert (o.calls, o.retries) == (4, 3)
    assert 0.45 < time.monotonic() - t0 < 1.9  # the hang was cut by the client timeout


def test_exhausting_retries_returns_error_proposal(srv, caplog):
    srv.faults.extend([("status", 500, {})] * 3)
    p = make(srv, max_retries=2)
    with caplog.at_level(logging.WARNING):
        (o,) = p.propose([POS])
    assert o == Proposal(text=None, raw=None, rejection="error:http_500", calls=3, retries=2)
    assert p.stats["errors"] == 1
    assert "after 2 retries" in caplog.text


def test_timeout_exhaustion(srv):
    srv.faults.extend([("hang", 1.5), ("hang", 1.5)])
    (o,) = make(srv, timeout_s=0.3, max_retries=1).propose([POS])
    assert (o.text, o.rejection, o.calls) == (None, "error:timeout", 2)


def test_connection_error():
    with FakeOpenAIServer() as s:
        url = s.base_url
    cfg = LLMConfig(base_url=url, api_key_env=KEY_ENV, max_retries=1, backoff_base_s=0.01, timeout_s=2)
    (o,) = OpenAIProposer(cfg, task_prompt("sentiment")).propose([POS])
    assert (o.text, o.rejection, o.calls, o.retries) == (None, "error:connection", 2, 1)


def test_no_retries_into_a_dead_local_server():
    """A local server that crashed will not come back: its owner's alive() stops the retries."""
    with FakeOpenAIServer() as s:
        url = s.base_url
    cfg = LLMConfig(base_url=url, api_key_env=KEY_ENV, max_retries=5, backoff_base_s=0.5, timeout_s=2)
    proposer = OpenAIProposer(cfg, task_prompt("sentiment"))
    proposer.alive = lambda: False
    t0 = time.time()
    (o,) = proposer.propose([POS])
    assert (o.rejection, o.calls, o.retries) == ("error:connection", 1, 0)
    assert time.time() - t0 < 2


def test_non_retryable_4xx_fails_fast(srv, caplog):
    srv.faults.extend([("status", 400, {}), ("status", 401, {})])
    p = make(srv, max_retries=5, max_in_flight=1)
    with caplog.at_level(logging.WARNING):
        out = p.propose([POS, NEG])
    assert sorted(o.rejection for o in out) == ["error:http_400", "error:http_401"]
    assert all(o.calls == 1 and o.retries == 0 for o in out)
    assert srv.requests == 2
    assert "not retryable" in caplog.text


def test_bad_outputs_rejected_or_cleaned(srv):
    replies = {
        "s1": "lorem ipsum\ndolor sit amet\nconsectetur",            # garbage, multi-line
        "s2": "S2",                                                 # copy of input
        "s3": "Here is the counterfactual:\n\"s3 flipped\"\nExplanation: I changed one word.",
        "s4": "As an AI language model I cannot help.",
        "s5": "",
        "s6": "Counterfactual: s6 flipped",
    }
    srv.responder = lambda prompt, body: replies[extract_target_sentence(prompt)]
    items = [PromptItem(s, "positive", "negative") for s in replies]
    out = make(srv).propose(items)
    got = {i.text: (o.text, o.rejection) for i, o in zip(items, out)}
    assert got == {
        "s1": (None, "multiline"),
        "s2": (None, "copy_of_input"),
        "s3": ("s3 flipped", None),
        "s4": (None, "explanation"),
        "s5": (None, "error:empty_response"),  # an empty answer is a failed call (asked again), not a verdict
        "s6": ("s6 flipped", None),
    }
    assert out[0].raw == replies["s1"]
    assert [o.calls for o in out] == [1, 1, 1, 1, 6, 1]  # rejections are not retried at this layer


def test_concurrency_is_bounded():
    with FakeOpenAIServer(latency_s=0.2) as s:
        p = OpenAIProposer(LLMConfig(base_url=s.base_url, api_key_env=KEY_ENV, max_in_flight=3),
                           task_prompt("sentiment"))
        t0 = time.monotonic()
        out = p.propose([PromptItem(f"good film number {i}", "positive", "negative") for i in range(12)])
        elapsed = time.monotonic() - t0
        assert [o.text for o in out] == [f"bad film number {i}" for i in range(12)]
        assert 2 <= s.max_concurrent <= 3
        assert 2 <= p.stats["peak_in_flight"] <= 3
        assert elapsed >= 0.75  # 12 / 3 * 0.2s


def test_propose_inside_running_loop(srv):
    p = make(srv)

    async def main():
        return p.propose([POS])  # sync call from within a loop -> worker thread

    (o,) = asyncio.run(main())
    assert o.text == "The movie was terrible and I hate it."
    (o2,) = asyncio.run(p.apropose([NEG]))
    assert o2.text == "What a good, great film."


def test_api_key_is_never_written(srv, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    cfg = LLMConfig(model="fake-model", base_url=srv.base_url, max_retries=1, backoff_base_s=0.01)
    assert cfg.api_key_env == "OPENAI_API_KEY"
    log_file = tmp_path / "run.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        srv.faults.extend([("status", 401, {})])  # error path logs a message
        p = OpenAIProposer(cfg, task_prompt("sentiment"))
        with caplog.at_level(logging.DEBUG):
            out = p.propose([POS, NEG])
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert sorted(str(o.rejection) for o in out) == ["None", "error:http_401"]
    (tmp_path / "results.txt").write_text(repr(out) + repr(p.stats) + repr(cfg) + repr(p.__dict__))
    from cod_pipeline.counterfactuals.store import CFEKey, CFEStore

    store = CFEStore(tmp_path / "cfe.sqlite")
    for i, o in enumerate(out):
        store.put(CFEKey("sst2", str(i), "llm", cfg.model, cfg.prompt_version, "t"), o.__dict__)
    store.close()
    assert SECRET not in repr(cfg) and SECRET not in str(cfg)
    assert SECRET not in caplog.text
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert len(files) >= 3
    for f in files:
        assert SECRET.encode() not in f.read_bytes(), f
    # the server does see it (expected): it is sent as the bearer token
    assert all(r["headers"].get("authorization") == f"Bearer {SECRET}" for r in srv.records)


def test_missing_key_for_hosted_openai_fails_before_any_call(monkeypatch):
    import openai

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def boom(*a, **k):
        raise AssertionError("network client must not be created")

    monkeypatch.setattr(openai, "AsyncOpenAI", boom)
    with pytest.raises(RuntimeError, match=r"cfe=openai needs \$OPENAI_API_KEY in the environment "
                                           r"\(or set cfe.runtime.base_url to a local server\)"):
        OpenAIProposer(LLMConfig(), task_prompt("sentiment"))


def test_task_prompts():
    acc = task_prompt("acceptability")
    item = PromptItem("She walk to school.", "unacceptable", "acceptable")
    msg = acc.chat_messages(item)[-1]["content"]
    assert "grammatically unacceptable" in msg and "acceptable" in msg and item.text in msg
    comp = acc.completion_prompt(item)
    assert comp.endswith("Original (unacceptable): She walk to school.\nFlipped (acceptable):")
    custom = task_prompt("sentiment", fewshot=[("a good x", "a bad x", "positive", "negative")])
    assert "Original (positive): a good x\nFlipped (negative): a bad x" in custom.completion_prompt(POS)
    topic = task_prompt("topic")  # any other task: a generic prompt driven by the class names
    msg = topic.chat_messages(PromptItem("The match ended 2-1.", "sports", "politics"))[-1]["content"]
    assert "from sports to politics" in msg and "The match ended 2-1." in msg
    with pytest.raises(ValueError):
        OpenAIProposer(LLMConfig(base_url="http://x", mode="stream"), "sentiment")
    cfg = LLMConfig.from_mapping({"model": "m", "base_url": "http://x", "_target_": "ignored", "name": "openai"})
    assert cfg.model == "m" and cfg.base_url == "http://x"


@pytest.mark.parametrize("content", [7, None, "", "   "])
def test_empty_or_non_text_content_is_a_failed_call_never_a_verdict(srv, content):
    """An int, null or empty answer is retried, and when it persists it is a transport error (never
    stored), not a rejection of the original."""
    srv.faults.extend([("content", content)] * 2)
    (o,) = make(srv, max_retries=1).propose([POS])
    assert o.text is None and is_transport_error(o.rejection), o
    assert o.rejection in ("error:empty_response", "error:bad_response")
    srv.faults.append(("content", content))
    (o,) = make(srv, max_retries=1).propose([POS])  # one bad answer, then a good one
    assert o.text == "The movie was terrible and I hate it." and o.retries == 1


def test_content_as_a_list_of_text_parts_is_joined(srv):
    srv.faults.append(("content", [{"type": "text", "text": "The movie was terrible "}, "and I hate it."]))
    (o,) = make(srv, max_retries=0).propose([POS])
    assert o.text == "The movie was terrible and I hate it."


def test_timeout_is_a_deadline_for_a_trickling_answer(srv):
    srv.faults.extend([("trickle", 0.3)] * 2)
    t0 = time.monotonic()
    (o,) = make(srv, timeout_s=1.0, max_retries=1).propose([POS])
    assert o.rejection == "error:timeout" and o.calls == 2
    assert time.monotonic() - t0 < 4.0  # two deadlines of 1 s, not two trickles of minutes


def test_retry_after_is_capped_by_the_setting(srv):
    srv.faults.append(("status", 429, {"Retry-After": "100000"}))
    t0 = time.monotonic()
    (o,) = make(srv, retry_after_max_s=0.2).propose([POS])
    assert o.text == "The movie was terrible and I hate it." and time.monotonic() - t0 < 3.0
