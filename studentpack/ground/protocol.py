"""Names the server, its clients and the exporters must spell alike; plain strings, so any side may import
them (the exporter without the HTTP client, the client without the server)."""

from __future__ import annotations

API_KEY_ENV = "STUDENTPACK_API_KEY"  # the server's API key: `studentpack serve` and every client read it

# parameters `studentpack export --triton` writes into config.pbtxt; the client reads them back from the
# model's metadata (the longest input it accepts, and the hash of the variant it was built from)
MAX_LENGTH_PARAMETER = "max_length"
SOURCE_SHA_PARAMETER = "source_sha256"
