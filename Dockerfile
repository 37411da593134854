# One image for every shadowlab process (ingest, replayer, simulator, dashboard, migrations).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shadowlab ./shadowlab
COPY ingest ./ingest
COPY replayer ./replayer
COPY scoring ./scoring
COPY analysis ./analysis
COPY dashboard ./dashboard
COPY migrations ./migrations
RUN pip install .
RUN useradd --create-home shadowlab
USER shadowlab
ENTRYPOINT ["shadowlab"]
CMD ["--help"]
