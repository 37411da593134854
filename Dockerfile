# One image for every shadowlab process (ingest, replayer, simulator, dashboard, migrations).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# Exactly the versions in uv.lock (what CI tested), with their hashes; then the project without re-resolving.
COPY pyproject.toml uv.lock README.md ./
RUN pip install uv==0.13.9 \
    && uv export --frozen --no-dev --no-emit-project --format requirements-txt -o /tmp/requirements.txt \
    && pip install --require-hashes -r /tmp/requirements.txt \
    && pip uninstall -y uv && rm /tmp/requirements.txt
COPY shadowlab ./shadowlab
COPY ingest ./ingest
COPY replayer ./replayer
COPY scoring ./scoring
COPY analysis ./analysis
COPY dashboard ./dashboard
COPY migrations ./migrations
RUN pip install --no-deps .
# uid 1000: a users file made on the host by the first user is readable in the dashboard container.
RUN useradd --uid 1000 --create-home shadowlab
USER shadowlab
ENTRYPOINT ["shadowlab"]
CMD ["--help"]
