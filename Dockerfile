# jobsite: one image for the web server and the worker.
FROM python:3.11-slim

# DEBUG=0: an image is never a developer's checkout (see "Configuration" in the README).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DEBUG=0

RUN apt-get update \
 && apt-get install -y --no-install-recommends curl procps \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 jobsite

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs a key to import settings; it is not used at run time.
# /var/lib/jobsite/metrics: the processes' metric files (PROMETHEUS_MULTIPROC_DIR), a volume shared
# by the web server, the workers and the scheduler in docker-compose.
RUN SECRET_KEY=build-only DATABASE_URL=sqlite:////tmp/build.sqlite3 python manage.py collectstatic --noinput \
 && mkdir -p /app/media /var/lib/jobsite/metrics && chown -R jobsite /app/media /var/lib/jobsite

USER jobsite
EXPOSE 8000
# WEB_WORKERS x WEB_THREADS (3 x 4 by default), JSON logs with LOG_FORMAT=json: see deploy/gunicorn.conf.py.
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "jobsite.wsgi:application"]
