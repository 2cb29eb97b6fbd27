"""A pruned classifier works in `pipeline("video-classification")` after a plain reload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import av
import numpy as np
from conftest import make_model, save_with_processor

from gardener_hf import prune_model, score_model
from gardener_hf.checkpoint import copy_processor_files, load_model
from gardener_hf.surgery import save_pruned


def write_video(path, frames: int = 8, size: int = 32) -> None:
    """A square moving left to right, encoded as mp4 with PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for t in range(frames):
            img = np.zeros((size, size, 3), np.uint8)
            img[8:20, 2 + 2 * t : 14 + 2 * t] = (255, 200, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


PIPE = textwrap.dedent(
    """
    import json, sys
    from transformers import pipeline
    pipe = pipeline("video-classification", model=sys.argv[1])
    out = pipe(sys.argv[2], top_k=3, num_frames=4)
    print("REPORT " + json.dumps({"out": out, "modules": sorted(m for m in sys.modules if m.startswith("gardener"))}))
    """
)


def test_pipeline_after_reload(tmp_path):
    from transformers import pipeline

    source = save_with_processor(make_model("VideoMAEForVideoClassification"), tmp_path / "src")
    model = load_model(str(source))
    prune_model(model, score_model(model, progress=False), keep=3)
    out = save_pruned(model, tmp_path / "pruned")
    copy_processor_files(str(source), out)
    video = tmp_path / "clip.mp4"
    write_video(video)

    from transformers import VideoMAEImageProcessor

    in_memory = pipeline("video-classification", model=model, image_processor=VideoMAEImageProcessor.from_pretrained(out))
    want = in_memory(str(video), top_k=3, num_frames=4)
    result = subprocess.run([sys.executable, "-c", PIPE, str(out), str(video)], capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("REPORT ", 1)[1])
    assert report["modules"] == []
    assert report["out"] == want
    assert {d["label"] for d in want} == {"LABEL_0", "LABEL_1", "LABEL_2"}
