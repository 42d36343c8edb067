"""The pipeline's progress line: a unit's place in the plan, even when the plan guessed its name."""

from __future__ import annotations

from studentpack.bench.stages import Clock


def test_a_renamed_unit_keeps_its_place_and_estimate() -> None:
    said: list[str] = []
    clock = Clock({"export:hs": 10.0, "loadtest:hs-int8-dynamic": 20.0, "report": 5.0}, said.append)
    clock.rename("loadtest:hs-int8-dynamic", "loadtest:hs-openvino-int8")  # the INT8 variant chosen after export
    clock.begin("loadtest:hs-openvino-int8", "load-test hs-openvino-int8")
    assert said[-1].startswith("[2/3] load-test hs-openvino-int8")
    assert list(clock.estimates) == ["export:hs", "loadtest:hs-openvino-int8", "report"]
    assert clock.estimates["loadtest:hs-openvino-int8"] == 20.0


def test_an_unplanned_unit_is_shown_without_a_place() -> None:
    said: list[str] = []
    clock = Clock({"report": 5.0}, said.append)
    clock.rename("missing", "other")  # nothing to rename: the plan is left as it was
    clock.begin("other", "something unplanned")
    assert said[-1].startswith("[0/1] something unplanned") and list(clock.estimates) == ["report"]
