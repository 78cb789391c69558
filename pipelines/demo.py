"""The demo pipelines that `make run` installs."""

DEMO_PIPELINES = [
    {
        "name": "sample_task",
        "description": "Simulates a short piece of work and describes its input.",
        "config": {
            "input_schema": {"type": "object"},
            "stages": [{"name": "work", "type": "sample_task", "params": {"seconds": 0.2}}],
            "max_attempts": 3,
        },
    },
    {
        "name": "text-analysis",
        "description": "Extracts clean text from HTML or plain text, then computes word statistics.",
        "config": {
            "input_schema": {
                "type": "object",
                "properties": {"text": {"type": "string"}, "html": {"type": "string"}},
                "anyOf": [{"required": ["text"]}, {"required": ["html"]}],
            },
            "stages": [
                {"name": "extract", "type": "extract_text", "params": {}},
                {"name": "stats", "type": "text_stats", "params": {"top": 10}},
            ],
            "max_attempts": 3,
        },
    },
]
