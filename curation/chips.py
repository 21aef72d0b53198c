"""The gallery's active filters as chips above the grid: what each does, in words, and how to drop it."""
from curation.gallery import as_querydict, fields, querystring_without, values


def active_filters(params):
    """The non-empty filters as chips above the grid: each says what it does in words and links to the
    same view without it."""
    qd = as_querydict(params)
    chips = []
    for name in fields():
        if name == "sort":
            continue
        for value in values(qd, name):
            rest = as_querydict(querystring_without(qd, "after")).copy()
            rest.setlist(name, [v for v in rest.getlist(name) if v.strip() != value])
            chips.append({"name": name, "value": value, "label": chip_label(name, value),
                          "without": querystring_without(rest)})
    return chips


DECISION_WORDS = {"keep": "keep", "reject": "reject", "none": "undecided"}
FLAG_WORDS = {
    "disagree": ("human and auto agree", "human and auto disagree"),
    "dups": ("no near-duplicates", "has near-duplicates"),
    "uncalibrated": ("calibrated scores", "uncalibrated scores"),
}
RANGE_WORDS = {"indoor": "indoor margin", "moderate": "moderate margin", "vlm": "VLM score"}


def chip_label(name, value):
    """A filter in words: `human=none` reads "human: undecided", `dups=1` "has near-duplicates"."""
    if name in ("final", "auto", "human"):
        return f"{name}: {DECISION_WORDS.get(value.lower(), value)}"
    if name in FLAG_WORDS and value.lower() in ("0", "1"):
        return FLAG_WORDS[name][int(value)]
    base, _, end = name.rpartition("_")
    if base in RANGE_WORDS and end in ("min", "max"):
        return f"{RANGE_WORDS[base]} {'≥' if end == 'min' else '≤'} {value}"
    if name == "verdict" and ":" in value:
        pv, _, decision = value.partition(":")
        if decision == "judged":
            return f"judged by prompt version #{pv}"
        if decision == "none":
            return f"not judged by prompt version #{pv}"
        return f"prompt version #{pv} says {decision}"
    if name == "group":
        return f"near-duplicates of #{value}"
    return f"{name.replace('_', ' ')}: {value}"
