"""Rendering objects with a serializer whose fields are built once per thread.

Building a ModelSerializer's fields (inspecting the model, deep-copying the
declared fields) costs more than rendering an object with them: for a job it
is most of a submission's CPU. A serializer built once per thread and class
renders every later object with the fields it already has; the context is set
per call, so concurrent requests in other threads never see it.
"""

from __future__ import annotations

import threading
from typing import Any

from rest_framework import serializers

_local = threading.local()


def thread_serializer(serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    """This thread's instance of `serializer_class`, its fields built on first use.

    For validation call its `run_validation(data)`, which keeps no state on the instance.
    """
    built = _local.__dict__.setdefault("serializers", {})
    serializer = built.get(serializer_class)
    if serializer is None:
        serializer = built[serializer_class] = serializer_class(context={})
    return serializer


def represent(serializer_class: type[serializers.Serializer], instance: Any, **context: Any) -> dict:
    """What `serializer_class(instance, context=context).data` gives, without building its fields again."""
    serializer = thread_serializer(serializer_class)
    serializer._context = context
    try:
        return serializer.to_representation(instance)
    finally:
        serializer._context = {}
