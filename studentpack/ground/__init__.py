"""Ground: helpers every side may import (atomic writes, provenance, user errors, numerics, CPU facts,
ratios, the names that server, clients and exporters share).

Nothing here imports another part of studentpack.
"""
