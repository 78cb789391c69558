"""gunicorn settings for jobsite (the Dockerfile's and docker-compose's web server).

`gunicorn -c deploy/gunicorn.conf.py jobsite.wsgi:application`. The environment
sizes it (WEB_WORKERS processes of WEB_THREADS threads; see the README's
connection budget) and, with LOG_FORMAT=json, gunicorn's own lines (start-up,
worker restarts, the access log) are JSON objects like the application's.
"""

import os

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_WORKERS", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# A worker busy longer than this is killed and replaced (the API answers in milliseconds).
timeout = int(os.environ.get("WEB_TIMEOUT_SECONDS", "60"))
graceful_timeout = 30
# One access line per request (WEB_ACCESS_LOG=0 turns it off: /metrics counts every request by
# route, method and status, and Django logs every 4xx/5xx with its request id).
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG", "1") == "1" else None
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'

if os.environ.get("LOG_FORMAT") == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "jobsite.logging.JsonFormatter"}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"level": "INFO", "handlers": ["json"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False, "qualname": "gunicorn.error"},
            "gunicorn.access": {
                "level": "INFO",
                "handlers": ["json"],
                "propagate": False,
                "qualname": "gunicorn.access",
            },
        },
    }
