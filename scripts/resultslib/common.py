"""Shared by the extractors and renderers of scripts/results_readme.py: the error it reports,
formatting helpers (numbers, ranges, sizes, wrapping at WIDTH columns) and the result file
readers."""

from __future__ import annotations

import csv
import json
import re
import textwrap
from pathlib import Path

WIDTH = 100
MIB = 1024 * 1024

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten"]


class ResultsError(Exception):
    """A result file is missing or does not hold what the manifest says it does."""


# --------------------------------------------------------------------------- formatting

def words(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else f"{n:,}"


def fnum(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def signed(x: float, decimals: int) -> str:
    return f"{x:+.{decimals}f}"


def frange(lo: float, hi: float, decimals: int, dash: str = "–") -> str:
    a, b = fnum(lo, decimals), fnum(hi, decimals)
    return a if a == b else f"{a}{dash}{b}"


def size_label(nbytes: float) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= div:
            v = nbytes / div
            return f"{v:.0f} {unit}" if abs(v - round(v)) < 1e-9 else f"{v:.1f} {unit}"
    return f"{nbytes:.0f} B"


def join_and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def md_link(label: str, href: str) -> str:
    return f"[{label}]({href})"


# Kept on one line when wrapping: links, intervals, a number and its unit, "kill -9".
UNBREAKABLE_RE = re.compile(
    r"\[[^\]]*\]\([^)]*\)|\[[+-]?[\d.]+, [+-]?[\d.]+\]|kill -9|"
    r"[~+-]?\d[\d.,]*(?:x)? (?:ms|s|µs|min|MiB|KiB|GiB|GB/s|TFLOP/s|req/s|cells|rows)\b")
NBSP = "\x00"


def wrap(text: str, first: str = "", rest: str = "") -> list[str]:
    """Wrap at WIDTH columns without breaking a link, an interval or a figure from its unit."""
    glued = UNBREAKABLE_RE.sub(lambda m: m.group(0).replace(" ", NBSP), text)
    lines = textwrap.wrap(glued, width=WIDTH, initial_indent=first, subsequent_indent=rest,
                          break_long_words=False, break_on_hyphens=False)
    return [line.replace(NBSP, " ") for line in lines]


def wrap_bullet(text: str, indent: int) -> list[str]:
    """One markdown bullet, wrapped at WIDTH columns."""
    return wrap(text, " " * indent + "- ", " " * (indent + 2))


# --------------------------------------------------------------------------- file readers

def read_json(path: Path):
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ResultsError(f"missing result file {path}") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not JSON ({e})") from None


def read_csv(path: Path) -> list[dict]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        raise ResultsError(f"missing result file {path}") from None


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"missing result file {path}") from None


def markdown_table(text: str, heading: str, path: Path) -> list[dict]:
    """The first pipe table after the line `heading` (a whole markdown heading line)."""
    lines = text.splitlines()
    try:
        i = lines.index(heading)
    except ValueError:
        raise ResultsError(f"{path}: no heading {heading!r}") from None
    rows: list[list[str]] = []
    for line in lines[i + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    if len(rows) < 2 or not all(set(c) <= set("-: ") for c in rows[1]):
        raise ResultsError(f"{path}: no table under {heading!r}")
    header = rows[0]
    return [dict(zip(header, r)) for r in rows[2:]]


def num(value: str, path: Path, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ResultsError(f"{path}: {what} is not a number: {value!r}") from None

