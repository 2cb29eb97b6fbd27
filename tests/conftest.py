"""Tiny, offline models shared by the tests. Nothing here touches the network."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from transformers import VideoMAEConfig, VideoMAEImageProcessor, ViTConfig, ViTImageProcessor, ViTMAEConfig

REPO = Path(__file__).resolve().parents[1]
NUM_BLOCKS = 6
# Finetune options for quick runs. The embedded default takes 16 frames of 32x32; 16-frame videos at stride 1 fill it.
FAST = ["--frame-stride", "1", "--per-device-train-batch-size", "4", "--per-device-eval-batch-size", "6",
        "--learning-rate", "1e-3", "--logging-steps", "1", "--dataloader-num-workers", "0", "--disable-tqdm", "true",
        "--save-strategy", "steps"]


def videomae_config(**kw) -> VideoMAEConfig:
    args = dict(
        image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=NUM_BLOCKS,
        num_attention_heads=2, intermediate_size=64, decoder_num_hidden_layers=2, decoder_hidden_size=16,
        decoder_num_attention_heads=2, decoder_intermediate_size=32, num_labels=3,
    )
    args.update(kw)
    return VideoMAEConfig(**args)


def vit_kwargs(**kw) -> dict:
    args = dict(image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=NUM_BLOCKS, num_attention_heads=2,
                intermediate_size=64)
    args.update(kw)
    return args


def _tiny_image(**kw) -> dict:
    """Shared sizes of the tiny image models (6 blocks, 32x32 inputs)."""
    return {**vit_kwargs(), "num_labels": 3, **kw}


def tiny_config(name: str):
    """The tiny config behind `make_model(name)`; a `+variant` suffix selects a gated MLP etc."""
    import transformers as T

    cls, _, variant = name.partition("+")
    if cls.startswith("VideoMAE"):
        return videomae_config()
    if cls.startswith("ViTMAE"):
        return ViTMAEConfig(**vit_kwargs(decoder_num_hidden_layers=1, decoder_hidden_size=16,
                                         decoder_num_attention_heads=2, decoder_intermediate_size=32))
    if cls.startswith("ViTMSN"):
        return T.ViTMSNConfig(**_tiny_image())
    if cls.startswith("ViT"):
        return ViTConfig(**vit_kwargs(num_labels=3))
    if cls.startswith("DeiT"):
        return T.DeiTConfig(**_tiny_image(encoder_stride=16))
    if cls.startswith("IJepa"):
        return T.IJepaConfig(**_tiny_image())
    if cls.startswith("Beit"):  # per-block relative position bias and layer scale, drop path 0.1 by default
        return T.BeitConfig(**_tiny_image(use_relative_position_bias=True, vocab_size=64, use_mask_token=True))
    if cls.startswith("Data2VecVision"):
        return T.Data2VecVisionConfig(**_tiny_image(use_relative_position_bias=True))
    dino = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=NUM_BLOCKS, num_attention_heads=2,
                num_labels=3, layerscale_value=0.5)
    if cls.startswith("Dinov2WithRegisters"):
        return T.Dinov2WithRegistersConfig(**dino, mlp_ratio=2, num_register_tokens=2)
    if cls.startswith("Dinov2"):
        return T.Dinov2Config(**dino, mlp_ratio=2, use_swiglu_ffn=variant == "swiglu")
    if cls.startswith("DINOv3ViT"):
        return T.DINOv3ViTConfig(**dino, intermediate_size=64, num_register_tokens=2, use_gated_mlp=variant == "gated")
    if cls.startswith("VJEPA2"):
        return T.VJEPA2Config(crop_size=32, patch_size=16, frames_per_clip=4, tubelet_size=2, hidden_size=32,
                              num_attention_heads=2, mlp_ratio=2.0, num_hidden_layers=NUM_BLOCKS, drop_path_rate=0.1,
                              pred_hidden_size=16, pred_num_attention_heads=2, pred_num_hidden_layers=2,
                              pred_num_mask_tokens=4, num_pooler_layers=1, num_labels=3)
    raise KeyError(name)


def make_model(name: str, seed: int = 0) -> torch.nn.Module:
    """A tiny randomly initialised model of class `name` (`Class` or `Class+variant`), block weights made distinct.

    Each block's matrices are rescaled and given heavier or lighter tails so that the scorers see
    clearly different blocks (a plain init makes every block statistically identical).
    """
    import transformers

    torch.manual_seed(seed)
    model = getattr(transformers, name.partition("+")[0])(tiny_config(name))
    from gardener_hf.arch import block_matrix_parts, get_blocks

    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for i, block in enumerate(get_blocks(model)):
            for parts in block_matrix_parts(model, block).values():
                for w in parts:
                    noise = torch.randn(w.shape, generator=g)
                    w.copy_(0.02 * (1 + 0.1 * i) * noise * (1 + 0.3 * i * noise.abs()))
    return model.eval()


def make_inputs(model: torch.nn.Module, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    c = model.config
    if c.model_type == "videomae":
        x = {"pixel_values": torch.randn(2, c.num_frames, 3, c.image_size, c.image_size, generator=g)}
        if type(model).__name__ == "VideoMAEForPreTraining":
            n = (c.num_frames // c.tubelet_size) * (c.image_size // c.patch_size) ** 2
            mask = torch.zeros(2, n, dtype=torch.bool)
            mask[:, : n // 2] = True
            x["bool_masked_pos"] = mask
        return x
    if c.model_type == "vjepa2":
        return {"pixel_values_videos": torch.randn(2, c.frames_per_clip, 3, c.crop_size, c.crop_size, generator=g)}
    x = {"pixel_values": torch.randn(2, 3, c.image_size, c.image_size, generator=g)}
    if c.model_type == "vit_mae":
        n = (c.image_size // c.patch_size) ** 2
        x["noise"] = torch.rand(2, n, generator=g)
    if type(model).__name__.endswith("MaskedImageModeling"):
        n = (c.image_size // c.patch_size) ** 2
        x["bool_masked_pos"] = torch.arange(n).repeat(2, 1) % 2 == 0
    return x


def main_output(out) -> torch.Tensor:
    for name in ("logits", "reconstruction", "last_hidden_state"):
        value = getattr(out, name, None)
        if value is not None:
            return value
    raise AssertionError("no output tensor")


#: the classes of the original three model types (VideoMAE, ViTMAE, ViT)
CORE_CLASSES = [
    "VideoMAEForVideoClassification",
    "VideoMAEModel",
    "VideoMAEForPreTraining",
    "ViTMAEForPreTraining",
    "ViTMAEModel",
    "ViTForImageClassification",
    "ViTModel",
]
#: the masked-SSL family added since (a `+variant` names a config variant of the class before it)
FAMILY_CLASSES = [
    "Dinov2Model",
    "Dinov2Model+swiglu",
    "Dinov2ForImageClassification",
    "Dinov2WithRegistersModel",
    "Dinov2WithRegistersForImageClassification",
    "DINOv3ViTModel",
    "DINOv3ViTModel+gated",
    "BeitModel",
    "BeitForImageClassification",
    "BeitForMaskedImageModeling",
    "Data2VecVisionModel",
    "Data2VecVisionForImageClassification",
    "IJepaModel",
    "IJepaForImageClassification",
    "VJEPA2Model",
    "VJEPA2ForVideoClassification",
    "ViTMSNModel",
    "ViTMSNForImageClassification",
    "DeiTModel",
    "DeiTForImageClassification",
    "DeiTForImageClassificationWithTeacher",
    "DeiTForMaskedImageModeling",
]
ALL_CLASSES = CORE_CLASSES + FAMILY_CLASSES


def save_with_processor(model: torch.nn.Module, path: Path) -> Path:
    model.save_pretrained(path)
    c = model.config
    if c.model_type == "videomae":
        VideoMAEImageProcessor(size={"shortest_edge": c.image_size},
                               crop_size={"height": c.image_size, "width": c.image_size}).save_pretrained(path)
    elif hasattr(c, "image_size"):  # V-JEPA 2's video processor needs torchvision: its tests go without one
        ViTImageProcessor(size={"height": c.image_size, "width": c.image_size}).save_pretrained(path)
    return path


@pytest.fixture
def tiny_videomae_dir(tmp_path) -> Path:
    return save_with_processor(make_model("VideoMAEForVideoClassification"), tmp_path / "tiny-videomae")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """Generated motion-direction videos (16 frames, 32x32 mp4): 3 per class to train, 2 per class to evaluate."""
    from gardener_hf.research.synthetic import make_motion_dataset

    root = tmp_path_factory.mktemp("videos")
    return {
        "train": make_motion_dataset(root / "train", videos_per_class=3, num_frames=16, size=32, seed=0),
        "eval": make_motion_dataset(root / "eval", videos_per_class=2, num_frames=16, size=32, seed=1),
    }


from fake_hub import fake_hub  # noqa: E402,F401  (fixture: a loopback Hub endpoint)
