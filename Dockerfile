# One image for every service of docker-compose.yml (api, worker, migrate, lnd_simnet demo);
# the command picks the role. Runtime dependencies only: no dev or bench extras.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /data/simnet \
    && chown app:app /data/simnet

WORKDIR /app
COPY . /app
RUN pip install /app

# alembic.ini and migrations/ stay in /app for the migrate service; the code runs from site-packages.
USER app
EXPOSE 8000
CMD ["python", "-m", "api_service"]
