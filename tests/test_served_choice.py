"""The pipeline serves, per model, the fastest variant that passed its gate on this machine.

The fixtures are speed blocks measured on two CPU classes (one text at a time, ms, 2 threads):
- AVX2 without VNNI: the 3-layer student's default export on a 2-core AMD EPYC (../shared/notes/cpus.md);
- AVX-512 + VNNI + BF16: the quick pipeline's 100-step HS student, export trial on a 2-core AMD EPYC (2026-12-02).
"""

from __future__ import annotations

from typing import Any

import pytest

from studentpack.bench.served_choice import fastest_accepted

AVX2_STUDENT = {"fp32": 5.0, "fused": 3.4, "int8-dynamic": 2.5, "openvino": 6.6, "openvino-int8": 5.1}
AVX512_VNNI_STUDENT = {"fp32": 2.938, "int8-dynamic": 1.381, "openvino-int8": 2.02}


def _records(text_ms: dict[str, float], rejected: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    return {name: {"status": "rejected" if name in rejected else "accepted", "speed": {"median_ms": {"text": ms}}}
            for name, ms in text_ms.items()}  # fmt: skip


@pytest.mark.parametrize(("times", "expected"), [(AVX2_STUDENT, "int8-dynamic"), (AVX512_VNNI_STUDENT, "int8-dynamic")])
def test_the_fastest_accepted_variant_is_served_whatever_its_precision(times: dict[str, float], expected: str) -> None:
    choice = fastest_accepted(_records(times))
    assert choice.variant == expected and choice.times_ms == times


def test_on_avx2_a_batch_invariant_pick_among_fp32_graphs_is_fused_not_openvino() -> None:
    """Without INT8 on the table (an AVX2 machine whose INT8 failed its gate), fused beats both fp32 runtimes."""
    choice = fastest_accepted(_records(AVX2_STUDENT, rejected=("int8-dynamic", "openvino-int8")))
    assert choice.variant == "fused" and "3.40 ms" in choice.why


def test_a_rejected_variant_is_never_served_however_fast() -> None:
    times = {"fp32": 5.0, "int8-dynamic": 0.1}
    assert fastest_accepted(_records(times, rejected=("int8-dynamic",))).variant == "fp32"


def test_no_trial_and_no_accepted_variant_are_said_plainly() -> None:
    assert fastest_accepted({"fp32": {"status": "accepted"}}).variant == "fp32"
    untimed = fastest_accepted({"fp32": {}, "fused": {}})
    assert untimed.variant == "fp32" and "no speed trial" in untimed.why
    assert fastest_accepted({"fp32": {"status": "rejected"}}).variant is None


@pytest.mark.parametrize(
    ("flags", "machine", "expected"),
    [
        (["avx2", "fma"], "x86_64", "AVX2"),
        (["avx2", "avx512f", "avx512_vnni", "avx512_bf16"], "x86_64", "AVX-512 + VNNI + BF16"),
        (["avx2", "avx512f", "avx512_vnni"], "x86_64", "AVX-512 + VNNI"),
        (["avx2", "avx_vnni"], "x86_64", "AVX2 + VNNI"),
        (["avx512f", "avx512_vnni", "amx_int8", "amx_bf16"], "x86_64", "AMX"),
        (["asimd", "asimddp"], "aarch64", "ARM64 + dot product"),
    ],
)
def test_the_cpu_class_named_beside_speed_figures(flags: list[str], machine: str, expected: str) -> None:
    from studentpack.ground.isa import cpu_class

    assert cpu_class(flags, machine) == expected
