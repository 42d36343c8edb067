# studentpack serving image: `studentpack serve` on port 8000 with a health check. It serves exported
# graphs (model.onnx) and carries no torch and no transformers: the lean install, studentpack[serve].
#
#   docker build -t studentpack .                                  # CPU: onnxruntime
#   docker build -t studentpack:gpu --build-arg VARIANT=gpu .      # GPU: onnxruntime-gpu + CUDA/cuDNN wheels
#   docker run -p 8000:8000 -v "$PWD/runs/pipeline/mha-l3/onnx/int8-dynamic:/models/model:ro" \
#       -e STUDENTPACK_API_KEY=secret studentpack
#   docker run --gpus all -p 8000:8000 -v "$PWD/runs/gpu/mha-l3/onnx/fp16:/models/model:ro" \
#       studentpack:gpu /models/model --device cuda
#
# Arguments after the image name replace the default model list (NAME=PATH works as on the command
# line). Inside the container the server must listen on 0.0.0.0; set STUDENTPACK_API_KEY (or mount a
# key file and pass --api-key-file) before exposing the port beyond your machine. Serving a PyTorch
# directory or an OpenVINO variant needs a fuller install (studentpack[train] or [openvino]): build
# FROM this image and pip install the extra.

ARG VARIANT=cpu

FROM python:3.11-slim AS base
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
WORKDIR /opt/studentpack
COPY pyproject.toml README.md ./
COPY studentpack ./studentpack

FROM base AS cpu
RUN pip install ".[serve,fast]"

FROM base AS gpu
# onnxruntime-gpu with the nvidia-* CUDA and cuDNN wheels it preloads: no torch, no system CUDA toolkit
RUN pip install ".[serve-gpu,fast]"

FROM ${VARIANT} AS final
RUN useradd --create-home --uid 10001 studentpack && mkdir /models && chown studentpack /models
USER studentpack
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["studentpack", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["/models/model"]
