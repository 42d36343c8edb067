#!/usr/bin/env bash
# A real Triton server for the Triton tests and benchmarks, from PyPI only (no Docker, no NGC):
#   DEST/pytriton/   the unpacked nvidia-pytriton wheel: tritonserver, its Python backend and stubs
#   DEST/env/        a virtual environment for the Python backend: numpy<2, onnxruntime, tokenizers
# (numpy 2 garbles BYTES tensors in nvidia-pytriton 0.7's stubs; see ../shared/notes/triton.md).
#
#   benchmarks/triton_setup.sh            # DEST = .triton (gitignored)
#   pytest -m slow tests/test_triton_server.py
set -euo pipefail
DEST=${1:-.triton}
PYTHON=${PYTHON:-python3}
mkdir -p "$DEST"
if [ ! -x "$DEST/pytriton/tritonserver/bin/tritonserver" ] && [ ! -f "$DEST/pytriton/tritonserver/bin/tritonserver" ]; then
  "$PYTHON" -m pip download --no-deps --quiet "nvidia-pytriton==0.7.0" -d "$DEST/wheel"
  "$PYTHON" -m zipfile -e "$DEST"/wheel/nvidia_pytriton-*.whl "$DEST/unpacked"
  # the binaries find their vendored libraries (CUDA runtime stubs included) at ../nvidia_pytriton.libs
  rm -rf "$DEST/pytriton" "$DEST/nvidia_pytriton.libs"
  mv "$DEST/unpacked/pytriton" "$DEST/unpacked/nvidia_pytriton.libs" "$DEST/"
  rm -rf "$DEST/unpacked" "$DEST/wheel"
fi
# the Python backend looks for its stub beside itself; the wheel keeps one per Python version apart
VERSION=$("$PYTHON" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
SERVER="$DEST/pytriton/tritonserver"
cp "$SERVER/python_backend_stubs/$VERSION/triton_python_backend_stub" "$SERVER/backends/python/"
chmod +x "$SERVER/bin/tritonserver" "$SERVER/backends/python/triton_python_backend_stub"
if [ ! -x "$DEST/env/bin/python" ]; then
  "$PYTHON" -m venv "$DEST/env"
  "$DEST/env/bin/pip" install --quiet "numpy<2" onnxruntime tokenizers
fi
"$DEST/env/bin/python" -c "import numpy, onnxruntime, tokenizers; print('triton env:', numpy.__version__, onnxruntime.__version__, tokenizers.__version__)"
echo "tritonserver: $DEST/pytriton/tritonserver/bin/tritonserver"
