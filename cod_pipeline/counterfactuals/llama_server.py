"""``python -m cod_pipeline.counterfactuals.llama_server --no_repack <llama_cpp.server args>``.

llama-cpp-python's own OpenAI-compatible server, with one switch its CLI lacks: llama.cpp's
repacked CPU weight buffers (``use_extra_bufts``). Measured here (llama-cpp-python 0.3.36
built from source on an AMX Xeon), the repacked Q4_1 path segfaults on the first batched
decode of SmolLM2-135M; without it the same completion returns in 0.4 s.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--no_repack" in argv:
        argv.remove("--no_repack")
        import llama_cpp.llama_cpp as C

        default_params = C.llama_model_default_params

        def no_repack():
            params = default_params()
            params.use_extra_bufts = False
            return params

        C.llama_model_default_params = no_repack  # read at Llama() construction time
    from llama_cpp.server.__main__ import main as serve

    sys.argv = [sys.argv[0], *argv]
    serve()


if __name__ == "__main__":
    main()
