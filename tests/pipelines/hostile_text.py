"""Inputs on which a backtracking regex or html.parser takes time quadratic in their length.

Shared by tests/pipelines/test_text_stages_linear.py and bench/text_stages.py.
Each maker returns a string of about `size` characters.
"""


def _repeat(unit: str, size: int) -> str:
    return unit * max(1, size // len(unit))


TAG = "<p>x</p>"  # makes the text HTML, so that the scanner reads what follows

HOSTILE_TEXT = {
    "dots then a letter": lambda size: "." * (size - 1) + "a",
    "<a repeated": lambda size: _repeat("<a", size),
    "<a after a tag": lambda size: TAG + _repeat("<a", size),
    "<? after a tag": lambda size: TAG + _repeat("<?", size),
    "<!-- after a tag": lambda size: TAG + _repeat("<!--", size),
    "< after a tag": lambda size: TAG + _repeat("<", size),
    "</a after a tag": lambda size: TAG + _repeat("</a", size),
    "<![CDATA[ after a tag": lambda size: TAG + _repeat("<![CDATA[", size),
    "attributes of an unclosed tag": lambda size: TAG + "<a" + _repeat(' b="c"', size),
    "attributes of a closed tag": lambda size: "<a" + _repeat(" b=c", size) + ">x",
    "long character reference": lambda size: "&#" + "1" * size,
    "hyphenated word": lambda size: _repeat("a-", size),
    "mixed": lambda size: TAG + _repeat('<a..........a<?<!--<&#1 x="', size),
}
