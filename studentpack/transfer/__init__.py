"""Task-agnostic transfer losses (Udagawa et al., EMNLP 2023 Industry): OD, HS and MHA.

Every transfer is an `nn.Module` with one signature, `forward(student: Features, teacher: Features)
-> dict[str, Tensor]` of named loss terms, and declares which features it needs from each model.
"""

from studentpack.transfer.base import Transfer
from studentpack.transfer.layer_map import LayerMap

__all__ = ["LayerMap", "Transfer"]
