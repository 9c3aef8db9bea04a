"""The releases list in pages (site/pages.list_pages): every release on exactly one page, pages counted from
the oldest so that a new release changes the front page alone, and a rebuild equal to a fresh build."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import EXAMPLE_REGISTRY, run_relreg
from git_helpers import commit_all
from hypothesis import given
from hypothesis import strategies as st
from site_helpers import build_example_site, check_links

import relreg.site.jobs
import relreg.site.pages
from relreg.site.jobs import by_id_chunks
from relreg.site.pages import ListPage, list_pages


@dataclass(frozen=True)
class _View:
    id: int
    version: str


def _views(count: int) -> list[_View]:
    """`count` releases newest first, as release_views gives them (ids count up from the oldest)."""
    return [_View(number, f"v{number}") for number in range(count, 0, -1)]


def _paged(count: int, job_size: int, per_page: int) -> tuple[list[list[_View]], list[ListPage]]:
    chunks = by_id_chunks(_views(count), job_size)  # type: ignore[arg-type]
    return chunks, list_pages(chunks, per_page)  # type: ignore[arg-type]


def _members(chunks: list[list[_View]], page: ListPage) -> list[int]:
    return [view.id for index in page.chunks for view in chunks[index]]


@pytest.mark.parametrize("count, job_size, per_page, expected", [
    (0, 3, 2, [("releases/index.html", [])]),
    (1, 3, 2, [("releases/index.html", [1])]),
    (6, 3, 1, [("releases/index.html", [6, 5, 4, 3, 2, 1])]),  # two pages' worth: the front page alone
    (7, 3, 1, [("releases/index.html", [7, 6, 5, 4]), ("releases/page/1/index.html", [3, 2, 1])]),
    (12, 3, 1, [("releases/index.html", [12, 11, 10, 9, 8, 7]), ("releases/page/2/index.html", [6, 5, 4]),
                ("releases/page/1/index.html", [3, 2, 1])]),
    (13, 2, 2, [("releases/index.html", [13, 12, 11, 10, 9]), ("releases/page/2/index.html", [8, 7, 6, 5]),
                ("releases/page/1/index.html", [4, 3, 2, 1])]),
], ids=["empty", "one", "two pages' worth", "one more", "front page full", "pages of two chunks"])
def test_pages_hold_the_newest_on_the_front_and_number_the_rest_from_the_oldest(
        count: int, job_size: int, per_page: int, expected: list[tuple[str, list[int]]]) -> None:
    chunks, pages = _paged(count, job_size, per_page)
    assert [(page.path, _members(chunks, page)) for page in pages] == expected


def test_pages_link_their_neighbours_and_the_front_page_lists_every_other() -> None:
    _, pages = _paged(13, 1, 3)
    front, *older = pages
    assert [page.number for page in older] == [3, 2, 1]
    assert front.older == "releases/page/3/index.html" and front.newer is None
    assert front.others == (("releases/page/3/index.html", 7, 9), ("releases/page/2/index.html", 4, 6),
                            ("releases/page/1/index.html", 1, 3))
    assert [(page.newer, page.older) for page in older] == [
        ("releases/index.html", "releases/page/2/index.html"),
        ("releases/page/3/index.html", "releases/page/1/index.html"),
        ("releases/page/2/index.html", None)]
    assert (front.first_id, front.last_id, front.rows) == (10, 13, 4)


@given(count=st.integers(0, 200), job_size=st.integers(1, 7), per_page=st.integers(1, 5))
def test_every_release_is_on_one_page_and_a_new_one_changes_the_front_page_alone(
        count: int, job_size: int, per_page: int) -> None:
    chunks, pages = _paged(count, job_size, per_page)
    listed = [number for page in pages for number in _members(chunks, page)]
    assert listed == list(range(count, 0, -1))  # each once, newest first, front page first
    front, *older = pages
    assert all(page.rows == per_page * job_size for page in older)
    if older:
        assert per_page * job_size < front.rows < 2 * per_page * job_size + 1
    assert all((page.first_id, page.last_id) == (min(_members(chunks, page)), max(_members(chunks, page)))
               for page in older)

    grown_chunks, grown = _paged(count + 1, job_size, per_page)
    before = {page.path: (_members(chunks, page), page.older) for page in older}
    after = {page.path: (_members(grown_chunks, page), page.older) for page in grown[1:]}
    assert all(after[path] == kept for path, kept in before.items())  # an older page keeps its releases
    assert len(after) - len(before) in (0, 1)  # and a full front page hands one page over


def _release_files(repo: Path) -> list[Path]:
    return sorted((repo / "registry" / "releases").glob("*.yaml"))


def _add_release(repo: Path, version: str, day: str) -> None:
    """A copy of 1.0.0's file as `version`, with build ids of its own, committed on `day`."""
    text = (EXAMPLE_REGISTRY / "releases" / "1.0.0.yaml").read_text()
    suffix = f"{int(version.split('.')[1]):02x}"
    text = re.sub(r'^version: .*$', f'version: "{version}"', text, flags=re.M)
    text = re.sub(r'build_id: "?([0-9a-f]+?)[0-9a-f]{2}"?$', lambda m: f'build_id: "{m.group(1)}{suffix}"', text,
                  flags=re.M)
    text = text.replace("1.0.0", version)
    (repo / "registry" / "releases" / f"{version}.yaml").write_text(text)
    commit_all(repo, f"release {version}", f"{day}T10:00:00+00:00")


def _rows(page: Path) -> list[str]:
    return re.findall(r'<a class="k version" href="[^"]+">([^<]+)</a>', page.read_text())


def _sitemap_older_pages(out: Path) -> dict[str, tuple[str, set[str]]]:
    """Each older list page the sitemap names (releases/page/<n>/): its lastmod, and the lastmods the sitemap
    gives the release pages of the releases it shows."""
    sitemap = (out / "sitemap.xml").read_text()
    lastmod = dict(re.findall(r"<loc>https://[^/<]+/([^<]*)</loc><lastmod>([^<]+)</lastmod>", sitemap))
    return {path: (date, {lastmod[f"releases/{version}/"] for version in _rows(out / path / "index.html")})
            for path, date in lastmod.items() if path.startswith("releases/page/")}


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two releases a page (the example registry's 14 fill a front page and five older ones)."""
    monkeypatch.setattr(relreg.site.jobs, "JOB_SIZE", 1)
    monkeypatch.setattr(relreg.site.pages, "LIST_PAGE_RELEASES", 2)


def test_the_built_list_shows_each_release_once_links_every_page_and_rebuilds_only_the_front_page(
        tmp_path: Path, small_pages: None, monkeypatch: pytest.MonkeyPatch) -> None:
    out = build_example_site(tmp_path / "site")
    repo = tmp_path / "site" / "repo"
    pages = [out / "releases" / "index.html", *[out / "releases" / "page" / str(n) / "index.html"
                                                 for n in range(5, 0, -1)]]
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("releases/page/*/index.html")) == \
        [f"releases/page/{n}/index.html" for n in range(1, 6)]
    listed = [version for page in pages for version in _rows(page)]
    versions = [path.stem for path in _release_files(repo)]
    assert sorted(listed) == sorted(versions) and len(listed) == len(set(listed)) == 14
    assert check_links(out, "https://firmware.example.com/") == []
    front = pages[0].read_text()
    assert "14 releases, newest first: the newest 4 here" in front
    assert re.search(r'<option value="evt2">evt2 \(5 in all\)</option>', front)  # the filter acts on this page
    assert [f"page/{n}/index.html" in front for n in range(1, 6)] == [True] * 5
    oldest = pages[-1].read_text()
    assert "<h1>Releases 1–2</h1>" in oldest and 'rel="next"' not in oldest and 'rel="prev"' in oldest
    assert "(" not in re.search(r'<select id="hardware".*?</select>', oldest, re.S).group(0)  # no counts of all
    in_sitemap = _sitemap_older_pages(out)  # every older page, dated by the newest change to its releases
    assert sorted(in_sitemap) == [f"releases/page/{n}/" for n in range(1, 6)]
    assert all(date == max(dates) for path, (date, dates) in in_sitemap.items() if path < "releases/page/4/")
    assert all(date >= max(dates) for date, dates in in_sitemap.values())  # the two newest: or the last hand-over

    before = {page: (page.stat().st_ino, page.read_bytes()) for page in pages}
    front_rows = _rows(pages[0])
    _add_release(repo, "2.9.0", "2026-01-01")  # a page's worth on the front page already: its older half moves
    assert run_relreg("build", "--registry", repo / "registry", "--out", out).exit_code == 0
    page6 = out / "releases" / "page" / "6" / "index.html"
    assert _rows(pages[0]) == ["2.9.0", *front_rows[:2]] and _rows(page6) == front_rows[2:]
    assert 'href="../../../releases/page/6/index.html">Newer releases' in pages[1].read_text()
    in_sitemap = _sitemap_older_pages(out)
    assert sorted(in_sitemap) == sorted(f"releases/page/{n}/" for n in range(1, 7))
    # The new page 6 and page 5, whose "newer" link changed, date from the hand-over: 2.9.0's commit.
    assert [in_sitemap[f"releases/page/{n}/"][0] for n in (6, 5)] == ["2026-01-01T10:00:00Z"] * 2
    assert in_sitemap["releases/page/4/"][0] == max(in_sitemap["releases/page/4/"][1])
    assert all((page.stat().st_ino, page.read_bytes()) == before[page] for page in pages[2:])  # linked, untouched

    pages.insert(1, page6)
    before = {page: (page.stat().st_ino, page.read_bytes()) for page in pages}
    rendered: list[str] = []  # the pages rendered, by the way back to releases/ their rows are given
    real = relreg.site.pages.served_rows
    monkeypatch.setattr(relreg.site.pages, "served_rows",
                        lambda *args, back="": (rendered.append(back or "front"), real(*args, back=back))[1])
    _add_release(repo, "2.10.0", "2026-01-02")  # room on the front page: no other page changes
    assert run_relreg("build", "--registry", repo / "registry", "--out", out).exit_code == 0
    assert _rows(pages[0]) == ["2.10.0", "2.9.0", *front_rows[:2]]
    assert all((page.stat().st_ino, page.read_bytes()) == before[page] for page in pages[1:])
    assert set(rendered) == {"front"}  # an older page is linked by its key, not rendered again
    fresh = tmp_path / "fresh"
    assert run_relreg("build", "--registry", repo / "registry", "--out", fresh).exit_code == 0
    for path in [*out.glob("releases/index.html"), *out.glob("releases/page/*/index.html"), out / "sitemap.xml"]:
        assert path.read_bytes() == (fresh / path.relative_to(out)).read_bytes(), path


def test_a_list_of_two_pages_worth_is_one_page_without_paging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relreg.site.jobs, "JOB_SIZE", 1)
    monkeypatch.setattr(relreg.site.pages, "LIST_PAGE_RELEASES", 7)
    out = build_example_site(tmp_path / "site")
    front = (out / "releases" / "index.html").read_text()
    assert not (out / "releases" / "page").exists()
    assert len(_rows(out / "releases" / "index.html")) == 14 and "14 releases, newest first." in front
    assert "data-paged" not in front and 'id="elsewhere"' not in front and 'id="older"' not in front
    shutil.rmtree(out)
