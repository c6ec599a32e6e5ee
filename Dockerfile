# etl-doctor: the Slack bot as a long-running container (Socket Mode or HTTP on $PORT).
#   docker build -t etl-doctor .
#   docker run --rm -e SLACK_BOT_TOKEN -e SLACK_APP_TOKEN -e DATABASE_URL -e AWS_REGION \
#       -v "$PWD/etl-doctor.yml:/app/etl-doctor.yml:ro" etl-doctor
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
COPY handlers ./handlers
COPY prompts ./prompts
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000 \
    DATABASE_URL=sqlite:////data/etl-doctor.db \
    ETL_DOCTOR_CONFIG=/app/etl-doctor.yml
RUN --mount=from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels etl-doctor \
 && useradd --create-home --uid 10001 etl-doctor \
 && mkdir -p /data /app && chown etl-doctor /data
WORKDIR /app
USER etl-doctor
VOLUME ["/data"]
EXPOSE 3000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3000\")}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["etl-doctor"]
CMD ["serve"]
