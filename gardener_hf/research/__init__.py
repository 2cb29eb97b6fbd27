"""The paper's reproduction: synthetic videos, masked-video pretraining, and the block-importance study.

Modules: `synthetic` (moving shapes and moving handwritten digits), `pretrain` (masked-video
pretraining of the embedded default), `study` (scores, oracle, rank correlations, pruning sweep,
report). Nothing in the library's core depends on this room.
"""
