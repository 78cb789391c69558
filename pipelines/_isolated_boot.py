"""Loaded once by the fork server of isolated stages, so that each stage's process starts with Django ready."""

import django

django.setup()
