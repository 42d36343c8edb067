"""`export_variants`: model directory -> gated ONNX variants under one output directory.

    <out>/<variant>/{model.onnx, tokenizer files, config.json, export.json}   accepted variants
    <out>/rejected/<variant>/{...same...}                                      failed a gate (figures inside)

The whole of <out> is built under a temporary name and renamed into place at the end; each
variant directory inside it is itself written with `atomic_dir`. A kill at any moment leaves no
directory under the final name (only a hidden `.<out>.tmp-PID`, removed by the next export).

Order of work: fp32 (parity vs PyTorch) -> fused (parity) -> int8-dynamic from the fp32 graph (or the
fused one with `int8_source="fused"`), int8-static and fp16 from the fp32 graph (accuracy vs the fp32
graph). How each variant is made, and from which graphs, is its module in `studentpack.export.variants`;
the export is planned in `options`, built and gated in `builder` and `gating`, recorded in `records`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from studentpack.export import presets
from studentpack.export.builder import Builder, VariantResult
from studentpack.export.options import ExportOptions, plan, triton_settings
from studentpack.export.temporaries import remove_stale_temporaries
from studentpack.ground.atomic import atomic_dir


def export_variants(opts: ExportOptions, log: Callable[[str], None] = print) -> list[VariantResult]:
    """Build, gate and write every requested variant; returns one result per variant."""
    started = time.perf_counter()
    p = plan(opts)
    remove_stale_temporaries(p.out)
    if p.triton is not None:
        remove_stale_temporaries(p.triton)
    with atomic_dir(p.out, overwrite=opts.overwrite) as tmp:
        results = Builder(opts, p, tmp, log).run()
        accepted = {r.variant: r.path for r in results if r.accepted and r.variant not in presets.OPENVINO_VARIANTS}
        for r in results:  # paths under their final names
            r.path = p.out / r.path.relative_to(tmp)
        if p.triton is not None and accepted:
            from studentpack.export.triton import write_repository

            settings = triton_settings(opts)
            names = write_repository(
                p.triton,
                accepted,
                prefix=p.source.name if p.source.origin != "local" else p.source.path.name,
                max_batch_size=opts.triton_max_batch,
                overwrite=opts.overwrite,
                settings=settings,
            )
            log(f"triton repository {p.triton}: {', '.join(f'{n} (text), {n}_ids' for n in names.values())}")
    log(f"export finished in {time.perf_counter() - started:.1f}s")
    return results
