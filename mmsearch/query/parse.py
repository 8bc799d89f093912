"""The query language, one for the CLI, the TUI, the HTTP service and the Python API.

    sunset beach                      one phrase (bare words are read together)
    2:"red car" street                "red car" counts twice as much as "street"
    dog -"on a leash" -cat            results like "dog", pushed away from the negatives
    IMG_20*                           a prefix: file names and words that start so
    kind:image  kind:audio,text       only these kinds (image, text, audio, video); -kind:audio not
    folder:~/2019  -folder:tmp        only under (not under) a folder path, or any folder of that
                                      name (a bare name); quote paths with spaces
    ext:jpg,png  -ext:gif             only (not) these extensions
    after:2020-01  before:2021        the item's date (when taken, else modified), YYYY[-MM[-DD]]
    date:2020-06                      within that year, month or day
    modified-after:2024  modified-before:2024-06-01   the file's modification time
    size>2mb  size<=500kb  width>=1920  height<600    bytes (b, kb, mb, gb) and pixels
    duration>30s  duration<=2m  duration<1:30         recordings' and videos' length
    min:0.3                           hide matches scored below 0.3
    image:ref.jpg  audio:"my clip.wav" example files: more like these (several allowed)

Bare words join into one phrase (the model reads them together); quoted or weighted terms
stand alone. `N:` is a weight only when a letter or a quote follows it, so "at 8:25" stays
text; `name:value` is a filter only for the names above, so "http://x" stays text too.
Mistakes raise `QuerySyntaxError`, whose message shows the query with a caret under the mistake
and says how to fix it (a misspelt filter name gets the nearest real one).

`parse_query` turns a string into a `ParsedQuery`; `format_query` writes one back in canonical
form, and parsing that gives the same `ParsedQuery` again.
"""

from __future__ import annotations

import calendar
import difflib
import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from mmsearch.errors import QueryError
from mmsearch.query.filters import Filters, normal_extension

MAX_WEIGHT = 100.0
"""The largest weight a term may carry (weights are relative; 100 already drowns the rest)."""

KIND_NAMES: dict[str, str] = {
    "image": "image", "images": "image", "photo": "image", "photos": "image",
    "picture": "image", "pictures": "image",
    "text": "text", "texts": "text", "doc": "text", "docs": "text", "document": "text",
    "documents": "text", "note": "text", "notes": "text",
    "audio": "audio", "sound": "audio", "sounds": "audio", "recording": "audio",
    "recordings": "audio",
    "video": "video", "videos": "video", "film": "video", "films": "video", "movie": "video",
    "movies": "video", "clip": "video", "clips": "video",
}  # fmt: skip
"""What `kind:` accepts, and the kind each name means."""

_COMPARED = ("size", "width", "height", "duration")
_LISTED = ("kind", "folder", "ext")
_DATED = ("after", "before", "date", "modified-after", "modified-before")
_EXAMPLES = ("image", "audio")
FILTER_NAMES = (*_LISTED, *_DATED, *_COMPARED, "min", *_EXAMPLES)

_WEIGHT = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
# A weight: a number (decimals and exponents allowed, so "1e9:" is caught as one) and a colon
# followed by a letter or a quote, possibly after a misplaced minus.
_WEIGHTED = re.compile(rf"(?P<weight>{_WEIGHT}):(?=-?(?:\"|[^\W\d_]))")
_FILTER = re.compile(r"(?P<name>[A-Za-z][A-Za-z_-]*)(?P<op>:|>=|<=|>|<|=)")
_SIZE = re.compile(r"(?i)^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>b|k|kb|kib|m|mb|mib|g|gb|gib)?$")
_UNITS = {"b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30}  # fmt: skip
_DATE = re.compile(r"^(?P<y>\d{4})(?:-(?P<m>\d{1,2})(?:-(?P<d>\d{1,2}))?)?$")


@dataclass(frozen=True)
class Term:
    text: str
    weight: float = 1.0
    negative: bool = False
    phrase: bool = field(default=False, compare=False)
    """Written in quotes: its words must appear together to count as a keyword match."""


@dataclass(frozen=True)
class ParsedQuery:
    """Everything a query string says, typed."""

    terms: tuple[Term, ...] = ()
    filters: Filters = field(default_factory=Filters)
    min_score: float | None = None
    images: tuple[str, ...] = ()
    audios: tuple[str, ...] = ()


class QuerySyntaxError(QueryError):
    """A query string that cannot be read as written.

    Attributes:
        query: the query as given.
        position: index into `query` of the mistake (where the caret points).
    """

    def __init__(self, problem: str, query: str, position: int, fix: str) -> None:
        super().__init__(f"{problem}:\n{caret_display(query, position)}\n{fix}")
        self.query = query
        self.position = position
        self.problem = problem
        self.fix = fix


_DURATION = re.compile(
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hours?)?",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d*)?)")


def _seconds(value: str) -> float | None:
    """`30`, `30s`, `2m`, `1.5h`, `1:30` or `1:02:03` as seconds (None: not a length)."""
    text = value.strip()
    clock = _CLOCK.fullmatch(text)
    if clock:
        return int(clock["h"] or 0) * 3600.0 + int(clock["m"]) * 60.0 + float(clock["s"])
    m = _DURATION.fullmatch(text)
    if m is None:
        return None
    unit = (m["unit"] or "s").lower()[0]
    return float(m["number"]) * {"s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def _width(text: str) -> int:
    """Terminal columns `text` takes (wide East Asian characters count 2, combining marks 0)."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _printable(text: str) -> str:
    """`text` on one line: whitespace becomes a space and other control characters `?`."""
    return "".join(
        " " if ch.isspace() else "?" if unicodedata.category(ch)[0] == "C" else ch for ch in text
    )


def caret_display(query: str, position: int, indent: str = "  ") -> str:
    """Two lines: the query, and a caret under the character at `position`."""
    shown = _printable(query)
    return f"{indent}{shown}\n{indent}{' ' * _width(shown[:position])}^"


def _weight_example(text: str, quoted: bool) -> str:
    return f'2:"{text}"' if quoted else f"2:{text}"


class _Reader:
    """One pass over a query string, token by token."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.at = 0
        self.terms: list[Term] = []
        self.loose: list[str] = []
        self.lists: dict[str, list[str]] = {}
        self.bounds: dict[str, object] = {}
        self.min_score: float | None = None
        self.images: list[str] = []
        self.audios: list[str] = []

    def fail(self, problem: str, position: int, fix: str) -> QuerySyntaxError:
        return QuerySyntaxError(problem, self.query, position, fix)

    def run(self) -> ParsedQuery:
        q = self.query
        while True:
            while self.at < len(q) and q[self.at].isspace():
                self.at += 1
            if self.at >= len(q):
                break
            self.token()
        if self.loose:
            self.terms.insert(0, Term(" ".join(self.loose)))
        if self.terms and not any(not t.negative for t in self.terms):
            raise QueryError(
                f"The query {q!r} has only negative terms; add something to search for."
            )
        return ParsedQuery(
            terms=tuple(self.terms),
            filters=self.filters(),
            min_score=self.min_score,
            images=tuple(self.images),
            audios=tuple(self.audios),
        )

    # -- tokens -------------------------------------------------------------------------------

    def value(self, start: int) -> tuple[str, int, bool]:
        """The value starting at `start`: a quoted string or up to the next space."""
        q = self.query
        if start < len(q) and q[start] == '"':
            close = q.find('"', start + 1)
            if close < 0:
                raise self.fail(
                    "A quote in the query is never closed",
                    start,
                    'Add the closing quote after the phrase, e.g. "red car", or remove the quote.',
                )
            return q[start + 1 : close], close + 1, True
        end = start
        while end < len(q) and not q[end].isspace():
            end += 1
        return q[start:end], end, False

    def token(self) -> None:
        q = self.query
        start = self.at
        negative = q[start] == "-" and start + 1 < len(q) and not q[start + 1].isspace()
        body = start + 1 if negative else start
        named = _FILTER.match(q, body)
        if named and self.is_filter(named.group("name"), named.group("op"), body):
            self.filter_token(named, negative, start)
            return
        weighted = _WEIGHTED.match(q, body)
        weight: str | None = weighted.group("weight") if weighted else None
        text_at = weighted.end() if weighted else body
        text, self.at, quoted = self.value(text_at)
        if quoted and not text.strip():
            raise self.fail(
                "A quoted term in the query is empty",
                text_at,
                "Put words between the quotes, or remove them.",
            )
        text = text.strip()
        if weight is not None:
            if not quoted and text.startswith("-"):
                raise self.fail(
                    "The minus of a negative term goes before its weight",
                    body,
                    f"Write -{weight}:{text[1:]} to push results away from {text[1:]!r}.",
                )
            value = float(weight)
            if not 0 < value <= MAX_WEIGHT:
                example = ("-" if negative else "") + _weight_example(text, quoted)
                as_text = f' (or write "{weight}:{text}" in quotes to search for it as text)'
                raise self.fail(
                    f"Weight {weight} in the query is out of range (0 < weight <= {MAX_WEIGHT:g})",
                    body,
                    f"Use a weight like {example}, or drop the weight" + ("" if quoted else as_text) + ".",
                )
        if not text or (not quoted and text == "-"):
            return
        if negative:
            self.terms.append(Term(text, float(weight or 1.0), negative=True, phrase=quoted))
        elif weight is not None or quoted:
            self.terms.append(Term(text, float(weight or 1.0), phrase=quoted))
        else:
            self.loose.append(text)

    def is_filter(self, name: str, op: str, at: int) -> bool:
        """Whether `name` + `op` starts a filter. A name close to a filter's (a typo) is an
        error with the fix; any other word followed by a colon stays text ("http://")."""
        key = name.lower().replace("_", "-")
        if key in FILTER_NAMES:
            return True
        if op != ":" or len(key) < 3:
            return False
        close = difflib.get_close_matches(key, FILTER_NAMES, n=1, cutoff=0.75)
        if close and close[0] not in _EXAMPLES:
            raise self.fail(
                f"Unknown filter {name!r}",
                at,
                f"Did you mean {close[0]}:? (Write \"{name}:...\" in quotes to search for it as text.)",
            )
        return False

    # -- filters ------------------------------------------------------------------------------

    def filter_token(self, m: re.Match[str], negative: bool, start: int) -> None:
        name = m.group("name").lower().replace("_", "-")
        op = m.group("op")
        value_at = m.end()
        value, self.at, _ = self.value(value_at)
        if op == ":" and name in _COMPARED and value[:1] in "<>=" and value:
            # size:>2mb reads like size>2mb
            op_len = 2 if value[1:2] == "=" else 1
            op, value, value_at = value[:op_len], value[op_len:], value_at + op_len
        if not value.strip():
            raise self.fail(
                f"The filter {name}{op} has no value",
                value_at,
                _filter_help(name),
            )
        if op != ":" and name not in _COMPARED:
            raise self.fail(
                f"The filter {name} takes {name}:VALUE, not {name}{op}",
                m.start("op"),
                _filter_help(name),
            )
        if name in _COMPARED and op in (":", "="):
            op = "="
        if negative and name not in _LISTED:
            raise self.fail(
                f"-{name}: cannot be negated",
                start,
                f"Only kind:, folder: and ext: have a negative form. {_filter_help(name)}",
            )
        if name in _LISTED:
            self.listed(name, value, negative, value_at)
        elif name in _DATED:
            self.dated(name, value, value_at)
        elif name in _COMPARED:
            self.compared(name, op, value, value_at)
        elif name == "min":
            self.minimum(value, value_at)
        elif name == "image":
            self.images.append(value)
        else:
            self.audios.append(value)

    def listed(self, name: str, value: str, negative: bool, at: int) -> None:
        parts = [v.strip() for v in value.split(",")] if name != "folder" else [value]
        out = self.lists.setdefault(("not-" if negative else "") + name, [])
        offset = at
        for part in parts:
            if not part:
                raise self.fail(f"An empty value in {name}:", offset, _filter_help(name))
            if name == "kind":
                kind = KIND_NAMES.get(part.lower())
                if kind is None:
                    near = difflib.get_close_matches(part.lower(), KIND_NAMES, n=1, cutoff=0.6)
                    hint = f"Did you mean kind:{KIND_NAMES[near[0]]}? " if near else ""
                    raise self.fail(
                        f"Unknown kind {part!r}", offset, f"{hint}Kinds are image, text, audio and video."
                    )
                part = kind
            elif name == "ext":
                part = normal_extension(part)
                if not part:
                    raise self.fail(f"An empty value in {name}:", offset, _filter_help(name))
            if part not in out:
                out.append(part)
            offset += len(part) + 1

    def dated(self, name: str, value: str, at: int) -> None:
        m = _DATE.match(value.strip())
        if m is None:
            raise self.fail(
                f"{value!r} is not a date",
                at,
                f"Write dates as YYYY, YYYY-MM or YYYY-MM-DD, e.g. {name}:2021-06.",
            )
        year, month, day = int(m["y"]), m["m"], m["d"]
        try:
            start = date(year, int(month or 1), int(day or 1))
        except ValueError:
            raise self.fail(
                f"{value!r} is not a real date", at, "Check the month (1-12) and the day."
            ) from None
        if day:
            after = start.toordinal() + 1
            end = date.fromordinal(after) if after <= date.max.toordinal() else None
        elif month:
            last = calendar.monthrange(year, start.month)[1]
            end = date(year, start.month, last).toordinal() + 1
            end = date.fromordinal(end) if end <= date.max.toordinal() else None
        else:
            end = date(year + 1, 1, 1) if year < date.max.year else None
        lower = start.isoformat() + "T00:00:00"
        upper = end.isoformat() + "T00:00:00" if end else None
        if name == "after":
            self.bound("after", lower, max)
        elif name == "before":
            self.bound("before", lower, min)
        elif name == "modified-after":
            self.bound("modified_after", lower, max)
        elif name == "modified-before":
            self.bound("modified_before", lower, min)
        else:  # date: the whole period
            self.bound("after", lower, max)
            if upper:
                self.bound("before", upper, min)

    def bound(self, key: str, value: object, narrower) -> None:  # type: ignore[no-untyped-def]
        old = self.bounds.get(key)
        self.bounds[key] = value if old is None else narrower(old, value)

    def compared(self, name: str, op: str, value: str, at: int) -> None:
        if name == "duration":
            seconds = _seconds(value)
            if seconds is None:
                raise self.fail(f"{value!r} is not a length of time", at, _filter_help(name))
            # Lengths are measured, not counted: a bound is inclusive either way.
            if op in (">", ">="):
                self.bound("min_duration", seconds, max)
            elif op in ("<", "<="):
                self.bound("max_duration", seconds, min)
            else:
                self.bound("min_duration", seconds, max)
                self.bound("max_duration", seconds, min)
            return
        if name == "size":
            m = _SIZE.match(value.strip())
            if m is None:
                raise self.fail(
                    f"{value!r} is not a size",
                    at,
                    "Write a number with an optional unit: b, kb, mb, gb (e.g. size>2mb).",
                )
            amount = float(m["number"]) * _UNITS[(m["unit"] or "b").lower()]
        else:
            if not value.strip().isdigit():
                raise self.fail(
                    f"{value!r} is not a number of pixels", at, f"Write e.g. {name}>=1080."
                )
            amount = float(value)
        lower, upper = f"min_{name}", f"max_{name}"
        if op == ">":
            self.bound(lower, math.floor(amount) + 1, max)
        elif op == ">=":
            self.bound(lower, math.ceil(amount), max)
        elif op == "<":
            self.bound(upper, math.ceil(amount) - 1, min)
        elif op == "<=":
            self.bound(upper, math.floor(amount), min)
        else:
            self.bound(lower, round(amount), max)
            self.bound(upper, round(amount), min)

    def minimum(self, value: str, at: int) -> None:
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not (math.isfinite(score) and -1.0 <= score <= 1.0):
            raise self.fail(
                f"min:{value} is not a score", at, "Give a number from -1 to 1, e.g. min:0.3."
            )
        self.min_score = score if self.min_score is None else max(self.min_score, score)

    def filters(self) -> Filters:
        lists = self.lists
        return Filters(
            kinds=tuple(lists.get("kind", ())),
            folders=tuple(lists.get("folder", ())),
            extensions=tuple(lists.get("ext", ())),
            not_kinds=tuple(lists.get("not-kind", ())),
            not_folders=tuple(lists.get("not-folder", ())),
            not_extensions=tuple(lists.get("not-ext", ())),
            **self.bounds,  # type: ignore[arg-type]
        )


def _filter_help(name: str) -> str:
    return {
        "kind": "Write e.g. kind:image or kind:audio,text (kinds: image, text, audio, video).",
        "folder": 'Write e.g. folder:~/Pictures/2019, or folder:"~/My Photos".',
        "ext": "Write e.g. ext:jpg or ext:jpg,png.",
        "min": "Write e.g. min:0.3.",
        "image": "Write e.g. image:~/ref.jpg.",
        "audio": "Write e.g. audio:~/ref.wav.",
        "size": "Write e.g. size>2mb or size<=500kb.",
        "width": "Write e.g. width>=1920.",
        "duration": "Write e.g. duration>30s, duration<=2m or duration<1:30.",
        "height": "Write e.g. height<600.",
    }.get(name, f"Write e.g. {name}:2021-06 (YYYY, YYYY-MM or YYYY-MM-DD).")


def parse_query(query: str) -> ParsedQuery:
    """Read a whole query: terms, filters, cut-off and example files.

    Raises:
        QuerySyntaxError: a mistake, with its position and the fix.
        QueryError: nothing positive is left to search for (only negative terms).
    """
    return _Reader(query).run()


def parse_text(query: str) -> list[Term]:
    """The terms of a query (filters and examples read and dropped)."""
    return list(parse_query(query).terms)


def _quoted(text: str) -> str:
    return '"' + text + '"'


def _value(text: str) -> str:
    # A value holds a quote mark only when it was read bare (no spaces): it is written so again.
    return _quoted(text) if (not text or any(c.isspace() for c in text)) else text


def _number(value: float) -> str:
    return f"{value:g}" if f"{value:g}" != "inf" else repr(value)


def format_query(parsed: ParsedQuery) -> str:
    """`parsed` written as a query string in canonical form (`parse_query` reads it back equal)."""
    parts: list[str] = []
    for term in parsed.terms:
        weight = "" if term.weight == 1.0 else f"{term.weight!r}:"
        text = term.text
        first_loose = not parts and not (term.phrase or weight or term.negative)
        # Quoted unless it is the leading phrase of bare words, or cannot be (a bare word
        # holding a quote mark, which only a weighted or negative bare term can).
        bare = first_loose or ('"' in text and not any(c.isspace() for c in text))
        parts.append(("-" if term.negative else "") + weight + (text if bare else _quoted(text)))
    f = parsed.filters
    for key, values in (("kind", f.kinds), ("ext", f.extensions), ("-kind", f.not_kinds), ("-ext", f.not_extensions)):
        if values:
            parts.append(f"{key}:{','.join(values)}")
    parts += [f"folder:{_value(v)}" for v in f.folders]
    parts += [f"-folder:{_value(v)}" for v in f.not_folders]
    for key, value in (
        ("after", f.after),
        ("before", f.before),
        ("modified-after", f.modified_after),
        ("modified-before", f.modified_before),
    ):
        if value is not None:
            parts.append(f"{key}:{value[:10]}")
    for name in _COMPARED:
        low, high = getattr(f, f"min_{name}"), getattr(f, f"max_{name}")
        unit = "s" if name == "duration" else ""
        if low is not None:
            parts.append(f"{name}>={low!r}{unit}" if unit else f"{name}>={low}")
        if high is not None:
            parts.append(f"{name}<={high!r}{unit}" if unit else f"{name}<={high}")
    if parsed.min_score is not None:
        parts.append(f"min:{parsed.min_score!r}")
    parts += [f"image:{_value(p)}" for p in parsed.images]
    parts += [f"audio:{_value(p)}" for p in parsed.audios]
    return " ".join(parts)
