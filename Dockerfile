# One image for every shadowlab process (ingest, replayer, simulator, dashboard, migrations).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# Exactly the versions in uv.lock (what CI tested), with their hashes; then the two projects of the uv
# workspace (the tee's distribution, packages/shadowlab-tee, then the platform) without re-resolving.
COPY pyproject.toml uv.lock README.md ./
COPY packages/shadowlab-tee ./packages/shadowlab-tee
RUN pip install uv==0.13.9 \
    && uv export --frozen --no-dev --no-emit-workspace --format requirements-txt -o /tmp/requirements.txt \
    && pip install --require-hashes -r /tmp/requirements.txt \
    && pip uninstall -y uv && rm /tmp/requirements.txt
COPY shadowlab ./shadowlab
COPY cli ./cli
COPY ingest ./ingest
COPY replayer ./replayer
COPY scoring ./scoring
COPY analysis ./analysis
COPY dashboard ./dashboard
COPY simulator ./simulator
COPY demo ./demo
COPY migrations ./migrations
RUN pip install --no-deps ./packages/shadowlab-tee && pip install --no-deps .
# uid 1000: a users file made on the host by the first user is readable in the dashboard container.
RUN useradd --uid 1000 --create-home shadowlab
USER shadowlab
ENTRYPOINT ["shadowlab"]
CMD ["--help"]
