"""Criteria from a few unlabeled inputs: how much each block changes what flows through the encoder.

Gardener's entropy needs no data at all; these need a handful of unlabeled samples (see `calibration`) and
no labels, gradients or training. They join the same registry as the weight criteria (`scoring` registers `CRITERIA`), so
`score_model(model, "block-influence", calibration=...)`, `gardener score MODEL --criterion angular
--calibration clips/` and the pruning record work the same way.

* `block-influence` (ShortGPT's Block Influence): 1 - cos(x, f(x)) between a block's input and output hidden
  states, per token, averaged over tokens and samples. One forward pass.
* `angular` (Gromov et al.): arccos(cos(x, f(x))) / pi, averaged the same way. Per token it is a monotone
  function of BI, but the average weighs tokens differently: BI's 1 - cos is flat near cos = 1 and the
  angle is not, so a block that turns many tokens a little scores higher on `angular` than on BI, relative
  to one that turns a few tokens a lot. Gromov et al. measure it at the last token over n blocks; here it is
  per block over every token, as for BI. One forward pass.
* `removal-drift`: run the encoder with one block removed and measure how far its final hidden states (the
  last block's output, before the final LayerNorm) move from the full model's: 1 - cos per token, averaged.
  The full pass keeps each block's input, so removing block i only re-runs blocks i+1..L-1: L(L-1)/2 block
  calls on top of one pass, about (L+1)/2 passes in all.
* `reconstruction`: the increase of a pretraining checkpoint's own masked-reconstruction loss (decoder
  intact) when each block alone is removed, with masks fixed by the seed. The encoder part reuses the
  prefix as `removal-drift` does; the decoder then runs once per block.

Every criterion removes the block with the lowest score first. Hidden states are compared in float32; the
model runs in its own precision. On a pretraining checkpoint (VideoMAEForPreTraining, ViTMAEForPreTraining) the
encoder sees the tokens its fixed masks leave visible, as in pretraining, for every criterion; load the
encoder's class (`--model-class VideoMAEModel` with `push`, or `VideoMAEModel.from_pretrained`) to score on all
tokens.
Memory holds one batch of activations (each block's input for that batch), never all samples'.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .arch import get_blocks
from .calibration import Calibration, input_name
from .errors import GardenerError
from .scorer import Scorer

#: classes whose forward computes their own pretraining loss from pixels (and fixed masks)
RECONSTRUCTION_CLASSES = ("VideoMAEForPreTraining", "ViTMAEForPreTraining", "DeiTForMaskedImageModeling")
DEFAULT_BATCH_SIZE = 8


class CalibratedScorer(Scorer):
    """A criterion computed from the model's activations on calibration inputs (not from weights alone).

    Subclasses implement `score_activations(model, calibration, batch_size, progress)`, returning one score
    per block. `block_stat` refuses: the weights alone are not enough.
    """

    needs_calibration = True
    param_names = ("batch_size",)

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise GardenerError(f"batch_size={batch_size!r}: must be a positive integer")
        super().__init__()
        self.batch_size = batch_size

    def block_stat(self, matrices: Sequence[torch.Tensor]) -> Any:
        raise GardenerError(f"criterion {self.name!r} scores blocks from calibration inputs: pass --calibration "
                            "PATH (a folder of images or videos, a tensor file, or 'digits'), or calibration= in Python")

    def score_activations(self, model: nn.Module, calibration: Calibration, *, progress: bool = True) -> list[float]:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------ the machinery


def _hidden(output: Any) -> torch.Tensor:
    """The hidden states a block passes on (blocks return a tensor, or a tuple starting with it)."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _token_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity per token, `[...]`, of two `[..., D]` tensors, in float32.

    As `torch.nn.functional.cosine_similarity`: a zero vector has cosine 0 with anything, so a token a
    block writes from nothing (BEiT's [CLS] enters block 0 as zeros) counts as fully changed.
    """
    return nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).clamp(-1.0, 1.0)


class _Recorder:
    """Forward hooks on every block: each block's input, its call's other arguments, and its output."""

    def __init__(self, blocks: nn.ModuleList, keep_inputs: bool,
                 on_block: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None):
        self.blocks, self.keep_inputs, self.on_block = blocks, keep_inputs, on_block
        self.calls: list[tuple[tuple, dict]] = [((), {})] * len(blocks)
        self.inputs: list[torch.Tensor | None] = [None] * len(blocks)
        self.last_output: Any = None
        self.recording = True  # off while `run_from` re-runs blocks, so the full pass's records stay
        self._handles: list[Any] = []

    def __enter__(self) -> _Recorder:  # noqa: PYI034
        for i, block in enumerate(self.blocks):
            self._handles.append(block.register_forward_pre_hook(self._pre(i), with_kwargs=True))
            self._handles.append(block.register_forward_hook(self._post(i), with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()

    def _pre(self, i: int):
        def hook(module, args, kwargs):
            if not self.recording:
                return
            self.calls[i] = (args[1:], dict(kwargs))
            if self.keep_inputs:
                self.inputs[i] = args[0]
        return hook

    def _post(self, i: int):
        def hook(module, args, kwargs, output):
            if not self.recording:
                return
            if self.on_block is not None:
                self.on_block(i, args[0], _hidden(output))
            if i == len(self.blocks) - 1:
                self.last_output = output
        return hook

    def run_from(self, start: int, hidden: torch.Tensor) -> torch.Tensor:
        """Blocks `start`.. on `hidden`, called as the full pass called them (same extra arguments)."""
        self.recording = False
        try:
            for j in range(start, len(self.blocks)):
                args, kwargs = self.calls[j]
                hidden = _hidden(self.blocks[j](hidden, *args, **kwargs))
        finally:
            self.recording = True
        return hidden


def _forward_kwargs(model: nn.Module, pixels: torch.Tensor, masks: dict[str, torch.Tensor] | None = None) -> dict:
    """The model's inputs on its device and in its dtype (a float16 / bfloat16 checkpoint stays in its precision)."""
    param = next(model.parameters())
    return {input_name(model): pixels.to(device=param.device, dtype=param.dtype), **(masks or {})}


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batches(model: nn.Module, calibration: Calibration, batch_size: int, desc: str, progress: bool):
    """`(pixels, masks)` per batch; masks are drawn once for all samples, so they do not depend on the batch size."""
    masks = _fixed_masks(model, calibration.pixel_values, calibration.seed)
    starts = range(0, calibration.num_samples, batch_size)
    for start in tqdm(starts, total=len(starts), desc=desc, unit="batch", disable=not progress):
        yield (calibration.pixel_values[start:start + batch_size],
               {k: v[start:start + batch_size] for k, v in masks.items()})


@contextmanager
def _eval(model: nn.Module):
    """Eval mode and no gradients inside; afterwards every submodule's own mode is back."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes.items():
            module.training = training


# ------------------------------------------------------------------------------------------------ criteria


class _TokenwiseScorer(CalibratedScorer):
    """Mean over tokens and samples of a per-token function of cos(block input, block output)."""

    prune_first = "lowest"

    def per_token(self, cos: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_activations(self, model: nn.Module, calibration: Calibration, *, progress: bool = True) -> list[float]:
        blocks = get_blocks(model)
        total = torch.zeros(len(blocks), dtype=torch.float64)
        count = torch.zeros(len(blocks), dtype=torch.float64)

        def on_block(i: int, x: torch.Tensor, y: torch.Tensor) -> None:
            values = self.per_token(_token_cosine(x, y))
            total[i] += values.double().sum().cpu()
            count[i] += values.numel()

        with _eval(model), _Recorder(blocks, keep_inputs=False, on_block=on_block):
            for pixels, masks in _batches(model, calibration, self.batch_size, f"scoring ({self.criterion})", progress):
                model(**_forward_kwargs(model, pixels, masks))
        return (total / count).tolist()


class BlockInfluenceScorer(_TokenwiseScorer):
    summary = "block influence: 1 - cos(block input, output), mean over tokens of calibration inputs (ShortGPT)"

    def per_token(self, cos: torch.Tensor) -> torch.Tensor:
        return 1.0 - cos


class AngularScorer(_TokenwiseScorer):
    summary = "angular distance arccos(cos(block input, output))/pi, mean over tokens of calibration inputs (Gromov et al.)"

    def per_token(self, cos: torch.Tensor) -> torch.Tensor:
        return torch.arccos(cos) / math.pi


class RemovalDriftScorer(CalibratedScorer):
    """1 - cos between the final hidden states with and without each block, mean over tokens and samples."""

    prune_first = "lowest"
    summary = "drift of the encoder's final hidden states when that block alone is removed (1 - cos, calibration inputs)"

    def score_activations(self, model: nn.Module, calibration: Calibration, *, progress: bool = True) -> list[float]:
        blocks = get_blocks(model)
        total = torch.zeros(len(blocks), dtype=torch.float64)
        count = 0
        with _eval(model), _Recorder(blocks, keep_inputs=True) as rec:
            for pixels, masks in _batches(model, calibration, self.batch_size, f"scoring ({self.criterion})", progress):
                model(**_forward_kwargs(model, pixels, masks))
                full = _hidden(rec.last_output)
                for i in range(len(blocks)):
                    without = rec.run_from(i + 1, rec.inputs[i])
                    total[i] += (1.0 - _token_cosine(without, full)).double().sum().cpu()
                count += full.shape[:-1].numel()
                rec.inputs = [None] * len(blocks)
        return (total / count).tolist()


class _Inject(nn.Module):
    """Stands in for the whole block list: returns precomputed final hidden states in the last block's format."""

    def __init__(self, hidden: torch.Tensor, like: Any):
        super().__init__()
        self.hidden, self.like = hidden, like

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self.like, tuple):
            return (self.hidden, *self.like[1:])
        return self.hidden


@contextmanager
def _blocks_replaced(model: nn.Module, modules: list[nn.Module]):
    from .arch import block_list_path

    parent, attr = block_list_path(model)
    original = getattr(parent, attr)
    setattr(parent, attr, nn.ModuleList(modules))
    try:
        yield
    finally:
        setattr(parent, attr, original)


def _fixed_masks(model: nn.Module, pixels: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """The masks a pretraining head needs, drawn from `seed` (the same for every pass over a batch)."""
    name = type(model).__name__
    config = model.config
    g = torch.Generator().manual_seed(seed)
    batch = pixels.shape[0]
    device = _device(model)
    if name == "VideoMAEForPreTraining":  # tube masking at 90%, as VideoMAE pretrains
        per_frame = (config.image_size // config.patch_size) ** 2
        tubes = config.num_frames // config.tubelet_size
        masked = min(round(0.9 * per_frame), per_frame - 1)  # at least one visible patch per frame
        order = torch.rand(batch, per_frame, generator=g).argsort(1)
        frame_mask = torch.zeros(batch, per_frame, dtype=torch.bool)
        frame_mask.scatter_(1, order[:, :masked], True)
        return {"bool_masked_pos": frame_mask.repeat(1, tubes).to(device)}
    if name == "ViTMAEForPreTraining":  # the noise ViTMAE's random masking sorts
        patches = (config.image_size // config.patch_size) ** 2
        return {"noise": torch.rand(batch, patches, generator=g).to(device)}
    if name == "DeiTForMaskedImageModeling":  # SimMIM-style 60% random patches
        patches = (config.image_size // config.patch_size) ** 2
        order = torch.rand(batch, patches, generator=g).argsort(1)  # exactly 60% of the patches in each image
        mask = torch.zeros(batch, patches, dtype=torch.bool)
        mask.scatter_(1, order[:, : round(0.6 * patches)], True)
        return {"bool_masked_pos": mask.to(device)}
    return {}


class ReconstructionScorer(CalibratedScorer):
    """Increase of the model's own masked-reconstruction loss when each block alone is removed."""

    prune_first = "lowest"
    summary = "increase of the model's own masked-reconstruction loss without that block (pretraining checkpoints)"

    def score_activations(self, model: nn.Module, calibration: Calibration, *, progress: bool = True) -> list[float]:
        name = type(model).__name__
        if name not in RECONSTRUCTION_CLASSES:
            why = (" (BEiT's loss needs the visual tokens of its DALL-E tokenizer as labels, which transformers "
                   "does not ship)" if name.startswith("Beit") else "")
            raise GardenerError(
                f"criterion 'reconstruction' needs a pretraining checkpoint with its decoder ({', '.join(RECONSTRUCTION_CLASSES)}); "
                f"this is a {name}{why}: load the pretraining checkpoint (--model-class) or use block-influence / removal-drift"
            )
        blocks = get_blocks(model)
        total = torch.zeros(len(blocks), dtype=torch.float64)
        samples = 0
        with _eval(model), _Recorder(blocks, keep_inputs=True) as rec:
            for pixels, masks in _batches(model, calibration, self.batch_size, f"scoring ({self.criterion})", progress):
                kwargs = _forward_kwargs(model, pixels, masks)
                full_loss = float(model(**kwargs).loss)
                like, inputs = rec.last_output, list(rec.inputs)
                for i in range(len(blocks)):
                    hidden = rec.run_from(i + 1, inputs[i])
                    with _blocks_replaced(model, [_Inject(hidden, like)]):  # embeddings, then straight to the decoder
                        loss = float(model(**kwargs).loss)
                    total[i] += (loss - full_loss) * len(pixels)
                samples += len(pixels)
                rec.inputs = [None] * len(blocks)
        return (total / samples).tolist()


#: the calibrated criteria by registry name (`scoring` registers them)
CRITERIA: dict[str, type[CalibratedScorer]] = {
    "block-influence": BlockInfluenceScorer,
    "angular": AngularScorer,
    "removal-drift": RemovalDriftScorer,
    "reconstruction": ReconstructionScorer,
}
