"""Serializers built once per thread render exactly what a fresh serializer renders, context included."""

import threading

from rest_framework import serializers

from jobsite.api.representation import represent, thread_serializer


class Greeting(serializers.Serializer):
    name = serializers.CharField()
    text = serializers.SerializerMethodField()

    def get_text(self, obj):
        return f"{self.context['greeting']}, {obj['name']}"


def test_the_thread_serializer_is_built_once_and_renders_like_a_fresh_one():
    assert thread_serializer(Greeting) is thread_serializer(Greeting)
    obj = {"name": "Ada"}
    assert represent(Greeting, obj, greeting="Hello") == Greeting(obj, context={"greeting": "Hello"}).data
    assert represent(Greeting, obj, greeting="Hi")["text"] == "Hi, Ada"
    assert thread_serializer(Greeting).context == {}  # no context lingers after a call


def test_each_thread_renders_with_its_own_context():
    results: dict[int, list[str]] = {}
    start = threading.Barrier(4)

    def render(n):
        start.wait()
        results[n] = [represent(Greeting, {"name": f"n{n}"}, greeting=f"g{n}")["text"] for _ in range(200)]

    threads = [threading.Thread(target=render, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(set(texts) == {f"g{n}, n{n}"} for n, texts in results.items())
    assert len({id(thread_serializer(Greeting))}) == 1
