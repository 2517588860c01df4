# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build --target operator -t kslim-operator .   (Kopf operator; no Paddle)
#   docker build --target runner   -t kslim-runner   .   (PaddlePaddle GPU 2.6.2, PaddleSlim 2.6.0, ppdet 2.6.0)
# Both install with requirements/constraints.txt, the same lock CI installs, so CI proves these steps.

# ---------------------------------------------------------------------------- source
# What both images install, copied once.
FROM scratch AS source
COPY pyproject.toml README.md /src/
COPY requirements/constraints.txt requirements/runner-nodeps.txt /src/requirements/
COPY api /src/api
COPY operator /src/operator
COPY runner /src/runner

# ---------------------------------------------------------------------------- operator
FROM python:3.11.11-slim-bookworm AS operator
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY --from=source /src ./
RUN pip install -c requirements/constraints.txt ".[operator]" \
 && useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin kslim
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["python", "-m", "kslim_operator"]

# ---------------------------------------------------------------------------- runner
# paddlepaddle-gpu 2.6.2 from the package index is built for CUDA 11.8 + cuDNN 8 and ships no CUDA
# libraries: the base image provides them. Its kernels cover sm_61-sm_86 (no Hopper); the runner
# checks the device at start and exits 4 with a clear reason on anything else.
FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04 AS runner
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/kslim PATH=/opt/kslim/bin:$PATH \
    KSLIM_PVC_ROOT=/mnt/pvc MPLCONFIGDIR=/tmp/matplotlib
# opencv-python (pulled by paddleslim) needs libGL and glib at import time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11=3.11.* python3.11-venv=3.11.* \
      libgl1=1.4.* libglib2.0-0=2.72.* libgomp1=12.* \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/kslim
WORKDIR /app
COPY --from=source /src ./
# PaddleDetection (paddledet) declares broken dependencies (numpy<1.24, sklearn==0.0): --no-deps, after
# the extra that brings what it really imports.
RUN pip install -c requirements/constraints.txt ".[runner,gpu]" \
 && pip install --no-deps -c requirements/constraints.txt -r requirements/runner-nodeps.txt \
 && useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin kslim
USER 65532:65532
ENTRYPOINT ["kslim", "run"]
CMD ["/etc/kslim/job.yaml", "--output", "/output"]
