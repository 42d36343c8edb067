"""Ground: helpers every side may import (atomic writes, provenance, user errors, numerics, CPU facts).

Nothing here imports another part of studentpack.
"""
