# ordercast: one image for `serve`, `migrate` and the CLI. Slim, non-root, with a health check.
# Installs the same pinned dependencies as CI (requirements/run.lock, made for Python 3.11).
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements/run.lock ./requirements/run.lock
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements/run.lock
COPY pyproject.toml README.md ./
COPY ordercast ./ordercast
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    ORDERCAST_HOST=0.0.0.0 ORDERCAST_PORT=8000 \
    ORDERCAST_DATABASE_URL=sqlite:///data/ordercast.db
RUN useradd --create-home --uid 10001 ordercast && mkdir /data && chown ordercast /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/*.whl && rm -rf /wheels
USER ordercast
WORKDIR /home/ordercast
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["ordercast", "serve"]
