"""Fine-tuning a bi-encoder on (query, product text) pairs with in-batch negatives.

One transformer with shared weights encodes queries and product texts (mean pooling, as at
inference in encoding.py). The loss is multiple-negatives ranking: for each query of a batch, its
own product text is the positive and every other text of the batch a negative; cross-entropy over
the scaled cosine-similarity matrix. Pairs of the same batch that share a query or a product text
are masked out as negatives (they are not negatives, only other positives).

Runs are seeded (python, numpy, torch; data order from a numpy Generator) so the same config,
data and CPU machine give byte-identical weights (on a GPU, atomics in some backward kernels
make weights differ in the last bits from run to run). ``should_stop`` is polled before every
batch; the artifact folder is written under a temporary name and renamed only when complete, so
a cancelled or failed run leaves nothing behind (STYLE.md §3.8). No Django imports;
torch/transformers are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.hashing import sha256_file
from recsys.pipelines.common import CancelledError, ProgressFn, stable_hash
from recsys.pipelines.encoding import (
    Encoder,
    batch_tensors,
    default_model_path,
    device_type,
    load_encoder,
    mean_pool,
    tokenize_lengths,
)

CURVE_FILE = "training_curve.json"
CONFIG_FILE = "train_config.json"


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning parameters; ``base_model`` "" means the shipped all-MiniLM-L6-v2.

    ``max_steps`` (when set) fixes the number of optimiser steps, cycling over the data as often
    as needed; otherwise ``epochs`` full passes. ``scale`` multiplies cosine similarities before
    the softmax (an inverse temperature: 20 = temperature 0.05). ``bf16`` runs forward passes
    under bf16 autocast (weights, gradients and the loss stay fp32). ``group_by_length`` makes
    batches of product texts of similar length (see ``plan_batches``), so that dynamic padding
    pads less.
    """

    base_model: str = ""
    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    max_length: int = 128
    seed: int = 13
    max_steps: int | None = None
    scale: float = 20.0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    bf16: bool = False
    group_by_length: bool = False

    def config_hash(self) -> str:
        """Stable sha256 of every field; the approval of a run pins it."""
        return stable_hash(asdict(self))


@dataclass
class TrainResult:
    """What a fine-tune produced: the artifact folder and its sha256 ``checksum``."""

    path: str
    steps: int
    final_loss: float
    curve: list[dict[str, float]]
    seconds: float
    checksum: str
    pairs_seen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pairs_per_second(self) -> float:
        """Training throughput over the whole run (tokenisation included)."""
        return self.pairs_seen / self.seconds if self.seconds > 0 else 0.0


def dir_checksum(path: str) -> str:
    """sha256 over the files of a folder: relative name and content hash, names sorted."""
    digest = hashlib.sha256()
    names = []
    for root, _dirs, files in os.walk(path):
        names += [os.path.relpath(os.path.join(root, f), path) for f in files]
    for name in sorted(names):
        digest.update(f"{name}\0{sha256_file(os.path.join(path, name))}\n".encode())
    return digest.hexdigest()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch global generators (dropout draws from torch's)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


LENGTH_GROUP_BATCHES = 8  # group_by_length sorts windows of this many batches by length


def plan_batches(
    n_pairs: int, cfg: TrainConfig, lengths: np.ndarray | None = None
) -> list[np.ndarray]:
    """Row indices of every training batch, in order: a fresh seeded permutation per epoch,
    batches of ``cfg.batch_size`` (a trailing batch of one pair is dropped: it has no negative).
    With ``max_steps`` the epochs repeat until that many batches exist, then stop.

    With ``cfg.group_by_length`` and ``lengths`` (tokens per pair), each epoch's permutation is
    cut into windows of LENGTH_GROUP_BATCHES batches, each window is sorted by length before it
    is cut into batches, and the epoch's batches are then shuffled: a batch holds texts of
    similar length (little padding) while its in-batch negatives stay a random draw of the
    window."""
    rng = np.random.default_rng(cfg.seed)
    grouped = cfg.group_by_length and lengths is not None
    if grouped and len(lengths) != n_pairs:
        raise ValueError(f"{len(lengths)} lengths for {n_pairs} pairs")
    batches: list[np.ndarray] = []
    epoch = 0
    while True:
        perm = rng.permutation(n_pairs)
        size = cfg.batch_size
        chunks = (
            _length_grouped(perm, lengths, size, rng)
            if grouped
            else [perm[start : start + size] for start in range(0, n_pairs, size)]
        )
        for chunk in chunks:
            if len(chunk) >= 2:
                batches.append(chunk)
            if cfg.max_steps is not None and len(batches) >= cfg.max_steps:
                return batches
        epoch += 1
        if cfg.max_steps is None and epoch >= cfg.epochs:
            return batches
        if not batches:
            return batches


def _length_grouped(
    perm: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    window = batch_size * LENGTH_GROUP_BATCHES
    chunks: list[np.ndarray] = []
    for start in range(0, len(perm), window):
        part = perm[start : start + window]
        part = part[np.argsort(lengths[part], kind="stable")]
        chunks.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [chunks[i] for i in rng.permutation(len(chunks))]


def mnrl_loss(q_emb: Any, d_emb: Any, q_ids: Any, d_ids: Any, scale: float) -> Any:
    """Multiple-negatives ranking loss with false in-batch negatives masked.

    Row i of the similarity matrix scores query i against every text of the batch; the target is
    column i. Columns j != i whose query or text equals row i's are positives too, not
    negatives, so they are set to -inf before the cross-entropy.
    """
    import torch
    import torch.nn.functional as F

    q = F.normalize(q_emb.float(), p=2, dim=1)
    d = F.normalize(d_emb.float(), p=2, dim=1)
    sims = scale * (q @ d.T)
    same = (q_ids[:, None] == q_ids[None, :]) | (d_ids[:, None] == d_ids[None, :])
    same.fill_diagonal_(False)
    sims = sims.masked_fill(same, float("-inf"))
    return F.cross_entropy(sims, torch.arange(len(q), device=sims.device))


def _linear_warmup(total: int, warmup: int) -> Callable[[int], float]:
    """LR multiplier: linear 0 → 1 over ``warmup`` steps, then linear 1 → 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


@dataclass
class _Data:
    """Pre-tokenised training data: unique query/text token ids and per-pair indices."""

    q_tokens: list[list[int]]
    d_tokens: list[list[int]]
    q_idx: np.ndarray
    d_idx: np.ndarray


def _prepare(encoder: Encoder, pairs: pd.DataFrame, max_length: int) -> _Data:
    """Tokenise each distinct query and text once; pairs refer to them by integer codes."""
    missing = {"query", "product_text"} - set(pairs.columns)
    if missing:
        raise ValueError(f"train_pairs lacks columns: {sorted(missing)}")
    pairs = pairs.dropna(subset=["query", "product_text"])
    q_idx, q_uniq = pd.factorize(pairs["query"].astype(str), sort=False)
    d_idx, d_uniq = pd.factorize(pairs["product_text"].astype(str), sort=False)
    if len(pairs) < 2:
        raise ValueError("fine-tuning needs at least 2 training pairs")
    return _Data(
        q_tokens=tokenize_lengths(encoder, list(q_uniq), max_length),
        d_tokens=tokenize_lengths(encoder, list(d_uniq), max_length),
        q_idx=np.asarray(q_idx),
        d_idx=np.asarray(d_idx),
    )


def _train_step(encoder: Encoder, data: _Data, rows: np.ndarray, cfg: TrainConfig, opt: Any):
    """One optimiser step on the pairs ``rows``; returns the loss as a float."""
    import torch

    q_codes, d_codes = data.q_idx[rows], data.d_idx[rows]
    q_batch = batch_tensors(encoder, [data.q_tokens[i] for i in q_codes])
    d_batch = batch_tensors(encoder, [data.d_tokens[i] for i in d_codes])
    autocast = torch.autocast(
        device_type=device_type(encoder.device), dtype=torch.bfloat16, enabled=cfg.bf16
    )
    with autocast:
        q_out = encoder.model(**q_batch).last_hidden_state
        d_out = encoder.model(**d_batch).last_hidden_state
    q_emb = mean_pool(q_out, q_batch["attention_mask"])
    d_emb = mean_pool(d_out, d_batch["attention_mask"])
    codes = [torch.from_numpy(c).to(encoder.device) for c in (q_codes, d_codes)]
    loss = mnrl_loss(q_emb, d_emb, *codes, cfg.scale)
    opt["optimizer"].zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(encoder.model.parameters(), cfg.max_grad_norm)
    opt["optimizer"].step()
    opt["scheduler"].step()
    return float(loss.detach())


def _make_optimizer(encoder: Encoder, cfg: TrainConfig, total: int) -> dict[str, Any]:
    """AdamW (no decay on biases and LayerNorm weights) with linear warmup and decay."""
    import torch

    decay, no_decay = [], []
    for name, param in encoder.model.named_parameters():
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    try:  # the fused kernel (CPU too, torch >= 2.4) is ~40% faster than the per-tensor loop
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError):
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    warmup = math.ceil(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_warmup(total, warmup))
    return {"optimizer": optimizer, "scheduler": scheduler}


def _save(encoder: Encoder, tmp: str, cfg: TrainConfig, curve: list, meta: dict) -> None:
    """Write weights (safetensors), tokenizer, config, loss curve and run config into ``tmp``."""
    encoder.model.save_pretrained(tmp)
    encoder.tokenizer.save_pretrained(tmp)
    with open(os.path.join(tmp, CURVE_FILE), "w", encoding="utf-8") as fh:
        json.dump(curve, fh, indent=1)
    payload = {"config": asdict(cfg), "config_hash": cfg.config_hash(), **meta}
    with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True)


def finetune(
    cfg: TrainConfig,
    train_pairs: pd.DataFrame,
    out_dir: str,
    *,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Fine-tune ``cfg.base_model`` on ``train_pairs`` (columns query, product_text) and save the
    model to ``out_dir``, which must not exist yet (or be empty).

    Everything is written to ``out_dir + ".tmp-<pid>"`` and renamed at the end; on cancellation
    (``should_stop()`` true before a batch → CancelledError) or any error that folder is removed.
    """
    start = time.monotonic()
    out_dir = os.path.abspath(out_dir)
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"artifact folder already exists: {out_dir}")
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        result = _run(cfg, train_pairs, tmp, progress, should_stop)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.path = out_dir
    result.seconds = time.monotonic() - start
    return result


def _run(cfg, train_pairs, tmp, progress, should_stop) -> TrainResult:
    """The training loop proper; writes the artifact into ``tmp``."""
    seed_everything(cfg.seed)
    base = cfg.base_model or default_model_path()
    encoder = load_encoder(base)
    data = _prepare(encoder, train_pairs, cfg.max_length)
    lengths = np.fromiter((len(data.d_tokens[i]) for i in data.d_idx), np.int64, len(data.d_idx))
    batches = plan_batches(len(data.q_idx), cfg, lengths)
    opt = _make_optimizer(encoder, cfg, len(batches))
    encoder.model.train()
    curve: list[dict[str, float]] = []
    for step, rows in enumerate(batches, start=1):
        if should_stop is not None and should_stop():
            raise CancelledError(f"fine-tuning cancelled before step {step}/{len(batches)}")
        loss = _train_step(encoder, data, rows, cfg, opt)
        curve.append({"step": step, "loss": loss})
        if progress is not None:
            progress(step / len(batches), f"fine-tune step {step}/{len(batches)} loss {loss:.4f}")
    encoder.model.eval()
    meta = {
        "base_model": base,
        "n_pairs": len(data.q_idx),
        "steps": len(batches),
        "device": encoder.device,
    }
    _save(encoder, tmp, cfg, curve, meta)
    return TrainResult(
        path=tmp,
        steps=len(batches),
        final_loss=curve[-1]["loss"] if curve else float("nan"),
        curve=curve,
        seconds=0.0,
        checksum=dir_checksum(tmp),
        pairs_seen=int(sum(len(b) for b in batches)),
    )
