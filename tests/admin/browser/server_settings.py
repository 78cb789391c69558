"""Settings of the web server and worker the browser tests start: production settings, static files
served from the apps' static folders (no collectstatic run needed)."""

from jobsite.settings import *  # noqa: F403
from jobsite.settings import STORAGES

STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_USE_FINDERS = True
# The test process stores users' passwords with the suite's fast hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
