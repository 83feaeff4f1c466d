# oiforge serve: the HTTP classifier service (CPU, ONNX Runtime; no torch in the image).
#
#   oiforge export runs/cats --out model/          # model.onnx, labels.json, MODEL.md
#   docker build -t oiforge-serve .
#   docker run --rm -p 8000:8000 -v "$PWD/model:/model:ro" oiforge-serve
#   curl -F image=@cat.jpg http://127.0.0.1:8000/v1/predict
#
# Options are `oiforge serve` flags after the image name (e.g. `--max-images 8`); set
# OIFORGE_API_KEY to require an API key. See docs/serving.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install ".[serve]" \
    && useradd --system --uid 10001 --no-create-home oiforge

USER oiforge
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
# uvicorn drains in-flight requests on SIGTERM (docker stop) before exiting.
STOPSIGNAL SIGTERM
ENTRYPOINT ["oiforge", "serve", "/model", "--host", "0.0.0.0", "--port", "8000"]
