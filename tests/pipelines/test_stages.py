"""The built-in stage types and the stage registry."""

import time

import pytest

from pipelines.registry import (
    StageContext,
    UnknownStageType,
    get_stage_type,
    params_errors,
    stage,
    stage_types,
)
from pipelines.stages import StageCancelled, extract_text, sample_task, sleep, text_stats


def make_context(previous, params=None, **kwargs):
    return StageContext(
        job_id="job-1",
        input=previous if isinstance(previous, dict) else {},
        previous=previous,
        outputs={},
        params=params or {},
        **kwargs,
    )


# --- extract_text -----------------------------------------------------------------


def test_extract_text_strips_tags_and_keeps_the_words():
    output = extract_text(make_context({"html": "<div><b>Bold</b> and <i>italic</i> text</div>"}))

    assert output == {"text": "Bold and italic text", "characters": len("Bold and italic text")}


def test_extract_text_drops_script_and_style_content():
    html = (
        "<html><head><title>Page title</title><style>p { color: red; }</style></head>"
        "<body><script>var secret = 1;</script><p>Visible</p><noscript>Enable JS</noscript></body></html>"
    )

    text = extract_text(make_context({"html": html}))["text"]

    assert text == "Visible"


def test_extract_text_unescapes_entities():
    text = extract_text(make_context({"html": "<p>Fish &amp; chips &lt;3 caf&eacute; &#8364;5</p>"}))["text"]

    assert text == "Fish & chips <3 café €5"


def test_extract_text_decodes_entities_only_once():
    text = extract_text(make_context({"html": "<p>Write &amp;lt;b&amp;gt; for bold</p>"}))["text"]

    assert text == "Write &lt;b&gt; for bold"


def test_extract_text_keeps_paragraph_breaks_and_collapses_whitespace():
    html = "<p>First   paragraph\tline.</p>\n\n\n<p>Second paragraph.</p><ul><li>One</li><li>Two</li></ul>"

    text = extract_text(make_context({"html": html}))["text"]

    assert text == "First paragraph line.\n\nSecond paragraph.\n\nOne\n\nTwo"


def test_extract_text_normalises_plain_text_without_tags():
    text = extract_text(make_context({"text": "  many   spaces \n\n\n\n\n next  "}))["text"]

    assert text == "many spaces\n\nnext"


def test_extract_text_reads_a_plain_string_previous_output():
    assert extract_text(make_context("<p>Just a string</p>"))["text"] == "Just a string"


def test_extract_text_uses_the_field_param_over_the_default_fields():
    previous = {"html": "<p>default field</p>", "summary": "<p>chosen field</p>"}

    assert extract_text(make_context(previous, {"field": "summary"}))["text"] == "chosen field"
    assert extract_text(make_context(previous))["text"] == "default field"


def test_extract_text_falls_back_through_text_body_and_content():
    assert extract_text(make_context({"body": "from body", "content": "from content"}))["text"] == "from body"
    assert extract_text(make_context({"content": "from content"}))["text"] == "from content"


def test_extract_text_raises_when_the_named_field_is_missing():
    with pytest.raises(ValueError, match="'summary'"):
        extract_text(make_context({"html": "<p>x</p>"}, {"field": "summary"}))


def test_extract_text_raises_when_no_default_field_is_present():
    with pytest.raises(ValueError, match="html/text/body/content"):
        extract_text(make_context({"title": "no text here"}))


@pytest.mark.parametrize("previous", [{"text": 42}, {"html": ["<p>a</p>"]}, None, 3.5])
def test_extract_text_raises_when_the_source_is_not_a_string(previous):
    with pytest.raises(ValueError, match="must be a string"):
        extract_text(make_context(previous))


# --- text_stats -------------------------------------------------------------------

KNOWN_TEXT = "The quick brown fox jumps over the lazy dog. The dog sleeps! Does the fox care?"


def test_text_stats_counts_words_sentences_and_characters_of_a_known_text():
    stats = text_stats(make_context({"text": KNOWN_TEXT}))

    assert stats["words"] == 16
    assert stats["unique_words"] == 11
    assert stats["sentences"] == 3
    assert stats["characters"] == len(KNOWN_TEXT)
    assert stats["average_sentence_length"] == pytest.approx(16 / 3, abs=0.01)
    assert stats["lexical_diversity"] == pytest.approx(11 / 16, abs=0.001)
    letters = sum(len(w) for w in KNOWN_TEXT.replace(".", "").replace("!", "").replace("?", "").split())
    assert stats["average_word_length"] == pytest.approx(letters / 16, abs=0.01)


def test_text_stats_does_not_count_numbers_as_words_or_decimal_points_as_sentence_ends():
    stats = text_stats(make_context({"text": "Pi is 3.14 roughly. Well-known and don't count twice."}))

    # pi, is, roughly, well-known, and, don't, count, twice
    assert stats["words"] == 8
    assert stats["sentences"] == 2


def test_text_stats_top_terms_exclude_stop_words_and_are_ordered_by_count():
    stats = text_stats(make_context({"text": KNOWN_TEXT}))

    terms = [t["term"] for t in stats["top_terms"]]
    assert terms[:2] == ["fox", "dog"]
    assert stats["top_terms"][:2] == [{"term": "fox", "count": 2}, {"term": "dog", "count": 2}]
    assert not {"the", "over", "does"} & set(terms)
    assert set(terms) == {"fox", "dog", "quick", "brown", "jumps", "lazy", "sleeps", "care"}


def test_text_stats_respects_the_top_param():
    stats = text_stats(make_context({"text": KNOWN_TEXT}, {"top": 3}))

    assert [t["term"] for t in stats["top_terms"]] == ["fox", "dog", "quick"]


def test_text_stats_accepts_a_plain_string_previous_output():
    assert text_stats(make_context("One two three."))["words"] == 3


def test_text_stats_of_empty_text_is_all_zero():
    stats = text_stats(make_context({"text": ""}))

    assert stats["words"] == 0
    assert stats["sentences"] == 0
    assert stats["top_terms"] == []
    assert stats["quality_score"] == 0.0


@pytest.mark.parametrize("previous", [{"html": "<p>no text key</p>"}, {"text": None}, 12])
def test_text_stats_raises_without_a_text_string(previous):
    with pytest.raises(ValueError, match="text"):
        text_stats(make_context(previous))


VARIED_TEXT = (
    "Researchers gathered samples from several rivers during the spring flood season. "
    "Each sample was filtered, weighed and photographed before chemical analysis began. "
    "The laboratory compared mineral content against readings collected a decade earlier. "
    "Surprisingly, two tributaries showed far lower sediment levels than expected. "
    "Local farmers suggested that new terraces upstream might explain the difference. "
    "Further fieldwork is planned for autumn, when water levels usually drop again."
)
REPETITIVE_TEXT = "spam " * 120


@pytest.mark.parametrize("text", ["", "Hi", VARIED_TEXT, REPETITIVE_TEXT, VARIED_TEXT * 20, "word " * 2000])
def test_text_stats_quality_score_is_between_zero_and_one(text):
    score = text_stats(make_context({"text": text}))["quality_score"]

    assert 0.0 <= score <= 1.0


def test_text_stats_scores_a_varied_multi_sentence_text_above_a_repetitive_one():
    varied = text_stats(make_context({"text": VARIED_TEXT}))["quality_score"]
    repetitive = text_stats(make_context({"text": REPETITIVE_TEXT}))["quality_score"]

    assert varied > repetitive
    assert varied > 0.7
    assert repetitive < 0.4


# --- sleep and sample_task --------------------------------------------------------


def test_sleep_waits_reports_rising_progress_and_passes_the_previous_output_on():
    progress = []
    previous = {"keep": "me"}
    started = time.monotonic()

    output = sleep(make_context(previous, {"seconds": 0.25}, report_progress=progress.append))

    assert time.monotonic() - started >= 0.25
    assert output == previous
    assert len(progress) >= 2
    assert progress == sorted(progress)
    assert all(0.0 <= p <= 1.0 for p in progress)
    assert progress[-1] == pytest.approx(1.0, abs=0.05)


def test_sleep_raises_stage_cancelled_when_the_job_is_already_cancelled():
    started = time.monotonic()

    with pytest.raises(StageCancelled):
        sleep(make_context({}, {"seconds": 30}, is_cancelled=lambda: True))

    assert time.monotonic() - started < 0.5


def test_sleep_stops_mid_wait_once_cancellation_is_requested():
    progress = []
    started = time.monotonic()

    with pytest.raises(StageCancelled):
        sleep(make_context({}, {"seconds": 30}, report_progress=progress.append, is_cancelled=lambda: bool(progress)))

    assert time.monotonic() - started < 1.0
    assert len(progress) == 1
    assert progress[0] < 0.1


def test_sample_task_describes_its_input_and_reports_progress():
    progress = []

    output = sample_task(make_context({"b": 1, "a": 2}, {"seconds": 0.15}, report_progress=progress.append))

    assert output["processed"] is True
    assert output["input_keys"] == ["a", "b"]
    assert output["input"] == {"b": 1, "a": 2}
    assert output["elapsed_ms"] >= 140
    assert progress and progress[-1] == pytest.approx(1.0, abs=0.05)


def test_sample_task_wraps_a_non_object_previous_output():
    output = sample_task(make_context("plain", {"seconds": 0}))

    assert output["input"] == {"value": "plain"}
    assert output["input_keys"] == ["value"]


def test_sample_task_raises_stage_cancelled_when_the_job_is_cancelled():
    started = time.monotonic()

    with pytest.raises(StageCancelled):
        sample_task(make_context({}, {"seconds": 30}, is_cancelled=lambda: True))

    assert time.monotonic() - started < 0.5


# --- registry ---------------------------------------------------------------------


def test_registering_a_second_function_under_a_taken_name_raises():
    @stage("tests_pipelines_stages_duplicate")
    def first(ctx):
        return 1

    def second(ctx):
        return 2

    with pytest.raises(ValueError, match="already registered"):
        stage("tests_pipelines_stages_duplicate")(second)

    assert get_stage_type("tests_pipelines_stages_duplicate").func is first


def test_registering_the_same_function_again_is_allowed():
    def again(ctx):
        """Return a constant."""
        return 1

    stage("tests_pipelines_stages_again")(again)
    stage("tests_pipelines_stages_again")(again)

    registered = get_stage_type("tests_pipelines_stages_again")
    assert registered.func is again
    assert registered.description == "Return a constant."


def test_registering_with_an_invalid_params_schema_raises():
    import jsonschema

    with pytest.raises(jsonschema.SchemaError):
        stage("tests_pipelines_stages_bad_schema", params_schema={"type": "no-such-type"})

    with pytest.raises(UnknownStageType):
        get_stage_type("tests_pipelines_stages_bad_schema")


def test_get_stage_type_raises_unknown_stage_type_for_an_unregistered_name():
    with pytest.raises(UnknownStageType, match="no_such_stage"):
        get_stage_type("no_such_stage")


def test_builtin_stage_types_are_registered_and_listed_by_name():
    names = [t.name for t in stage_types()]

    assert {"echo", "sleep", "sample_task", "extract_text", "text_stats"} <= set(names)
    assert names == sorted(names)


def test_params_errors_is_empty_for_valid_params():
    assert params_errors(get_stage_type("sleep"), {"seconds": 1.5}) == []
    assert params_errors(get_stage_type("echo"), {}) == []


@pytest.mark.parametrize(
    ("stage_name", "params", "expected"),
    [
        ("sleep", {}, "params: 'seconds' is a required property"),
        ("sleep", {"seconds": -1}, "seconds: -1 is less than the minimum of 0"),
        ("sleep", {"seconds": "1"}, "seconds: '1' is not of type 'number'"),
        ("text_stats", {"top": 0}, "top: 0 is less than the minimum of 1"),
        ("echo", {"extra": 1}, "params: Additional properties are not allowed ('extra' was unexpected)"),
        ("extract_text", [], "params: [] is not of type 'object'"),
    ],
)
def test_params_errors_reports_each_bad_param_by_path(stage_name, params, expected):
    assert params_errors(get_stage_type(stage_name), params) == [expected]
