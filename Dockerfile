# The UnMoGrowP services (ingestion, tracker) and the Locust load test, in one
# image. deploy/docker-compose.yml runs it with a different command each:
#   unmogrowp ingestion --host 0.0.0.0
#   unmogrowp tracker --host 0.0.0.0 --ingestion-url http://ingestion:8081
#   locust -f loadtest/ --master   (or --worker)
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The project's packages and their metadata; see .dockerignore for what stays out.
COPY pyproject.toml README.md ./
COPY services ./services
COPY exporters ./exporters
COPY ingestion ./ingestion
COPY customer_tracker ./customer_tracker
COPY loadtest ./loadtest
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin unmogrowp \
    && mkdir -p /data \
    && chown unmogrowp /data

COPY deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

USER unmogrowp
VOLUME ["/data"]
EXPOSE 8081 8084 8089 9646

ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["unmogrowp", "--help"]
