"""The persisted pruning record (`PruningRecord`) and the `Scorer` contract for criteria of one's own."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_model, save_with_processor

from gardener_hf import PruningRecord, Scorer, make_plan, prune_model, score_model, score_pretrained
from gardener_hf.constants import CONFIG_KEY, PRUNING_FILE
from gardener_hf.errors import GardenerError, WeightsError
from gardener_hf.scoring import score_blocks
from gardener_hf.surgery import save_pruned


def test_record_round_trips_through_its_file_and_the_config(tmp_path):
    model = make_model("VideoMAEForVideoClassification")
    prune_model(model, score_model(model, progress=False), keep=3)
    record = PruningRecord.from_model(model)
    assert record.to_dict() == getattr(model.config, CONFIG_KEY)
    assert record.num_kept == 3 and sorted(record.kept_blocks + record.removed_blocks) == list(range(6))
    save_pruned(model, tmp_path)
    loaded = PruningRecord.load(tmp_path)
    assert loaded == record
    assert json.loads((tmp_path / PRUNING_FILE).read_text()) == json.loads((tmp_path / "config.json").read_text())[CONFIG_KEY]
    assert "history" not in loaded.to_dict()  # only a second pruning has one
    ranks = loaded.ranks()
    assert sorted(ranks.values()) == list(range(1, 7)) and all(ranks[b] <= 3 for b in loaded.kept_blocks)


def test_pruning_twice_keeps_source_numbering_and_history():
    model = make_model("ViTModel")
    prune_model(model, score_model(model, progress=False), keep=4)
    first = PruningRecord.from_model(model)
    prune_model(model, remove=[0])  # position 0 of the pruned model = the first kept source block
    second = PruningRecord.from_model(model)
    assert second.kept_blocks == first.kept_blocks[1:] and second.source_num_blocks == 6
    assert second.history == [{"criterion": first.criterion, "kept_blocks": first.kept_blocks}]
    assert PruningRecord.from_dict(second.to_dict()) == second


def test_record_from_a_manual_plan_and_bad_files(tmp_path):
    record = PruningRecord.from_plan(make_plan(num_blocks=5, remove=[1, 3]))
    assert record.criterion == "manual" and record.scores is None and record.score_of() == {} and record.ranks() == {}
    with pytest.raises(WeightsError, match="cannot read the pruning record"):
        PruningRecord.load(tmp_path)
    (tmp_path / PRUNING_FILE).write_text("[1, 2]")
    with pytest.raises(WeightsError, match="not a pruning record"):
        PruningRecord.load(tmp_path)
    (tmp_path / PRUNING_FILE).write_text(json.dumps({"criterion": "entropy"}))
    with pytest.raises(WeightsError, match="malformed"):
        PruningRecord.load(tmp_path)
    assert PruningRecord.from_model(make_model("ViTModel")) is None


class MaxAbs(Scorer):
    summary = "largest absolute weight"
    prune_first = "highest"

    def block_stat(self, matrices):
        return max(float(m.abs().max()) for m in matrices)


def test_a_scorer_instance_works_everywhere_a_name_does(tmp_path):
    model = make_model("VideoMAEModel")
    scores = score_model(model, MaxAbs(), progress=False)
    # computed independently of the library: each block's largest |w| over its six matrices
    from gardener_hf.arch import block_matrices, get_blocks

    want = [max(float(w.detach().abs().max()) for w in block_matrices(model, b).values()) for b in get_blocks(model)]
    assert scores.scores == pytest.approx(want) and scores.criterion == "MaxAbs" and scores.prune_first == "highest"
    assert scores.removal_order()[0] == max(range(6), key=lambda i: want[i])
    streamed = score_pretrained(str(save_with_processor(model, tmp_path / "m")), MaxAbs(), progress=False)
    assert streamed.scores == scores.scores
    plan = make_plan(scores, keep=2)
    assert plan.criterion == "MaxAbs" and plan.kept == sorted(sorted(range(6), key=lambda i: want[i])[:2])


def test_the_scorer_contract_is_enforced():
    with pytest.raises(TypeError):
        Scorer()  # block_stat is abstract

    class Broken(MaxAbs):
        def finalize(self, stats):
            return [float("nan")] * len(stats)

    with pytest.raises(GardenerError, match="one finite score per block"):
        score_blocks([[torch.ones(2, 2)]] * 3, Broken(), progress=False)
