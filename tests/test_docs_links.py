"""Every relative link and image in README.md and docs/**/*.md resolves in a clone.

Reports every dead link at once (file, line, target), not the first. A link to a heading
of another page (``page.md#part``) must name a heading of that page; a link that leaves
the repository (``../shared/...``) is dead in a clone, so it is refused too.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
# [words](target "title") and ![alt](target); reference-style definitions: [id]: target
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HTML = re.compile(r"""<(?:img|a)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.I)
FENCE = re.compile(r"^\s*(```|~~~)")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, seen, fenced = set(), {}, False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match and not fenced:
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(page: Path):
    """(line number, target) of every link and image outside code."""
    fenced = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        prose = re.sub(r"`[^`]*`", "", line)  # inline code is not a link
        for pattern in (INLINE, HTML):
            for match in pattern.finditer(prose):
                yield number, match.group(1)
        if match := DEFINITION.match(prose):
            yield number, match.group(1)


def dead_links() -> list[str]:
    dead = []
    for page in pages():
        where = page.relative_to(ROOT)
        for number, target in links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            path_part, _, fragment = target.partition("#")
            path = unquote(path_part)
            resolved = (page.parent / path).resolve() if path else page
            if ROOT not in (resolved, *resolved.parents):
                dead.append(f"{where}:{number}: {target} (outside the repository)")
            elif not resolved.exists():
                dead.append(f"{where}:{number}: {target} (no such file)")
            elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                dead.append(f"{where}:{number}: {target} (no heading #{fragment})")
    return dead


def test_every_relative_link_in_the_readme_and_docs_resolves():
    dead = dead_links()
    assert not dead, "dead links:\n" + "\n".join(dead)


def test_the_checker_finds_dead_links(tmp_path, monkeypatch):
    """The checker itself: a missing file, an image, a link out of the repository and a
    missing heading are each reported, all at once; good links and code are not."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# A heading\n\nText.\n", encoding="utf-8")
    (docs / "shot.png").write_bytes(b"png")
    (tmp_path / "README.md").write_text(
        "\n".join(
            [
                "# Title",
                "[fine](docs/good.md) [fine too](docs/good.md#a-heading) ![ok](docs/shot.png)",
                "[gone](docs/missing.md) and ![lost](docs/lost.png)",
                "[out](../shared/PATHWAY.md) [no part](docs/good.md#nowhere)",
                "[web](https://example.org/x) `[code](not/a/link.md)` [here](#title)",
                "```",
                "[fenced](not/a/link.md)",
                "```",
            ]
        ),
        encoding="utf-8",
    )
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert dead_links() == [
        "README.md:3: docs/missing.md (no such file)",
        "README.md:3: docs/lost.png (no such file)",
        "README.md:4: ../shared/PATHWAY.md (outside the repository)",
        "README.md:4: docs/good.md#nowhere (no heading #nowhere)",
    ]
