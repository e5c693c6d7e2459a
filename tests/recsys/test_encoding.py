"""recsys.pipelines.encoding: batched inference with length sorting and dynamic padding, bf16,
normalisation, determinism, cancellation; the tiny test model; one slow smoke test on the real
all-MiniLM-L6-v2 with the Chorus judged queries."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.pipelines import encoding
from recsys.pipelines.common import CancelledError

TEXTS = [
    "usb cable",
    "a wireless bluetooth speaker in black with a long battery life and a carry bag",
    "gps watch",
    "laptop",
    "smart tv 55 inch with hdmi and a remote control, silver",
    "ssd drive 1tb",
    "ink",
    "mouse and keyboard set, wireless, white",
    "phone case red",
]
CHORUS = Path(
    os.environ.get("STEWARD_CHORUS_DIR")
    or Path(__file__).resolve().parents[3] / "shared" / "data" / "chorus-icecat"
)


def test_rows_come_back_in_input_order(tiny_encoder):
    """Batches are length-sorted internally; each row must still match its own text, encoded
    alone (no padding at all)."""
    batched = encoding.encode(tiny_encoder, TEXTS, batch_size=3, bf16=False)
    alone = np.vstack([encoding.encode(tiny_encoder, [t], bf16=False) for t in TEXTS])
    assert batched.shape == (len(TEXTS), tiny_encoder.dim)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    chunked = encoding.encode(tiny_encoder, TEXTS, batch_size=2, bf16=False, chunk_size=4)
    np.testing.assert_allclose(chunked, alone, atol=1e-5)


def test_dynamic_padding_pads_to_the_longest_in_batch(tiny_encoder):
    ids = encoding.tokenize_lengths(tiny_encoder, ["gps watch", "usb", "a b c d e f"], 128)
    batch = encoding.batch_tensors(tiny_encoder, ids)
    assert batch["input_ids"].shape[1] == max(len(i) for i in ids)
    assert batch["attention_mask"].sum(dim=1).tolist() == [len(i) for i in ids]


def test_max_length_truncates(tiny_encoder):
    ids = encoding.tokenize_lengths(tiny_encoder, ["word " * 300], 16)
    assert len(ids[0]) == 16


def test_normalisation(tiny_encoder):
    unit = encoding.encode(tiny_encoder, TEXTS, bf16=False)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    raw = encoding.encode(tiny_encoder, TEXTS, bf16=False, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), unit, atol=1e-5)


def test_bf16_is_close_to_fp32(tiny_encoder):
    fp32 = encoding.encode(tiny_encoder, TEXTS, bf16=False)
    bf16 = encoding.encode(tiny_encoder, TEXTS, bf16=True)
    assert bf16.dtype == np.float32
    cosines = (fp32 * bf16).sum(axis=1)
    assert cosines.min() > 0.99


def test_deterministic(tiny_encoder):
    first = encoding.encode(tiny_encoder, TEXTS, batch_size=4)
    second = encoding.encode(tiny_encoder, TEXTS, batch_size=4)
    np.testing.assert_array_equal(first, second)


def test_empty_input(tiny_encoder):
    assert encoding.encode(tiny_encoder, []).shape == (0, tiny_encoder.dim)


def test_progress_and_cancellation(tiny_encoder):
    seen = []
    encoding.encode(tiny_encoder, TEXTS, batch_size=4, progress=lambda f, m: seen.append(f))
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])
    seen.clear()
    encoding.encode(
        tiny_encoder, TEXTS, batch_size=2, chunk_size=4, progress=lambda f, m: seen.append(f)
    )
    assert seen == pytest.approx([i / 5 for i in range(1, 6)])  # chunks of 4, 4, 1: 2+2+1
    calls = iter([False, True])
    with pytest.raises(CancelledError):
        encoding.encode(tiny_encoder, TEXTS, batch_size=4, should_stop=lambda: next(calls))


def test_topk_overlap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    assert encoding.topk_overlap(x, x, k=10) == 1.0
    assert encoding.topk_overlap(x, rng.normal(size=(50, 8)).astype(np.float32), k=10) < 0.6


def test_choose_bf16_returns_decision_and_overlap(tiny_encoder):
    use, overlap = encoding.choose_bf16(tiny_encoder, TEXTS, k=3)
    assert isinstance(use, bool)
    assert 0.0 <= overlap <= 1.0
    assert use == (encoding.bf16_supported() and overlap >= 0.98)


def test_tiny_encoder_is_offline_and_reproducible(tmp_path, tiny_model_path):
    again = encoding.tiny_encoder(str(tmp_path), seed=0)

    def digest(folder):
        return hashlib.sha256(Path(folder, "model.safetensors").read_bytes()).hexdigest()

    assert digest(again) == digest(tiny_model_path)
    assert digest(encoding.tiny_encoder(str(tmp_path), seed=1)) != digest(again)
    enc = encoding.load_encoder(again)
    assert enc.dim == 32
    assert "[UNK]" not in enc.tokenizer.tokenize("Wireless USB-C charger 65W, zyx")


def test_default_model_path_points_at_the_shipped_model():
    path = encoding.default_model_path()
    assert os.path.isfile(os.path.join(path, "config.json"))
    assert os.path.isfile(os.path.join(path, "model.safetensors"))


@pytest.mark.slow
def test_real_model_encodes_chorus_judged_queries():
    """Smoke check on the real model: the 78 judged Chorus queries encode quickly into unit
    384-d vectors, bf16 agrees with fp32, and related queries are closer than unrelated ones."""
    judgments = CHORUS / "judgments.csv"
    if not judgments.exists():
        pytest.skip("Chorus data not present")
    queries = sorted(pd.read_csv(judgments)["query"].astype(str).unique())
    enc = encoding.load_encoder(encoding.default_model_path())
    start = time.monotonic()
    bf16 = encoding.encode(enc, queries, bf16=True)
    assert time.monotonic() - start < 10
    fp32 = encoding.encode(enc, queries, bf16=False)
    assert bf16.shape == (len(queries), 384)
    np.testing.assert_allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-4)
    assert (bf16 * fp32).sum(axis=1).min() > 0.99
    pair = encoding.encode(enc, ["gps watch", "garmin running watch", "ink cartridge"])
    assert pair[0] @ pair[1] > pair[0] @ pair[2]


@pytest.mark.parametrize(
    "setting, gpus, device",
    [
        ("auto", 0, "cpu"),
        ("auto", 2, "cuda"),
        ("", 0, "cpu"),
        (" CPU ", 2, "cpu"),
        ("cuda", 1, "cuda:0"),
        ("cuda:1", 2, "cuda:1"),
    ],
)
def test_resolve_device(monkeypatch, setting, gpus, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert encoding.resolve_device(setting) == device


@pytest.mark.parametrize(
    "setting, gpus, words",
    [
        ("cuda", 0, "this host has no usable CUDA GPU"),
        ("cuda:2", 2, "this host has 2 GPU(s)"),
        ("gpu", 1, "unknown device 'gpu'"),
        ("cuda:x", 1, "unknown device 'cuda:x'"),
        ("mps", 0, "unknown device 'mps'"),
    ],
)
def test_resolve_device_refuses_what_the_host_cannot_do(monkeypatch, setting, gpus, words):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    with pytest.raises(ValueError, match=re.escape(words)):
        encoding.resolve_device(setting)


def test_encoders_load_onto_the_jobs_device(tiny_model_path):
    """Inside compute_device (what a run's job is wrapped in) encoders load onto its device;
    outside it, and for the web processes, onto the CPU. ("meta" stands in for a GPU here.)"""
    assert encoding.current_device() == "cpu"
    with encoding.compute_device("meta"):
        on_job_device = encoding.load_encoder(tiny_model_path)
        explicit = encoding.load_encoder(tiny_model_path, device="cpu")
    assert on_job_device.device == "meta"
    assert str(next(on_job_device.model.parameters()).device) == "meta"
    assert str(next(explicit.model.parameters()).device) == "cpu"
    assert encoding.load_encoder(tiny_model_path).device == "cpu"
