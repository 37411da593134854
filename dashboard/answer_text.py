"""Model answers as HTML a person reads: Markdown formatted without any HTML of its own, and a word diff.

Answers are untrusted. The Markdown renderer runs with raw HTML off (`<script>` stays the text
"<script>"), and with links, images and autolinks off (they stay their literal Markdown, so nothing is
fetched or clickable); the word diff escapes every word. `st.html` sanitises once more (DOMPurify).
"""

from __future__ import annotations

import difflib
import html
import re
from typing import Literal

from markdown_it import MarkdownIt

DiffSide = Literal["control", "candidate"]
BOX_STYLE = (
    "border:1px solid rgba(49,51,63,.2);border-radius:.5rem;padding:.25rem .75rem;max-height:28rem;"
    "overflow:auto;overflow-wrap:anywhere;background:#fff"
)
# A long answer scrolls inside its box; while more of it lies below the box's edge, "▼ scroll for more" over
# a fade sits on that edge. No script: the cue is sticky (pinned to the box's visible bottom) and a
# scroll-driven animation shows it until the last 1.5rem of scrolling; a box with nothing to scroll has no
# scroll timeline, so the cue keeps its hidden style (so does a browser without scroll-driven animations:
# no cue, as before).
MORE_BELOW = "scroll for more"
_CUE = (
    f'<div class="more-below" aria-hidden="true">▼ {MORE_BELOW}</div>'
    "<style>.answer .more-below{position:sticky;bottom:0;height:1.5rem;margin-top:-1.5rem;opacity:0;"
    "pointer-events:none;display:flex;align-items:flex-end;justify-content:flex-end;font:.8rem sans-serif;"
    "color:#555;background:linear-gradient(rgba(255,255,255,0),#fff 70%);"
    "animation:answer-more-below linear both;animation-timeline:scroll(nearest block);"
    "animation-range:calc(100% - 1.5rem) 100%}"
    "@keyframes answer-more-below{from{opacity:1}to{opacity:0}}</style>"
)
_DELETED = "background:#ffd7d5;text-decoration:line-through"
_INSERTED = "background:#ccf2d4;text-decoration:none"
_TOKENS = re.compile(r"\s+|[^\s]+")

_markdown = (
    MarkdownIt("commonmark", {"html": False, "linkify": False})
    .enable(["table", "strikethrough"])
    .disable(["link", "image", "autolink"])
)


def markdown_html(text: str | None, *, empty: str = "(no answer)") -> str:
    """The answer's Markdown as HTML in a bordered box (no raw HTML, links or images)."""
    body = _markdown.render(text) if text else f"<p><em>{html.escape(empty)}</em></p>"
    return f'<div class="answer" style="{BOX_STYLE}">{body}{_CUE}</div>'


def word_diff_html(control: str | None, candidate: str | None) -> tuple[str, str]:
    """Both answers as escaped plain text: on the control's side the words the candidate dropped struck out
    in red, on the candidate's side the words it added in green."""
    old, new = _TOKENS.findall(control or ""), _TOKENS.findall(candidate or "")
    left: list[str] = []
    right: list[str] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        removed, added = html.escape("".join(old[a1:a2])), html.escape("".join(new[b1:b2]))
        if op == "equal":
            left.append(removed)
            right.append(added)
            continue
        if removed:
            left.append(f'<del style="{_DELETED}">{removed}</del>')
        if added:
            right.append(f'<ins style="{_INSERTED}">{added}</ins>')
    return _pre("".join(left)), _pre("".join(right))


def _pre(body: str) -> str:
    style = f"{BOX_STYLE};white-space:pre-wrap;font-family:monospace"
    return f'<div class="answer" style="{style}">{body}{_CUE}</div>'
