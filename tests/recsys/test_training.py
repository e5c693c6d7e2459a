"""recsys.pipelines.training: the bi-encoder fine-tune on a toy task with the tiny model —
the loss falls and retrieval improves, runs are reproducible, cancellation leaves nothing behind,
and the artifact folder holds what the ModelVersion needs."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.pipelines import encoding, training
from recsys.pipelines.common import CancelledError

WORDS_TEXT = (
    "usb cable charger phone case laptop bag watch gps smart tv screen monitor keyboard "
    "mouse headphones speaker camera lens battery printer ink router tablet"
)
WORDS = WORDS_TEXT.split()


def toy_pairs() -> pd.DataFrame:
    """Each query names one product; its text repeats the word among filler."""
    return pd.DataFrame(
        {
            "query": [f"{w}" for w in WORDS],
            "product_text": [f"the {w} pro in black and white, {w} mini" for w in WORDS],
        }
    )


def toy_config(model_path: str, **changes) -> training.TrainConfig:
    base = training.TrainConfig(
        base_model=model_path, batch_size=8, lr=1e-3, max_steps=30, max_length=32, seed=7
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def trained(tiny_model_path, tmp_path_factory):
    """One toy fine-tune shared by the tests that only inspect its result."""
    out = tmp_path_factory.mktemp("ft") / "model"
    steps = []
    result = training.finetune(
        toy_config(tiny_model_path), toy_pairs(), str(out), progress=lambda f, m: steps.append(f)
    )
    return result, steps


def top1_accuracy(path: str) -> float:
    enc = encoding.load_encoder(path)
    pairs = toy_pairs()
    q = encoding.encode(enc, list(pairs["query"]), bf16=False)
    d = encoding.encode(enc, list(pairs["product_text"]), bf16=False)
    return float(np.mean((q @ d.T).argmax(axis=1) == np.arange(len(pairs))))


def test_loss_decreases_and_retrieval_improves(trained, tiny_model_path):
    result, _steps = trained
    losses = [point["loss"] for point in result.curve]
    assert result.steps == len(losses) == 30
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert result.final_loss == losses[-1]
    assert top1_accuracy(result.path) > top1_accuracy(tiny_model_path)
    assert top1_accuracy(result.path) >= 0.8


def test_progress_reported_every_step(trained):
    _result, steps = trained
    assert len(steps) == 30
    assert steps == sorted(steps)
    assert steps[-1] == pytest.approx(1.0)


def test_artifacts_present(trained):
    result, _steps = trained
    names = set(os.listdir(result.path))
    expected = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"}
    assert expected | {training.CURVE_FILE, training.CONFIG_FILE} <= names
    with open(os.path.join(result.path, training.CURVE_FILE)) as fh:
        assert json.load(fh) == result.curve
    with open(os.path.join(result.path, training.CONFIG_FILE)) as fh:
        saved = json.load(fh)
    assert saved["config_hash"] == toy_config(saved["config"]["base_model"]).config_hash()
    assert saved["n_pairs"] == len(WORDS)
    assert result.checksum == training.dir_checksum(result.path)
    assert result.pairs_seen > 0
    assert result.pairs_per_second > 0
    reloaded = encoding.load_encoder(result.path)
    assert encoding.encode(reloaded, ["gps watch"]).shape == (1, 32)


def test_seeded_runs_are_reproducible(trained, tiny_model_path, tmp_path):
    result, _steps = trained
    again = training.finetune(toy_config(tiny_model_path), toy_pairs(), str(tmp_path / "again"))
    assert again.curve == result.curve
    assert again.checksum == result.checksum
    other = training.finetune(
        toy_config(tiny_model_path, seed=8), toy_pairs(), str(tmp_path / "other")
    )
    assert other.checksum != result.checksum


def test_cancellation_leaves_no_folder(tiny_model_path, tmp_path):
    polls = []

    def should_stop() -> bool:
        polls.append(1)
        return len(polls) > 3

    out = tmp_path / "cancelled"
    with pytest.raises(CancelledError):
        training.finetune(
            toy_config(tiny_model_path), toy_pairs(), str(out), should_stop=should_stop
        )
    assert len(polls) == 4  # checked before every batch, stopped before the 4th
    assert os.listdir(tmp_path) == []  # neither the final folder nor the temporary one


def test_failure_cleans_up_and_existing_folder_refused(tiny_model_path, tmp_path):
    with pytest.raises(ValueError, match="columns"):
        training.finetune(
            toy_config(tiny_model_path), pd.DataFrame({"q": [1]}), str(tmp_path / "x")
        )
    assert os.listdir(tmp_path) == []
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(FileExistsError):
        training.finetune(toy_config(tiny_model_path), toy_pairs(), str(tmp_path / "taken"))


def test_bf16_training_runs(tiny_model_path, tmp_path):
    result = training.finetune(
        toy_config(tiny_model_path, bf16=True, max_steps=10), toy_pairs(), str(tmp_path / "bf")
    )
    assert result.steps == 10
    assert np.isfinite(result.final_loss)


def test_config_hash_is_stable_and_sensitive():
    cfg = training.TrainConfig()
    assert cfg.config_hash() == training.TrainConfig().config_hash()
    assert cfg.config_hash() != training.TrainConfig(lr=3e-5).config_hash()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]


def test_plan_batches_seeded_and_capped():
    cfg = training.TrainConfig(batch_size=4, seed=1, epochs=2)
    first = training.plan_batches(9, cfg)
    again = training.plan_batches(9, cfg)
    assert [b.tolist() for b in first] == [b.tolist() for b in again]
    assert [len(b) for b in first] == [4, 4, 4, 4]  # trailing single pairs dropped
    assert len(set(np.concatenate(first[:2]).tolist())) == 8  # no pair twice in an epoch
    capped = training.plan_batches(9, dataclasses.replace(cfg, max_steps=7))
    assert len(capped) == 7


def test_length_grouped_batches_hold_similar_lengths_and_every_pair_once_per_epoch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 65, size=1000)
    cfg = training.TrainConfig(batch_size=32, seed=5, group_by_length=True)

    grouped = training.plan_batches(1000, cfg, lengths)
    plain = training.plan_batches(1000, dataclasses.replace(cfg, group_by_length=False), lengths)

    assert sorted(np.concatenate(grouped).tolist()) == list(range(1000))  # each pair once
    assert [b.tolist() for b in grouped] == [
        b.tolist() for b in training.plan_batches(1000, cfg, lengths)
    ]  # seeded

    def padded_tokens(batches):  # what dynamic padding costs: batch size x longest text
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    assert padded_tokens(grouped) < 0.7 * padded_tokens(plain)
    # the batches are shuffled, not served shortest first
    maxima = [int(lengths[b].max()) for b in grouped]
    assert maxima != sorted(maxima)
    with pytest.raises(ValueError, match="999 lengths for 1000 pairs"):
        training.plan_batches(1000, cfg, lengths[:999])


def test_without_lengths_grouping_changes_nothing():
    cfg = training.TrainConfig(batch_size=4, seed=1, epochs=2)
    grouped_cfg = dataclasses.replace(cfg, group_by_length=True)
    assert [b.tolist() for b in training.plan_batches(9, grouped_cfg)] == [
        b.tolist() for b in training.plan_batches(9, cfg)
    ]


def test_mnrl_masks_duplicate_queries_and_texts():
    """Two rows share a query: each one's text must not count as the other's negative."""
    torch.manual_seed(0)
    q = torch.randn(3, 8)
    d = torch.randn(3, 8)
    q_ids = torch.tensor([0, 0, 1])
    d_ids = torch.tensor([0, 1, 2])
    masked = training.mnrl_loss(q, d, q_ids, d_ids, scale=20.0)
    sims = 20.0 * torch.nn.functional.normalize(q) @ torch.nn.functional.normalize(d).T
    sims[0, 1] = sims[1, 0] = float("-inf")
    expected = torch.nn.functional.cross_entropy(sims, torch.arange(3))
    assert masked.item() == pytest.approx(expected.item(), rel=1e-6)
    unmasked = training.mnrl_loss(q, d, torch.arange(3), torch.arange(3), scale=20.0)
    assert unmasked.item() != pytest.approx(masked.item())
