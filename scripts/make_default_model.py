#!/usr/bin/env python
"""Build the tiny embedded VideoMAE checkpoint (gardener_hf/default_model/) from a seed.

It is a randomly initialised `VideoMAEForVideoClassification` with 12 blocks (so the paper's pruning
ratios carry over), hidden size 64, 8 frames of 64x64: about 2.4 MB in float32. It exists so the
README's commands run offline; its block scores reflect initialisation, not training. Saved by
`save_pretrained`, i.e. in the Hub's legacy key form (`q_bias` / `v_bias`).

    python scripts/make_default_model.py [--output-dir gardener_hf/default_model] [--seed 0]
"""

import argparse
from pathlib import Path

import torch
from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEImageProcessor

LABELS = ["left", "right", "up", "down"]


def build(seed: int) -> VideoMAEForVideoClassification:
    torch.manual_seed(seed)
    config = VideoMAEConfig(
        image_size=64,
        patch_size=16,
        num_channels=3,
        num_frames=8,
        tubelet_size=2,
        hidden_size=64,
        num_hidden_layers=12,
        num_attention_heads=4,
        intermediate_size=256,
        use_mean_pooling=True,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    return VideoMAEForVideoClassification(config).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(Path(__file__).resolve().parents[1] / "gardener_hf" / "default_model"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = build(args.seed)
    model.save_pretrained(args.output_dir)
    processor = VideoMAEImageProcessor(
        size={"shortest_edge": 64},
        crop_size={"height": 64, "width": 64},
        do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406],  # ImageNet statistics, as VideoMAE
        image_std=[0.229, 0.224, 0.225],
    )
    processor.save_pretrained(args.output_dir)
    print(f"wrote {args.output_dir}")


if __name__ == "__main__":
    main()
