"""Built-in stage types."""

from __future__ import annotations

import html
import json
import re
import time
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from jobsite.outbound import safe_request

from .registry import StageContext, stage
from .secrets import SECRET_REFERENCE_SCHEMA, is_secret_reference, resolve_secret, scrub_secrets

if TYPE_CHECKING:
    import requests


class StageCancelled(Exception):
    """Raised by a stage that noticed its job is being cancelled."""


def _wait(ctx: StageContext, seconds: float) -> None:
    """Sleep in short steps, reporting progress and honouring cancellation."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if ctx.is_cancelled():
            raise StageCancelled()
        time.sleep(min(0.1, remaining))
        if seconds:
            ctx.report_progress(min(1.0, 1 - max(0.0, deadline - time.monotonic()) / seconds))


@stage("echo", isolated=False, idempotent=True)
def echo(ctx: StageContext):
    """Pass the previous output (or the job's input) on unchanged."""
    return ctx.previous


@stage(
    "sleep",
    isolated=False,
    idempotent=True,
    params_schema={
        "type": "object",
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 3600}},
        "required": ["seconds"],
        "additionalProperties": False,
    },
)
def sleep(ctx: StageContext):
    """Wait `seconds`, then pass the previous output on."""
    _wait(ctx, float(ctx.params["seconds"]))
    return ctx.previous


@stage(
    "sample_task",
    isolated=False,
    idempotent=True,
    params_schema={
        "type": "object",
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 60}},
        "additionalProperties": False,
    },
)
def sample_task(ctx: StageContext):
    """Simulate work for `seconds` (default 0.2) and describe the input it got."""
    started = time.monotonic()
    _wait(ctx, float(ctx.params.get("seconds", 0.2)))
    data = ctx.previous if isinstance(ctx.previous, dict) else {"value": ctx.previous}
    return {
        "processed": True,
        "input_keys": sorted(data),
        "input": data,
        "elapsed_ms": round((time.monotonic() - started) * 1000),
    }


# --- text stages ---------------------------------------------------------------------
#
# The text stages read whatever users submit (up to the 1 MiB input limit), so
# they run in time linear in their input: one pass over the text, and only
# regexes that cannot backtrack. Each regex here is a literal, a single
# character class (repeated or not) that nothing follows, or (_CHARREF,
# _WORD) alternatives that each start with a different character and consume
# what they match; every search starts where the last match ended. A `find`
# that fails ends the scan, so no stretch of text is searched twice.

_TAG_OPENING = re.compile(r"<[A-Za-z!/]")
_MARKUP_START = re.compile(r"<[A-Za-z/!?]")  # where a tag, comment or declaration may begin
_TAG_NAME_END = re.compile(r"[\t\n\f\r />]")
_ATTRIBUTE_NAME_END = re.compile(r"[\t\n\f\r />=]")
_UNQUOTED_VALUE_END = re.compile(r"[\t\n\f\r >]")
_TAG_SPACE = re.compile(r"[\t\n\f\r ]*")
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# html.unescape's own pattern: a decimal or hex reference, or up to 32 characters of a name.
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")

_SKIP_CONTENT = frozenset({"script", "style", "noscript", "template", "head"})
_BLOCK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "title"})
# The content of these is not markup: it runs to the element's end tag.
_RAW_TEXT_END = {name: re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE | re.ASCII) for name in ("script", "style")}
_LINE_SPACE = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _decode_charref(match: re.Match) -> str:
    reference = match.group(1)
    if reference[0] == "#":
        # int() of a long digit string is slow (and refused past 4300 digits); no
        # code point has more than 7 significant digits, so a longer one is invalid.
        hexadecimal = reference[1] in "xX"
        digits = reference[2 if hexadecimal else 1 :].rstrip(";").lstrip("0") or "0"
        if len(digits) > 8:
            return "\ufffd"
        reference = f"#{'x' if hexadecimal else ''}{digits}{';' if reference.endswith(';') else ''}"
    return html.unescape("&" + reference)


def decode_entities(text: str) -> str:
    """Replace HTML character references in `text` as html.unescape does, in linear time."""
    return _CHARREF.sub(_decode_charref, text) if "&" in text else text


class _HTMLText:
    """Extracts the text of an HTML document in one pass.

    Skips the content of script, style, noscript, template and head, marks
    block elements with newlines and decodes character references. A tag ends
    at the first `>` outside a quoted attribute value, as in the HTML
    tokenizer. Markup that never ends is kept as text (so is a `<` that opens
    nothing), except an unclosed comment, script or style, whose content is
    dropped.
    """

    def __init__(self, source: str):
        self.source = source
        self.parts: list[str] = []
        self.skipping = 0

    def text(self) -> str:
        source = self.source
        start = 0  # the text not yet kept starts here
        while (markup := _MARKUP_START.search(source, start)) is not None:
            at = markup.start()
            found = self._markup(at)
            if found is None:  # it never ends: the rest is text
                break
            end, kind, name = found
            self._keep(start, at)
            if end < 0:
                return "".join(self.parts)
            if kind == "end":
                self._close(name)
            elif kind:
                self._open(name)
                if kind == "empty":
                    self._close(name)
                elif name in _RAW_TEXT_END:
                    raw_end = _RAW_TEXT_END[name].search(source, end)
                    if raw_end is None:
                        return "".join(self.parts)
                    end = raw_end.start()  # the end tag is read as any other
            start = end
        self._keep(start, len(source))
        return "".join(self.parts)

    def _keep(self, start: int, end: int) -> None:
        if start < end and not self.skipping:
            self.parts.append(decode_entities(self.source[start:end]))

    def _open(self, name: str) -> None:
        if name in _SKIP_CONTENT:
            self.skipping += 1
        elif name in _BLOCK:
            self.parts.append("\n")

    def _close(self, name: str) -> None:
        if name in _SKIP_CONTENT:
            self.skipping = max(0, self.skipping - 1)
        elif name in _BLOCK:
            self.parts.append("\n")

    def _markup(self, at: int) -> tuple[int, str, str] | None:
        """Read the markup at `at`: (where it ends, "start"/"empty"/"end"/"" and the tag name).

        None when it never ends; an end of -1 when it is an unclosed comment.
        """
        source = self.source
        if source[at + 1] in _ASCII_LETTERS:
            return self._start_tag(at)
        if source[at + 1] == "/":
            return self._end_tag(at)
        if source.startswith("<!--", at):
            if source.startswith(">", at + 4) or source.startswith("->", at + 4):  # <!--> and <!--->
                return (at + 5 if source[at + 4] == ">" else at + 6), "", ""
            close = source.find("-->", at + 4)
            return (close + 3 if close >= 0 else -1), "", ""
        if source.startswith("<![CDATA[", at):
            close = source.find("]]>", at + 9)
            return (close + 3 if close >= 0 else -1), "", ""
        close = source.find(">", at + 2)  # <!DOCTYPE ...>, <?xml ...?>: up to the next ">"
        return (close + 1, "", "") if close >= 0 else None

    def _start_tag(self, at: int) -> tuple[int, str, str] | None:
        source, n = self.source, len(self.source)
        name_end = _TAG_NAME_END.search(source, at + 1)
        if name_end is None:
            return None
        name = source[at + 1 : name_end.start()].lower()
        position = name_end.start()
        while True:
            position = _TAG_SPACE.match(source, position).end()
            if position >= n:
                return None
            if source[position] == ">":
                return position + 1, "start", name
            if source[position] == "/":
                if source.startswith(">", position + 1):
                    return position + 2, "empty", name
                position += 1
                continue
            # An attribute: a name (whose first character may be "="), then "= value" or not.
            attribute_end = _ATTRIBUTE_NAME_END.search(source, position + 1)
            if attribute_end is None:
                return None
            position = _TAG_SPACE.match(source, attribute_end.start()).end()
            if not source.startswith("=", position):
                continue
            position = _TAG_SPACE.match(source, position + 1).end()
            if position >= n:
                return None
            if source[position] in "\"'":
                close = source.find(source[position], position + 1)
                if close < 0:
                    return None
                position = close + 1
            else:
                value_end = _UNQUOTED_VALUE_END.search(source, position)
                if value_end is None:
                    return None
                position = value_end.start()

    def _end_tag(self, at: int) -> tuple[int, str, str] | None:
        source = self.source
        if source.startswith(">", at + 2):  # "</>" is nothing
            return at + 3, "", ""
        if at + 2 >= len(source) or source[at + 2] not in _ASCII_LETTERS:  # "</ ...>" and the like: a comment
            close = source.find(">", at + 2)
            return (close + 1, "", "") if close >= 0 else None
        name_end = _TAG_NAME_END.search(source, at + 2)
        close = source.find(">", name_end.start()) if name_end else -1
        if close < 0:
            return None
        return close + 1, "end", source[at + 2 : name_end.start()].lower()


def _looks_like_html(text: str) -> bool:
    """Whether `text` has a tag: a `<` and a letter, `!` or `/`, and a `>` somewhere after them."""
    opening = _TAG_OPENING.search(text)
    return opening is not None and text.find(">", opening.end()) >= 0


def clean_text(raw: str) -> str:
    """Turn HTML or plain text into readable text with normalised whitespace."""
    raw = _HTMLText(raw).text() if _looks_like_html(raw) else decode_entities(raw)
    lines = (_LINE_SPACE.sub(" ", line).strip() for line in raw.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


@stage(
    "extract_text",
    idempotent=True,
    params_schema={
        "type": "object",
        "properties": {"field": {"type": "string", "minLength": 1}},
        "additionalProperties": False,
    },
)
def extract_text(ctx: StageContext):
    """Extract clean text from HTML or plain text in the previous output."""
    source = ctx.previous
    if isinstance(source, dict):
        name = ctx.params.get("field") or next((k for k in ("html", "text", "body", "content") if k in source), None)
        if name is None or name not in source:
            raise ValueError(f"extract_text: no {name or 'html/text/body/content'!r} field in its input.")
        source = source[name]
    if not isinstance(source, str):
        raise ValueError("extract_text: the text to extract from must be a string.")
    text = clean_text(source)
    return {"text": text, "characters": len(text)}


# A word is letters, joined by an apostrophe or hyphen to more letters ("don't",
# "well-known"): letters and joiners are disjoint, so a word is read once.
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*", re.UNICODE)
_LETTER = re.compile(r"[^\W\d_]")
_SENTENCE_PUNCTUATION = re.compile(r"[.!?]+")
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves""".split()
)


@stage(
    "text_stats",
    idempotent=True,
    params_schema={
        "type": "object",
        "properties": {"top": {"type": "integer", "minimum": 1, "maximum": 100}},
        "additionalProperties": False,
    },
)
def text_stats(ctx: StageContext):
    """Count words and sentences, list the top terms and score the text's quality."""
    source = ctx.previous
    text = source.get("text") if isinstance(source, dict) else source
    if not isinstance(text, str):
        raise ValueError("text_stats: expects a 'text' string from the previous stage.")
    words = [w.lower() for w in _WORD.findall(text)]
    sentences = count_sentences(text)
    terms = Counter(w for w in words if w not in STOP_WORDS and len(w) > 1)
    word_count = len(words)
    unique = len(set(words))
    sentence_count = max(sentences, 1 if word_count else 0)
    avg_sentence = word_count / sentence_count if sentence_count else 0.0
    diversity = unique / word_count if word_count else 0.0
    return {
        "words": word_count,
        "unique_words": unique,
        "sentences": sentence_count,
        "characters": len(text),
        "average_word_length": round(sum(map(len, words)) / word_count, 2) if word_count else 0.0,
        "average_sentence_length": round(avg_sentence, 2),
        "lexical_diversity": round(diversity, 3),
        "top_terms": [{"term": t, "count": c} for t, c in terms.most_common(ctx.params.get("top", 10))],
        "quality_score": quality_score(word_count, diversity, avg_sentence),
    }


def count_sentences(text: str) -> int:
    """Count the sentences of `text` that have a word.

    A sentence ends at a run of `.`, `!` or `?` followed by whitespace or the
    end of the text (so "3.14" and "..." inside a word do not end one).
    """
    count, start = 0, 0
    for punctuation in _SENTENCE_PUNCTUATION.finditer(text):
        end = punctuation.end()
        if end == len(text) or text[end].isspace():
            count += _LETTER.search(text, start, punctuation.start()) is not None
            start = end
    return count + (_LETTER.search(text, start) is not None)


def quality_score(word_count: int, diversity: float, avg_sentence: float) -> float:
    """Score text from 0 to 1: enough words, varied vocabulary, readable sentences.

    Length saturates at 300 words; diversity is best around 0.4-0.8 (lower is
    repetitive); sentences read best at 8-25 words.
    """
    if not word_count:
        return 0.0
    length = min(word_count / 300, 1.0)
    variety = min(diversity / 0.4, 1.0) if diversity < 0.8 else 1.0
    if 8 <= avg_sentence <= 25:
        readability = 1.0
    elif avg_sentence < 8:
        readability = avg_sentence / 8
    else:
        readability = max(0.0, 1 - (avg_sentence - 25) / 50)
    return round(0.3 * length + 0.35 * variety + 0.35 * readability, 3)


# --- paths into earlier data, http_request and transform ---------------------------


class PathNotFound(LookupError):
    """A path names no value in the job's input or the earlier stages' outputs."""

    retryable = False  # the same inputs give the same miss


def resolve_path(ctx: StageContext, path: str) -> Any:
    """Return the value at dotted `path` in the job's data.

    The first segment is `input` (the job's input), `previous` (the previous
    stage's output), `outputs` (every earlier output, by stage name) or the name
    of an earlier stage; the rest are keys, or indexes into lists
    (`fetch.items.0.name`).
    """
    root, *keys = path.split(".")
    roots = {"input": ctx.input, "previous": ctx.previous, "outputs": ctx.outputs}
    if root in roots:
        value = roots[root]
    elif root in ctx.outputs:
        value = ctx.outputs[root]
    else:
        raise PathNotFound(f"Path {path!r}: {root!r} is not input, previous, outputs or an earlier stage's name.")
    for depth, key in enumerate(keys, start=1):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isascii() and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            found = ".".join([root, *keys[: depth - 1]])
            raise PathNotFound(f"Path {path!r}: {found} has no {key!r}.")
    return value


_PLACEHOLDER = re.compile(r"\{((?:input|previous|outputs)(?:\.[^{}]+)?)\}")


def render_template(ctx: StageContext, template: str) -> str:
    """Replace each `{input...}`, `{previous...}` or `{outputs...}` in `template` with str() of its value."""
    return _PLACEHOLDER.sub(lambda match: str(resolve_path(ctx, match.group(1))), template)


def _render_leaves(ctx: StageContext, value: Any, secrets: dict[str, str]) -> Any:
    """Fill the templates in every string of `value`, and put in the secrets it references.

    Only the config's own `{"$secret": ...}` objects are secrets: a value that a
    template or a path brings in from the job's data is never looked up.
    """
    if isinstance(value, str):
        return render_template(ctx, value)
    if is_secret_reference(value):
        return resolve_secret(value, secrets)
    if isinstance(value, list):
        return [_render_leaves(ctx, item, secrets) for item in value]
    if isinstance(value, dict):
        return {key: _render_leaves(ctx, item, secrets) for key, item in value.items()}
    return value


class HTTPRequestFailed(Exception):
    """The request timed out, could not connect, or got a status outside 2xx."""


_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an RFC 9110 token
# A string, or an object that must then be a secret reference (so each mistake gets its own message).
_STRING_OR_SECRET = {"type": ["string", "object"], "if": {"type": "object"}, "then": SECRET_REFERENCE_SCHEMA}


@stage(
    "http_request",
    isolated=False,
    params_schema={
        "type": "object",
        "properties": {
            "url": {**_STRING_OR_SECRET, "minLength": 1},
            "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"], "default": "GET"},
            "headers": {
                "type": "object",
                "propertyNames": {"pattern": _HEADER_NAME},
                "additionalProperties": _STRING_OR_SECRET,
            },
            "body": {},
            "body_from": {"type": "string", "minLength": 1},
            "timeout_s": {"type": "number", "minimum": 0.1, "maximum": 60, "default": 10},
        },
        "required": ["url"],
        "additionalProperties": False,
        "not": {"required": ["body", "body_from"]},
    },
)
def http_request(ctx: StageContext):
    """Send an HTTP request built from templates; output its status, headers and body.

    `{"$secret": NAME}` in the url, a header or the body is replaced by the
    secret's value just before sending; the values of the secrets it used are
    replaced by their names in its output and error messages.
    """
    secrets: dict[str, str] = {}
    try:
        return scrub_secrets(_send(ctx, secrets), secrets)
    except Exception as exc:
        message = str(exc)
        if not any(value and value in message for value in secrets.values()):
            raise
        failure = HTTPRequestFailed(scrub_secrets(message, secrets))
        failure.retryable = getattr(exc, "retryable", True)
        raise failure from None


def _send(ctx: StageContext, secrets: dict[str, str]) -> dict:
    params = ctx.params
    method = params.get("method", "GET")
    url = _render_leaves(ctx, params["url"], secrets)
    headers = {name: _render_leaves(ctx, value, secrets) for name, value in params.get("headers", {}).items()}
    data = None
    if "body" in params or "body_from" in params:
        body = (
            resolve_path(ctx, params["body_from"])
            if "body_from" in params
            else _render_leaves(ctx, params["body"], secrets)
        )
        data = json.dumps(body).encode()
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    # Query strings often carry tokens: errors name the URL without one, and a
    # URL that is a secret by its name only.
    if is_secret_reference(params["url"]):
        shown = f"the URL of secret {params['url']['$secret']!r}"
    else:
        shown = urlunsplit(urlsplit(url)._replace(query="", fragment=""))
    timeout = float(params.get("timeout_s", 10))
    import requests  # here, not at import: only processes that run this stage load it

    try:
        response = safe_request(method, url, timeout=timeout, headers=headers, data=data)
    except requests.Timeout:
        raise HTTPRequestFailed(f"{method} {shown} timed out after {timeout:g} s.") from None
    except requests.ConnectionError as exc:
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        raise HTTPRequestFailed(f"{method} {shown} could not connect: {reason or type(exc).__name__}.") from None
    if not 200 <= response.status_code < 300:
        raise HTTPRequestFailed(f"{method} {shown} returned HTTP {response.status_code} {response.reason}.")
    try:
        body = _response_body(response)
    except json.JSONDecodeError as exc:
        raise HTTPRequestFailed(f"{method} {shown} returned invalid JSON: {exc}.") from None
    return {"status_code": response.status_code, "headers": dict(response.headers), "body": body}


def _response_body(response: requests.Response) -> Any:
    """The body as parsed JSON when its content type is JSON (None when empty), else as text.

    Text is UTF-8 unless the Content-Type names a charset: requests would
    otherwise assume ISO-8859-1 for any text/* type without one.
    """
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        return json.loads(response.content) if response.content.strip() else None
    encoding = response.encoding if "charset=" in response.headers.get("Content-Type", "").lower() else "utf-8"
    try:
        return response.content.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return response.content.decode("utf-8", errors="replace")


@stage(
    "transform",
    isolated=False,
    idempotent=True,
    params_schema={
        "type": "object",
        "properties": {
            "select": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"type": "string", "minLength": 1},
            },
        },
        "required": ["select"],
        "additionalProperties": False,
    },
)
def transform(ctx: StageContext):
    """Build an object of values picked by path from the input and earlier outputs."""
    return {name: resolve_path(ctx, path) for name, path in ctx.params["select"].items()}
