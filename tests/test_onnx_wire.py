"""The wire-format reader finds the same external-data locations as the onnx package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from studentpack.engines.onnx_wire import WireError, external_locations


def _model(sizes: dict[str, int]) -> onnx.ModelProto:
    """A graph that adds its initializers to its input: y = x + w_a + w_b + ..."""
    inits = [numpy_helper.from_array(np.arange(n, dtype=np.float32), name) for name, n in sizes.items()]
    nodes, previous = [], "x"
    for i, name in enumerate(sizes):
        nodes.append(helper.make_node("Add", [previous, name], [f"s{i}"]))
        previous = f"s{i}"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                              [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [None])], inits)  # fmt: skip
    return helper.make_model(graph)


def _onnx_view(path: Path) -> list[tuple[str, str]]:
    graph = onnx.load(str(path), load_external_data=False).graph
    return [(t.name, e.value) for t in graph.initializer for e in t.external_data if e.key == "location"]


def test_external_locations_match_onnx(tmp_path: Path) -> None:
    model = _model({"w_small": 4, "w_big": 5000, "wé": 3000})
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=False,
                    size_threshold=1024)  # fmt: skip
    found = external_locations(path)
    assert found == _onnx_view(path)
    assert {name for name, _ in found} == {"w_big", "wé"}  # the small one stays inside the file


def test_a_graph_without_external_data_has_no_locations(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    onnx.save_model(_model({"w": 5000}), str(path))
    assert external_locations(path) == [] == _onnx_view(path)


@pytest.mark.parametrize("cut", [1, 7, 40])
def test_truncated_and_empty_files_are_refused(tmp_path: Path, cut: int) -> None:
    whole = tmp_path / "model.onnx"
    onnx.save_model(_model({"w": 50}), str(whole))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(whole.read_bytes()[:-cut])
    with pytest.raises(WireError):
        external_locations(broken)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(WireError):
        external_locations(tmp_path / "empty.onnx")
