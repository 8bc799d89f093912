"""What an indexing run has to do: walk the roots, diff what it found against the catalog, and
recognise by content the files that were only touched or moved, so they are not encoded again.
A root that is not there (an unplugged drive, an empty mount point) keeps its items, offline."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from mmsearch.errors import MediaError
from mmsearch.ingest_run import RunState, ordered_map
from mmsearch.media import FoundFile, Unreadable, discover, name_words
from mmsearch.media.contents import file_hash_streamed
from mmsearch.media.ignore import Ignore
from mmsearch.media.paths import canonical_path
from mmsearch.results import Progress
from mmsearch.store.catalog import Catalog
from mmsearch.store.catalog_items import ItemRow


@dataclass(frozen=True)
class Job:
    """A file to hash and maybe encode: where it was found, and the catalog's row for its path."""

    file: FoundFile
    root: str
    row: ItemRow | None
    resume_at: float | None = None
    """A film an interrupted run committed in part, unchanged since: the seconds to go on from."""


@dataclass
class Plan:
    roots: list[str] = field(default_factory=list)
    """The roots that are online (scanned)."""
    unreadable: list[Unreadable] = field(default_factory=list)
    """What the scan found but could not read."""
    to_encode: list[Job] = field(default_factory=list)
    missing: dict[str, ItemRow] = field(default_factory=dict)
    """Known items of the scanned roots whose files are gone."""
    offline: dict[str, ItemRow] = field(default_factory=dict)
    """Items of offline roots: kept; their content found at new paths is a move only when all
    of a root's items were found (the folder was renamed), else those files are copies."""
    offline_root: dict[str, str] = field(default_factory=dict)
    """The offline root of each item in `offline`."""


def offline_note(root: str, items: int, why: str) -> str:
    return (
        f"{root} {why}: its {items} item(s) are kept (still searchable) until it comes back. "
        f"If it is gone for good, `mmsearch remove {shlex.quote(root)}` forgets it."
    )


def normalise_roots(folders: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Canonical root paths (see `canonical_path`), each once, in the order given."""
    return list(dict.fromkeys(canonical_path(folder) for folder in folders))


class Planner:
    """Scan, diff and hash for one run: what is new or changed, moved, touched, gone."""

    def __init__(self, catalog: Catalog, state: RunState) -> None:
        self.catalog = catalog
        self._state = state
        self.report = state.report

    def plan(self, roots: list[str], verify: bool) -> Plan:
        """Scan `roots` and diff them against the catalog; with `verify`, unchanged-looking
        files are to be hashed too. Roots that are not there are marked offline."""
        present = [root for root in roots if os.path.exists(root)]
        for root in roots:
            if root not in present:
                self.mark_offline(root, "is missing (an unmounted drive, or renamed?)")
        found, unreadable, online = self._scan(present)
        for root in present:
            if root not in online:
                self.mark_offline(root, "is empty although it held indexed files (an empty mount point?)")
        for root in online:
            self.catalog.set_root_missing(root, False)
        return self._diff(online, found, unreadable, verify)

    # -- roots that are not there -------------------------------------------------------------

    def mark_offline(self, root: str, why: str) -> None:
        self.catalog.set_root_missing(root, True)
        self.report.offline.append(root)
        self.report.notes.append(offline_note(root, self.catalog.count_under(root), why))

    def _offline_roots(self) -> list[str]:
        """Every known root that is offline now: found so by this run, or not there at all. (A
        root marked offline earlier that exists again is not: its files may be back, and taking
        them for moves would steal them from it.)"""
        return [
            path
            for path in self.catalog.roots()
            if path in self.report.offline or not os.path.exists(path)
        ]

    def forget_emptied_offline_roots(self) -> None:
        """An offline root whose every item turned up elsewhere was moved: forget the old name."""
        for root in self._offline_roots():
            if self.report.moved and self.catalog.count_under(root) == 0:
                self.catalog.remove_root(root)
                self.report.notes.append(f"{root} was moved or renamed; its files were found elsewhere.")

    # -- scan and diff ------------------------------------------------------------------------

    def _scan(
        self, roots: list[str]
    ) -> tuple[dict[str, tuple[FoundFile, str]], list[Unreadable], list[str]]:
        """Walk the roots; returns what was found, what could not be read, and the roots that
        are online (an existing root that turned up nothing while the index holds files from it
        is taken for an empty mount point, not for everything deleted)."""
        found: dict[str, tuple[FoundFile, str]] = {}
        unreadable: list[Unreadable] = []
        online = []
        ignore = Ignore(self.catalog.exclusions())
        for root in roots:
            seen = 0
            try:
                entries = discover([root], ignore)
                for entry in entries:
                    self._state.stop_if_cancelled()
                    seen += 1
                    if isinstance(entry, Unreadable):
                        unreadable.append(entry)
                    else:
                        found.setdefault(entry.path, (entry, root))
                        if len(found) % 1000 == 0:
                            self._state.progress(Progress("scan", len(found), 0, entry.path))
            except MediaError:  # vanished between the check and the walk
                self.mark_offline(root, "vanished during the scan")
                continue
            if seen == 0 and self.catalog.count_under(root) > 0:
                continue
            online.append(root)
        self.report.scanned = len(found)
        self._state.progress(Progress("scan", len(found), len(found)))
        return found, unreadable, online

    def _diff(
        self,
        roots: list[str],
        found: dict[str, tuple[FoundFile, str]],
        unreadable: list[Unreadable],
        verify: bool,
    ) -> Plan:
        known: dict[str, ItemRow] = {}
        for root in roots:
            known.update(self.catalog.items_under(root))
        plan = Plan(roots=roots, unreadable=unreadable)
        for path, (entry, root) in found.items():
            row = known.get(path)
            same_stat = row is not None and (row.size, row.mtime_ns) == (entry.size, entry.mtime_ns)
            if same_stat and not verify and not (row is not None and row.partial):
                self.report.unchanged += 1
            else:
                plan.to_encode.append(Job(entry, root, row))
        skipped = {u.path for u in unreadable}
        plan.missing = {p: r for p, r in known.items() if p not in found and p not in skipped}
        for root in self._offline_roots():
            items = self.catalog.items_under(root)
            plan.offline.update(items)
            plan.offline_root.update(dict.fromkeys(items, root))
        return plan

    # -- touched and moved files --------------------------------------------------------------

    def hash_candidates(self, plan: Plan, pool: ThreadPoolExecutor) -> None:
        """Recognise touched and moved files by content so they are not encoded again."""
        vanished = [*plan.missing.values(), *plan.offline.values()]
        moved_from: dict[tuple[str, str], ItemRow] = {
            (row.hash, row.kind): row for row in vanished if row.hash and row.status == "ok"
        }
        if not plan.to_encode:
            return

        def hash_one(job: Job) -> str | None:
            try:
                return file_hash_streamed(job.file.path)
            except MediaError:
                return None  # the decode stage records the reason

        # Only a file that replaces a known one can be a touch, and only while some known file
        # vanished can a new path be a move: a fresh index hashes nothing here.
        worth = [job for job in plan.to_encode if job.row is not None or moved_from]
        digests = dict(zip((job.file.path for job in worth), ordered_map(pool, hash_one, worth, 64)))
        still: list[Job] = []
        touches: list[tuple[int, int, int]] = []
        moves: list[tuple[int, str, str, int, int, str]] = []
        from_offline: list[tuple[ItemRow, Job]] = []
        total = len(plan.to_encode)
        for done, job in enumerate(plan.to_encode, 1):
            self._state.stop_if_cancelled()
            entry, row = job.file, job.row
            if done % 200 == 0 or done == total:
                self._state.progress(Progress("hash", done, total, entry.path))
            digest = digests.get(entry.path)
            if digest is None:
                still.append(job)
                continue
            if row is not None and row.hash == digest and row.status == "ok" and row.partial:
                still.append(replace(job, resume_at=row.indexed_until))  # the same film: go on
                continue
            if row is not None and row.hash == digest and row.status == "ok":
                if (row.size, row.mtime_ns) != (entry.size, entry.mtime_ns):
                    touches.append((row.id, entry.size, entry.mtime_ns))
                self.report.unchanged += 1
                continue
            moved = moved_from.pop((digest, entry.kind), None)
            if moved is not None and row is None and moved.path in plan.offline_root:
                from_offline.append((moved, job))  # a move or a copy: decided below, per root
                continue
            if moved is not None and row is None:
                words = name_words(entry.path)
                moves.append((moved.id, entry.path, job.root, entry.size, entry.mtime_ns, words))
                plan.missing.pop(moved.path, None)
                plan.offline.pop(moved.path, None)
                self.report.moved += 1
                if moved.partial:  # a film moved part-way: go on at its new path
                    still.append(Job(entry, job.root, moved, moved.indexed_until))
                continue
            still.append(job)
        still += self._offline_moves(plan, from_offline, moves)
        # Re-stamping 20,000 touched files one transaction each took longer than indexing them.
        self.catalog.touch_many(touches)
        self.catalog.move_many(moves)
        plan.to_encode = still

    def _offline_moves(
        self,
        plan: Plan,
        found: list[tuple[ItemRow, Job]],
        moves: list[tuple[int, str, str, int, int, str]],
    ) -> list[Job]:
        """Sort the files whose content matches an item of an offline root into moves (added to
        `moves`) and copies (returned, to be indexed as new items).

        An offline root may only be unplugged: a file of it that turns up elsewhere is then a
        copy, and taking it for a move would take the item from the folder that comes back. A
        root every one of whose items turned up elsewhere was renamed or moved as a whole: those
        are moves (no re-encoding), and the old root is forgotten.
        """
        matched: dict[str, int] = {}
        for source, _ in found:
            root = plan.offline_root[source.path]
            matched[root] = matched.get(root, 0) + 1
        movable = {
            root for root, n in matched.items()
            if n == sum(1 for r in plan.offline.values()
                        if plan.offline_root[r.path] == root and r.hash and r.status == "ok")
        }
        copies: list[Job] = []
        for source, job in found:
            if plan.offline_root[source.path] not in movable:
                copies.append(job)
                continue
            entry = job.file
            moves.append((source.id, entry.path, job.root, entry.size, entry.mtime_ns, name_words(entry.path)))
            plan.offline.pop(source.path, None)
            self.report.moved += 1
        return copies
