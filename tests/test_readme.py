"""README.md shows the transition table that domain/transitions.py enforces."""

import re
from pathlib import Path

from domain.transitions import render_markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_transition_table_matches_code() -> None:
    text = README.read_text()
    match = re.search(
        r"<!-- transitions:start -->\n(.*?)\n<!-- transitions:end -->", text, re.S
    )

    assert match is not None, "README.md lost its transitions:start/end markers"
    assert match.group(1) == render_markdown_table()
