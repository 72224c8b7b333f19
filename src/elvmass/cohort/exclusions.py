"""Exclusion rules of the paper's cohort: paced rhythm, bundle branch block, wide QRS, atrial
fibrillation / flutter, unknown or conflicting sex — matched on the device's statements and QRS."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from elvmass.cohort.device import _in_range
from elvmass.cohort.schema import _fmt_num, _is_missing


@dataclass(frozen=True)
class ExclusionRule:
    """One reason to exclude an ECG from the cohort.

    ``kind`` is "statement" (a case-insensitive regular expression matching one of the device's
    interpretation statements), "qrs" (device QRS duration ≥ ``min_qrs_ms``) or "sex".
    """

    key: str
    label: str
    kind: str
    patterns: tuple[str, ...] = ()
    min_qrs_ms: float | None = None
    note: str = ""


#: The exclusions applied by :func:`build_cohort`, in the order they are tested (an ECG is counted
#: under the first rule it meets). The flow table and ``docs/manifest.md`` are built from this.
EXCLUSION_RULES: tuple[ExclusionRule, ...] = (
    ExclusionRule("paced", "paced rhythm", "statement",
                  (r"\bpac(?:ed|ing|emaker)\b", r"\bpace\b"),
                  note="paced QRS complexes do not reflect LV mass"),
    ExclusionRule("lbbb", "left bundle branch block", "statement",
                  (r"(?<!incomplete )left bundle[- ]branch block", r"\bc?lbbb\b"),
                  note="incomplete LBBB is not excluded by this rule"),
    ExclusionRule("rbbb", "right bundle branch block", "statement",
                  (r"(?<!incomplete )right bundle[- ]branch block", r"\bc?rbbb\b"),
                  note="incomplete RBBB (QRS < 120 ms) is kept"),
    ExclusionRule("bbb", "bundle branch block (side not stated)", "statement",
                  (r"(?<!left )(?<!right )(?<!incomplete )bundle[- ]branch block", r"\bbbb\b",
                   r"\b(?:bi|tri)fascicular block\b"),
                  note="includes bi- and trifascicular block"),
    ExclusionRule("wide_qrs", "wide QRS ≥ 120 ms (possible bundle branch block)", "qrs", min_qrs_ms=120.0,
                  note="device QRS duration; catches conduction delay the statements do not name"),
    ExclusionRule("afib", "atrial fibrillation", "statement",
                  (r"atrial fibrillation", r"\ba-?fib\b"),
                  note="no P waves; irregular beats"),
    ExclusionRule("aflutter", "atrial flutter", "statement",
                  (r"atrial flutter", r"\baflt\b", r"\ba-?flutter\b"),
                  note="excluded with AF: flutter waves replace P waves, so P-wave features are meaningless"),
    ExclusionRule("unknown_sex", "unknown sex", "sex",
                  note="neither the imaging CSV nor the ECG file gives M or F"),
    ExclusionRule("sex_conflict", "sex differs between imaging and ECG file", "sex",
                  note="the two records may not be the same person"),
)
EXCLUSION_BY_KEY: dict[str, ExclusionRule] = {r.key: r for r in EXCLUSION_RULES}
_COMPILED = {r.key: [re.compile(p, re.IGNORECASE) for p in r.patterns] for r in EXCLUSION_RULES}
# MUSE serial-comparison wording: "Sinus rhythm has replaced Atrial fibrillation" = now sinus.
_NO_LONGER = re.compile(r"no longer (?:present|evident|seen)|\bresolved\b", re.IGNORECASE)
_REPLACED = re.compile(r"\bha(?:s|ve) replaced\b", re.IGNORECASE)
# Negation. A finding is negated when a cue stands before it in the same clause ("..., not LBBB/RBBB",
# "no atrial fibrillation", "without pacing") or a negating phrase follows it ("LBBB ruled out",
# "... is not present"). Hedges are not negations: "rule out LBBB" (a query), "cannot rule out",
# "cannot exclude", "cannot be ruled out", "possible" all still exclude, as the cohort is meant to be clean.
_HEDGE = re.compile(r"\b(?:can ?not|can't|could not|couldn't)\s+(?:be\s+)?(?:rule[sd]?\s+out|excluded?)\b",
                    re.IGNORECASE)
_NEG_BEFORE = re.compile(r"\b(?:not|no|without|negative for|absence of|absent|ruled out|excluded|free of)\b",
                         re.IGNORECASE)
_NEG_AFTER = re.compile(r"^\W*(?:is\s+|are\s+|was\s+)?(?:not\s+(?:present|seen|evident|found|identified)|absent|"
                        r"ruled\s+out|excluded)\b", re.IGNORECASE)
# clause boundaries: a negation reaches to the end of its clause, not across ", " / "; " / ". " / " but "
_CLAUSE = re.compile(r"[,;.:()]|\bbut\b|\bhowever\b", re.IGNORECASE)


def _negated(text: str, start: int, end: int) -> bool:
    """Whether the finding at ``text[start:end]`` is negated in its clause."""
    before = text[:start]
    cut = [m.end() for m in _CLAUSE.finditer(before)]
    clause_before = before[cut[-1]:] if cut else before
    clause_before = _HEDGE.sub(" ", clause_before)
    if _NEG_BEFORE.search(clause_before):
        return True
    after = text[end:]
    m = _CLAUSE.search(after)
    clause_after = _HEDGE.sub(" ", after[: m.start()] if m else after)
    return bool(_NEG_AFTER.search(clause_after))


def _affirmed_match(rx: re.Pattern, text: str) -> bool:
    """Whether ``rx`` matches ``text`` somewhere that is not negated."""
    return any(not _negated(text, m.start(), m.end()) for m in rx.finditer(text))


def current_statement_text(statement: str) -> str:
    """The part of a statement that describes *this* ECG (drops serial-comparison history).

    >>> current_statement_text("Sinus rhythm has replaced Atrial fibrillation")
    'Sinus rhythm'
    >>> current_statement_text("Atrial fibrillation is no longer present")
    ''
    """
    text = str(statement)
    if _NO_LONGER.search(text):
        return ""
    m = _REPLACED.search(text)
    if m:
        text = text[: m.start()]
    return text.strip()


@lru_cache(maxsize=8192)
def _statement_rules(statement: str) -> frozenset[str]:
    """The keys of the statement rules one statement affirms (its current part, not negated). Carts word
    their statements from a fixed library, so an archive repeats the same few hundred strings: each is
    matched once per process."""
    text = current_statement_text(statement)
    if not text:
        return frozenset()
    return frozenset(r.key for r in EXCLUSION_RULES if r.kind == "statement"
                     and any(_affirmed_match(rx, text) for rx in _COMPILED[r.key]))


def classify_exclusion(statements: Iterable[str] | str | None, qrs_ms=None, sex=None) -> tuple[str, str] | None:
    """The first :data:`EXCLUSION_RULES` rule an ECG meets as ``(key, evidence)``, or None.

    Hedged statements ("possible", "consider", "rule out", "cannot rule out") still exclude: the
    cohort is meant to be clean. Negated findings do not ("..., not LBBB/RBBB", "no atrial
    fibrillation", "pacing ruled out"); the evidence names the statement that matched.

    >>> classify_exclusion(["Sinus rhythm", "Left bundle branch block"], 150, "M")
    ('lbbb', "statement 'Left bundle branch block'")
    >>> classify_exclusion(["Nonspecific intraventricular conduction delay QRSd >115mS, not LBBB/RBBB"], 135, "M")
    ('wide_qrs', 'device QRS 135 ms')
    >>> classify_exclusion(["Cannot rule out atrial fibrillation"], 90, "F")
    ('afib', "statement 'Cannot rule out atrial fibrillation'")
    >>> classify_exclusion(["Incomplete right bundle branch block"], 100, "F") is None
    True
    """
    if statements is None:
        statements = ()
    elif isinstance(statements, str):
        statements = [s for s in statements.split("\n")]
    current = [(s, _statement_rules(str(s))) for s in statements if not _is_missing(s)]
    q = _in_range("qrs_ms", qrs_ms)
    for rule in EXCLUSION_RULES:
        if rule.kind == "statement":
            for original, keys in current:
                if rule.key in keys:
                    return rule.key, f"statement {original.strip()!r}"
        elif rule.kind == "qrs":
            if q is not None and q >= rule.min_qrs_ms:
                return rule.key, f"device QRS {_fmt_num(q)} ms"
        elif rule.key == "unknown_sex":
            if sex is None or _is_missing(sex) or sex == "?":
                return rule.key, "no M/F in imaging CSV or ECG file"
        elif rule.key == "sex_conflict":
            if isinstance(sex, str) and sex.startswith("conflict"):
                return rule.key, sex
    return None


def exclusion_rules_markdown() -> str:
    """The exclusion rules as a Markdown table (the table in ``docs/manifest.md`` is this text)."""
    lines = ["| order | key | excluded when | note |", "|---|---|---|---|"]
    for i, r in enumerate(EXCLUSION_RULES, 1):
        if r.kind == "statement":
            when = "a device statement matches " + ", ".join(f"`{p}`" for p in r.patterns)
        elif r.kind == "qrs":
            when = f"device QRS duration ≥ {_fmt_num(r.min_qrs_ms)} ms"
        else:
            when = r.label
        lines.append(f"| {i} | `{r.key}` | {when} | {r.note} |")
    return "\n".join(lines)


__all__ = ['EXCLUSION_BY_KEY', 'EXCLUSION_RULES', 'ExclusionRule', 'classify_exclusion', 'current_statement_text', 'exclusion_rules_markdown']
