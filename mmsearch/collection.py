"""What a collection holds and keeps out: forgetting files and folders, exclusion patterns, and
taking a folder back in. `Library` holds the write lock and saves the vector stores around these;
the rules of what is forgotten and excluded live here.
"""

from __future__ import annotations

import os
from pathlib import Path

from mmsearch.errors import MmsearchError, NotIndexedError, QueryError
from mmsearch.media.ignore import Ignore, is_path_pattern
from mmsearch.media.paths import canonical_path, is_within
from mmsearch.store.catalog import Catalog
from mmsearch.store.spaces import SpaceSet


def exclusion(pattern: str) -> str:
    """`pattern` as stored: a path made canonical, or a gitignore-style pattern checked.

    Raises:
        QueryError: the pattern is empty or not valid gitignore syntax.
    """
    text = str(pattern).strip()
    if not text:
        raise QueryError("An exclusion pattern is empty; give a path or a glob like '*.tmp'.")
    if is_path_pattern(text):
        return canonical_path(text)
    try:
        Ignore([text])
    except ValueError as exc:
        raise QueryError(f"{text!r} is not a valid gitignore-style pattern: {exc}") from exc
    return text


def include_named(catalog: Catalog, roots: list[str]) -> None:
    """A folder the user names again is wanted: drop exclusions of it or below it.

    Raises:
        MmsearchError: a named folder lies inside an excluded one (include that first).
    """
    for excluded in filter(is_path_pattern, catalog.exclusions()):
        for root in roots:
            if is_within(excluded, root):
                catalog.remove_exclusions([excluded])
            elif is_within(root, excluded):
                raise MmsearchError(
                    f"{root} lies inside {excluded}, which is excluded from the index; "
                    f"`mmsearch include {excluded}` first."
                )


def remove(catalog: Catalog, spaces: SpaceSet, targets: list[str], index: Path) -> int:
    """Forget `targets` (canonical paths); a folder indexed on its own goes with everything under
    it, a path inside an indexed folder is also excluded. Returns how many items were forgotten.

    Raises:
        NotIndexedError: a path the index does not hold.
    """
    roots = catalog.roots()
    ids: list[int] = []
    for target in targets:
        rows = catalog.items_under(target)
        # A path inside an indexed folder that exists but holds nothing indexed (yet) can
        # still be excluded; one that exists nowhere is a typo.
        inside = os.path.exists(target) and any(is_within(target, r) for r in roots)
        if not rows and target not in roots and not inside:
            raise NotIndexedError(
                f"{target} is not in the index at {index}; `mmsearch info` lists "
                "the indexed folders."
            )
        ids += [row.id for row in rows.values()]
    spaces.remove(catalog.delete_items(ids))
    for target in targets:
        if target in roots:
            catalog.remove_root(target)
            below = [e for e in catalog.exclusions() if is_path_pattern(e) and is_within(e, target)]
            catalog.remove_exclusions(below)
        elif any(is_within(target, r) for r in roots):
            catalog.add_exclusions([target])
    return len(ids)


def exclude(catalog: Catalog, spaces: SpaceSet, patterns: list[str]) -> int:
    """Add the (already checked) `patterns` and forget the items they match. Returns the count."""
    catalog.add_exclusions(patterns)
    ignore = Ignore(patterns)
    ids = []
    for root in catalog.roots():
        rules = ignore.for_root(root)
        ids += [row.id for path, row in catalog.items_under(root).items()
                if rules.excludes(path, is_dir=False) or _dir_excluded(rules, path, root)]
    spaces.remove(catalog.delete_items(ids))
    return len(ids)


def include(catalog: Catalog, patterns: list[str]) -> None:
    """Drop the exclusions `patterns`; the next indexing run finds their files again.

    Raises:
        NotIndexedError: a pattern that is not excluded.
    """
    known = set(catalog.exclusions())
    unknown = [p for p in patterns if p not in known]
    if unknown:
        raise NotIndexedError(f"{unknown[0]} is not excluded; `mmsearch info` lists the exclusions.")
    catalog.remove_exclusions(patterns)


def _dir_excluded(rules: Ignore, path: str, root: str) -> bool:
    """True when a folder between `root` and `path` is excluded (a pattern like `cache/`)."""
    folder = os.path.dirname(path)
    while is_within(folder, root) and folder != root:
        if rules.excludes(folder, is_dir=True):
            return True
        folder = os.path.dirname(folder)
    return False
