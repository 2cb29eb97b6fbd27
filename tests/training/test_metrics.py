"""Classification metrics (hand-computed answers), the Trainer hook, the table, the plots, and offline /
concurrent loading of the packaged `evaluate` metric script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import EvalPrediction

from gardener_hf.plotting import plot_confusion_matrix, plot_training_curve
from gardener_hf.training.metrics import (
    METRIC_PATH,
    classification_metrics,
    compute_metrics_fn,
    format_metrics_table,
    load_metric,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def onehot_logits(predicted: list[int], num_classes: int) -> np.ndarray:
    """Logits whose top-1 class is `predicted[i]` for sample i."""
    logits = np.zeros((len(predicted), num_classes), dtype=np.float32)
    logits[np.arange(len(predicted)), predicted] = 5.0
    return logits


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_topk_known_answer():
    # The true class sits at rank 1, 1, 3 and 6 (last) of the 6 scores.
    logits = np.array(
        [
            [9, 1, 2, 3, 4, 5],  # label 0, rank 1
            [1, 9, 2, 3, 4, 5],  # label 1, rank 1
            [9, 8, 7, 1, 2, 3],  # label 2, rank 3
            [6, 5, 4, 0, 3, 2],  # label 3, rank 6
        ],
        dtype=np.float32,
    )
    labels = np.array([0, 1, 2, 3])
    m = classification_metrics(logits, labels)
    assert (m["top1"], m["top5"]) == (0.5, 0.75)
    assert m["num_samples"] == 4
    m = classification_metrics(logits, labels, top_k=(2, 3, 6))
    assert (m["top2"], m["top3"], m["top6"]) == (0.5, 0.75, 1.0)
    assert "top1" not in m


def test_ties_rank_the_lower_class_first():
    logits = np.zeros((3, 4), dtype=np.float32)
    m = classification_metrics(logits, np.array([0, 1, 2]), top_k=(1, 2))
    assert m["top1"] == pytest.approx(1 / 3)  # every sample predicts class 0
    assert m["top2"] == pytest.approx(2 / 3)  # classes 0 and 1 make the top 2
    assert [row[0] for row in m["confusion_matrix"]] == [1, 1, 1, 0]


def test_top5_is_capped_at_the_number_of_classes():
    logits = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    m = classification_metrics(logits, np.array([0, 2]))
    assert m["top1"] == 0.0
    assert m["top5"] == 1.0  # k = 5 means "all 3 classes"; the key keeps the requested k


def test_mean_class_accuracy_per_class_and_confusion_on_an_imbalanced_set():
    # class 0: 6 videos, all right; class 1: 2 videos, one taken for class 0 and one for class 2;
    # class 2: 1 video, right; class 3: no video at all.
    labels = [0, 0, 0, 0, 0, 0, 1, 1, 2]
    predicted = [0, 0, 0, 0, 0, 0, 0, 2, 2]
    m = classification_metrics(onehot_logits(predicted, 4), np.array(labels))
    assert m["top1"] == pytest.approx(7 / 9)
    # The majority class dominates top-1; mean class accuracy weighs the failed minority class fully.
    assert m["mean_class_accuracy"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert m["mean_class_accuracy"] < m["top1"]
    assert m["per_class_accuracy"] == [1.0, 0.0, 1.0, None]
    assert m["confusion_matrix"] == [[6, 0, 0, 0], [1, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert m["num_samples"] == 9
    json.dumps(m)  # plain Python types only: results go into JSON files and model cards


def test_multi_clip_averages_probabilities_not_logits():
    # One very confident clip for class 0 against two fairly confident clips for class 1: the mean logit picks
    # class 0 (10/3 > 2), the mean probability picks class 1 (0.365 < 0.635).
    clips = np.array([[[10.0, 0.0], [0.0, 3.0], [0.0, 3.0]]])
    labels = np.array([1])
    assert classification_metrics(clips, labels)["top1"] == 1.0
    assert classification_metrics(clips.mean(axis=1), labels)["top1"] == 0.0
    # A single clip is the same as 2-D logits.
    logits = np.array([[0.3, 2.0, -1.0], [4.0, 0.0, 1.0]])
    assert classification_metrics(logits[:, None, :], np.array([1, 2])) == classification_metrics(
        logits, np.array([1, 2])
    )


def test_compute_metrics_fn_with_eval_prediction():
    fn = compute_metrics_fn(num_classes=3)
    logits = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]], dtype=np.float32)
    labels = np.array([1, 0, 0, 0])
    expected = {"top1": 0.75, "top5": 1.0, "mean_class_accuracy": pytest.approx((2 / 3 + 1.0) / 2)}
    out = fn(EvalPrediction(predictions=logits, label_ids=labels))
    assert out == expected
    assert list(out) == ["top1", "top5", "mean_class_accuracy"]
    assert all(type(v) is float for v in out.values())
    hidden = np.zeros((4, 2, 8), dtype=np.float32)
    assert fn(EvalPrediction(predictions=(logits, hidden), label_ids=labels)) == expected
    with pytest.raises(ValueError, match="num_classes=3"):
        fn(EvalPrediction(predictions=logits[:, :2], label_ids=labels))


def test_compute_metrics_fn_with_batch_eval_metrics():
    # TrainingArguments(batch_eval_metrics=True) passes torch tensors batch by batch; the last call gets the result.
    fn = compute_metrics_fn(num_classes=3)
    logits = torch.tensor([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]], dtype=torch.bfloat16)
    labels = torch.tensor([1, 0, 0, 0])
    assert fn(EvalPrediction(predictions=logits[:3], label_ids=labels[:3]), compute_result=False) == {}
    out = fn(EvalPrediction(predictions=logits[3:], label_ids=labels[3:]), compute_result=True)
    assert out == {"top1": 0.75, "top5": 1.0, "mean_class_accuracy": pytest.approx((2 / 3 + 1.0) / 2)}
    # the next evaluation starts from scratch
    assert fn(EvalPrediction(predictions=logits[2:3], label_ids=labels[2:3]), compute_result=True)["top1"] == 0.0


@pytest.mark.parametrize(
    ("logits", "labels", "kwargs", "message"),
    [
        (np.zeros((4, 3)), np.zeros(3, dtype=int), {}, "labels must be"),
        (np.zeros((4, 3)), np.zeros((4, 1), dtype=int), {}, "labels must be"),
        (np.zeros((4, 3)), np.zeros(4, dtype=int), {"num_classes": 5}, "num_classes=5"),
        (np.zeros(4), np.zeros(4, dtype=int), {}, r"\[N, C\]"),
        (np.zeros((0, 3)), np.zeros(0, dtype=int), {}, "empty"),
        (np.zeros((2, 3)), np.array([0, 3]), {}, r"\[0, 3\)"),
        (np.zeros((2, 3)), np.array([0.0, 1.5]), {}, "integer"),
        (np.zeros((2, 3)), np.array([0, 1]), {"top_k": (0,)}, "top_k"),
    ],
)
def test_bad_input_raises_value_error(logits, labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(logits, labels, **kwargs)


def test_metric_module_directly():
    metric = load_metric()
    assert load_metric() is metric  # cached per process
    assert metric.name == "video_classification"
    assert METRIC_PATH.is_dir() and (METRIC_PATH / "video_classification.py").is_file()
    out = metric.compute(
        predictions=[[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4]], references=[1, 0, 0], top_k=[1, 2]
    )
    assert out["top1"] == pytest.approx(2 / 3)
    assert out["top2"] == 1.0  # sample 3: class 2 first, then class 0 wins the 0.3 tie against class 1
    assert out["mean_class_accuracy"] == 0.75
    # add_batch accumulates, compute empties the module again
    metric.add_batch(predictions=[[0.9, 0.1]], references=[0])
    metric.add_batch(predictions=[[0.9, 0.1]], references=[1])
    assert metric.compute(num_classes=2)["top1"] == 0.5
    assert metric.compute(predictions=[[0.2, 0.8]], references=[1])["num_samples"] == 1


def test_format_metrics_table():
    m = classification_metrics(onehot_logits([0, 0, 0, 0, 0, 0, 0, 2, 2], 4), np.array([0, 0, 0, 0, 0, 0, 1, 1, 2]))
    table = format_metrics_table(m, ["archery", "bowling", "juggling balls", "yoga"])
    assert table == textwrap.dedent(
        """\
        metric                 value
        top-1 accuracy        77.78%
        top-5 accuracy       100.00%
        mean class accuracy   66.67%
        samples                    9

        class             top-1  samples
        archery         100.00%        6
        bowling           0.00%        2
        juggling balls  100.00%        1
        yoga                n/a        0"""
    )
    assert format_metrics_table(m).splitlines()[-1] == "samples                    9"
    scalars = {"eval_top1": 0.5, "eval_top5": 0.875, "eval_mean_class_accuracy": 0.25, "eval_loss": 1.0}
    assert format_metrics_table(scalars).splitlines()[1:] == [
        "top-1 accuracy       50.00%",
        "top-5 accuracy       87.50%",
        "mean class accuracy  25.00%",
    ]
    with pytest.raises(ValueError, match="3 label names for 4 classes"):
        format_metrics_table(m, ["a", "b", "c"])


def test_plot_confusion_matrix(tmp_path):
    confusion = [[6, 0, 0, 0], [1, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    names = ["archery", "bowling", "juggling balls", "yoga"]
    a = plot_confusion_matrix(confusion, names, tmp_path / "a.png")
    b = plot_confusion_matrix(confusion, names, tmp_path / "b.png")
    assert a == tmp_path / "a.png" and png_size(a) == png_size(b)
    assert a.read_bytes() == b.read_bytes()  # deterministic: no date or software version in the file
    assert 5_000 < a.stat().st_size < 500_000
    raw = plot_confusion_matrix(confusion, names, tmp_path / "raw.png", normalize=False, title="counts")
    assert raw.read_bytes() != a.read_bytes()
    big = plot_confusion_matrix(np.eye(40, dtype=int).tolist(), [f"class {i}" for i in range(40)], tmp_path / "c.png")
    assert png_size(big)[0] > 2 * png_size(a)[0]  # the figure grows with the number of classes
    with pytest.raises(ValueError, match="3 label names"):
        plot_confusion_matrix(confusion, names[:3], tmp_path / "d.png")


LOG_HISTORY = [
    {"loss": 5.91, "grad_norm": 3.2, "learning_rate": 1e-4, "epoch": 0.25, "step": 10},
    {"loss": 4.80, "grad_norm": 2.9, "learning_rate": 2e-4, "epoch": 0.5, "step": 20},
    {"eval_loss": 4.51, "eval_top1": 0.12, "eval_top5": 0.31, "eval_mean_class_accuracy": 0.10,
     "eval_runtime": 12.3, "eval_samples_per_second": 40.1, "eval_steps_per_second": 5.0, "epoch": 0.5, "step": 20},
    {"loss": 3.95, "grad_norm": 2.1, "learning_rate": 1.5e-4, "epoch": 0.75, "step": 30},
    {"loss": 3.20, "grad_norm": 1.7, "learning_rate": 1e-4, "epoch": 1.0, "step": 40},
    {"eval_loss": 3.10, "eval_top1": 0.41, "eval_top5": 0.72, "eval_mean_class_accuracy": 0.38,
     "eval_runtime": 12.1, "eval_samples_per_second": 40.8, "eval_steps_per_second": 5.1, "epoch": 1.0, "step": 40},
    {"train_runtime": 301.2, "train_samples_per_second": 10.6, "train_steps_per_second": 0.13, "total_flos": 1e15,
     "train_loss": 4.46, "epoch": 1.0, "step": 40},
]


def test_plot_training_curve(tmp_path):
    both = plot_training_curve(LOG_HISTORY, tmp_path / "curve.png", title="videomae-base, 6 of 12 blocks")
    assert both.read_bytes() == plot_training_curve(LOG_HISTORY, tmp_path / "again.png",
                                                    title="videomae-base, 6 of 12 blocks").read_bytes()
    assert 5_000 < both.stat().st_size < 500_000
    loss_only = plot_training_curve([e for e in LOG_HISTORY if "eval_top1" not in e], tmp_path / "loss.png")
    assert png_size(both)[0] == 2 * png_size(loss_only)[0]  # a second panel for eval top-1
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_training_curve([], tmp_path / "empty.png")
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_training_curve(LOG_HISTORY[-1:], tmp_path / "summary_only.png")
    assert not (tmp_path / "empty.png").exists()


# Runs in a fresh interpreter whose evaluate config (HF_HOME, offline flags) comes from the test's environment. It
# imports evaluate once, then forks `workers` children that are released together and load the metric at the same
# moment from the shared, still empty module cache (the race two `accelerate launch` processes would run into);
# forking spares each child the ~9 s import of evaluate, which pulls in transformers.pipelines. Then the parent
# loads it from the populated cache. Every process records its attempts to open a network connection.
LOAD_SCRIPT = """
import json, os, sys, traceback
import evaluate
import numpy as np
from gardener_hf.training.metrics import METRIC_PATH, classification_metrics, load_metric

def load_and_report(path):
    attempts = []
    sys.addaudithook(lambda event, args: attempts.append(event) if event in ("socket.connect", "socket.getaddrinfo")
                     else None)
    metric = load_metric()
    again = evaluate.load(str(METRIC_PATH))  # a second, uncached load in the same process
    m = classification_metrics(np.array([[0.2, 0.8], [0.6, 0.4], [0.9, 0.1]]), np.array([1, 1, 0]))
    with open(path, "w") as f:
        json.dump({"same": load_metric() is metric, "module": sys.modules[type(metric).__module__].__file__,
                   "again": sys.modules[type(again).__module__].__file__, "top1": m["top1"], "network": attempts}, f)

out, workers = sys.argv[1], int(sys.argv[2])
gate_read, gate_write = os.pipe()
children = []
for i in range(workers):
    pid = os.fork()
    if pid == 0:
        os.close(gate_write)
        os.read(gate_read, 1)  # blocks until the parent closes the gate
        try:
            load_and_report(os.path.join(out, f"worker{i}.json"))
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    children.append(pid)
os.close(gate_read)
os.close(gate_write)  # every child sees EOF at once
failed = [pid for pid in children if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0]
load_and_report(os.path.join(out, "parent.json"))
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow  # ~10 s: a fresh interpreter importing evaluate
def test_metric_loads_offline_and_concurrently_from_a_fresh_cache(tmp_path):
    hf_home, out = tmp_path / "hf", tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE", "HF_DATASETS_OFFLINE", "HF_MODULES_CACHE",
                        "HF_METRICS_CACHE", "HF_EVALUATE_CACHE")}
    env["HF_HOME"] = str(hf_home)
    result = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(out), "2"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    copies = list((hf_home / "modules" / "evaluate_modules" / "metrics" / "video_classification").glob("*/*.py"))
    copies = [p for p in copies if p.name == "video_classification.py"]
    assert len(copies) == 1  # one copy, in a folder named by the hash of the script, shared by every process
    assert copies[0].read_bytes() == (METRIC_PATH / "video_classification.py").read_bytes()
    reports = {p.name: json.loads(p.read_text()) for p in out.iterdir()}
    assert sorted(reports) == ["parent.json", "worker0.json", "worker1.json"]
    for report in reports.values():
        assert report == {"same": True, "module": str(copies[0]), "again": str(copies[0]),
                          "top1": pytest.approx(2 / 3), "network": []}
