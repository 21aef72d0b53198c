"""Two prompt texts side by side with what changed marked: lines paired by difflib, and within a changed
line the words that differ, so a reviewer sees which sentence of the new version made the difference.

Rows carry (text, changed) segments; the template escapes the text and marks the changed parts. Every
line is shown (prompts are a few dozen lines): the point is reading both texts whole.
"""
import difflib
import re

# Words, runs of space and single punctuation marks: a changed comma does not mark the whole sentence.
TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


def _segments(old, new):
    """([(text, changed)] for the old line, the same for the new one), by words."""
    a, b = TOKENS.findall(old), TOKENS.findall(new)
    left, right = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if i2 > i1:
            left.append(("".join(a[i1:i2]), tag != "equal"))
        if j2 > j1:
            right.append(("".join(b[j1:j2]), tag != "equal"))
    return left, right


def _row(kind, i=None, old=None, j=None, new=None):
    if kind == "changed":
        left, right = _segments(old, new)
    else:
        left = [(old, kind == "removed")] if old is not None else None
        right = [(new, kind == "added")] if new is not None else None
    return {"kind": kind, "left_no": None if i is None else i + 1, "left": left,
            "right_no": None if j is None else j + 1, "right": right}


def _changed_rows(a, b, i1, i2, j1, j2):
    rows = []
    for k in range(max(i2 - i1, j2 - j1)):
        i, j = i1 + k, j1 + k
        if i < i2 and j < j2:
            rows.append(_row("changed", i, a[i], j, b[j]))
        elif i < i2:
            rows.append(_row("removed", i, a[i]))
        else:
            rows.append(_row("added", j=j, new=b[j]))
    return rows


def side_by_side(old, new):
    """{"rows": [...], "changed": lines that differ, "same": bool} for the texts `old` (A) and `new` (B)."""
    a, b = (old or "").splitlines(), (new or "").splitlines()
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    rows, changed = [], 0
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            rows += [_row("equal", i, a[i], j, b[j]) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
        else:
            changed += max(i2 - i1, j2 - j1)
            rows += _changed_rows(a, b, i1, i2, j1, j2)
    return {"rows": rows, "changed": changed, "same": changed == 0}


def prompt_diffs(pv_a, pv_b):
    """The system text and the user template of two prompt versions, each compared side by side."""
    return [
        {"title": "System text", **side_by_side(pv_a.system_text, pv_b.system_text)},
        {"title": "User template", **side_by_side(pv_a.user_template, pv_b.user_template)},
    ]
