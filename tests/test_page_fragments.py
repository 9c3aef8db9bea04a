"""The row fragments the HTML pages make in Python (site/pages.py: the releases list's rows, a release page's
artifact table and download list, badges, dates): escaped exactly as the templates escape, whatever the values.

The example site's pages themselves are checked by test_site.py and the browser tests; here the values are
chosen to need escaping, which the schema would not let through a registry."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from urllib.parse import quote

import html5lib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import DictLoader, Environment, StrictUndefined, UndefinedError
from markupsafe import escape

from conftest import EXAMPLE_REGISTRY
from relreg.history.deployments import CohortChange
from relreg.registry.model import Activation, Artifact
from relreg.registry.source import read_worktree
from relreg.registry.validate import validate_files
from relreg.site import pages, template_cache
from relreg.site.charts import rollout_history
from relreg.site.jobs import ReleaseDates, ReleaseView, SiteInputs, release_views

HOSTILE = "a\"b'c<d>&e"


def _example_release(version: str = "2.1.0"):
    registry = validate_files(read_worktree(EXAMPLE_REGISTRY)).registry
    assert registry is not None
    return registry.release(version)


def _hostile_release():
    release = _example_release()
    artifacts = (
        Artifact(hardware_version=HOSTILE, build_id=HOSTILE, url=f"x/{HOSTILE}.bin", size=2048, sha256=HOSTILE,
                 software_type=HOSTILE),
        Artifact(hardware_version="pvt", build_id="ab" * 20, url="pvt-delta.bin", size=10, sha256="0" * 64,
                 type="delta", delta_from=HOSTILE),
    )
    return replace(release, artifacts=artifacts, revision=HOSTILE, yanked="gone")


@given(st.text())
def test_text_escapes_as_markupsafe_does(value: str) -> None:
    assert pages._text(value) == str(escape(value))


def test_text_of_numbers_and_clean_values_is_the_value() -> None:
    assert pages._text(415977) == "415977"
    assert pages._text("2.0.0-rc.1") == "2.0.0-rc.1"


def test_badges_and_dates() -> None:
    release = _example_release()
    assert pages.badges(release) == ""
    assert pages.badges(replace(release, yanked="bad", must_pass_through=True)) == \
        ' <span class="badge badge-danger">yanked</span> <span class="badge badge-info">required step</span>'
    assert pages.day(86_400) == '<time datetime="1970-01-02T00:00:00Z">1970-01-02</time>'


def _fragment_text(markup: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The texts and the attribute values of an HTML fragment, as a browser reads them."""
    tree = html5lib.parseFragment(f"<table><tbody>{markup}</tbody></table>" if markup.startswith("<tr")
                                  else f"<ul>{markup}</ul>", namespaceHTMLElements=False)
    texts = [text for element in tree.iter() for text in (element.text, element.tail) if text and text.strip()]
    attributes = [(name, value) for element in tree.iter() for name, value in element.attrib.items()]
    return texts, attributes


def test_artifact_table_escapes_every_value_and_keeps_its_structure() -> None:
    release = _hostile_release()
    rows = str(pages.artifact_table(release, True, {HOSTILE: object()}, "https://dl.example/fw/"))
    assert HOSTILE not in rows and "<d>" not in rows and "b'c" not in rows
    assert rows.count("<tr>") == 2 and rows.count("</tr>\n") == 2
    texts, attributes = _fragment_text(rows)
    assert HOSTILE in texts  # hardware, software type, build id, sha256 read back as written
    assert ("data-copy", HOSTILE) in attributes
    assert ("aria-label", f"Copy SHA-256 of {HOSTILE}.bin") in attributes
    assert ("href", f"../{quote(HOSTILE, safe='')}/index.html") in attributes  # the delta's base release has a page
    assert ("href", f"https://dl.example/fw/x/{HOSTILE}.bin") in attributes
    without_software = str(pages.artifact_table(release, False, {}, "https://dl.example/fw/"))
    assert f"<td>{html.escape(HOSTILE, quote=False)}" not in without_software
    assert f"delta from {escape(HOSTILE)}</td>" in without_software  # no page: not linked


def test_download_list_lists_full_images_by_hardware_escaped() -> None:
    release = _hostile_release()
    items = str(pages.download_list(release, "https://dl.example/fw/"))
    assert items.count("<li>") == 1  # the delta is not a download
    texts, attributes = _fragment_text(items)
    assert ("href", f"https://dl.example/fw/x/{HOSTILE}.bin") in attributes
    assert any(f"Download for {HOSTILE} ({HOSTILE})" in text for text in texts)


def test_release_list_row_escapes_and_marks_what_the_search_and_filter_read() -> None:
    release = _hostile_release()
    view = ReleaseView(id=1, release=release, dates=ReleaseDates(86_400, 86_400), stored_notes="", count_devices=0)
    row = pages.release_list_row(view)
    assert row.startswith(f'<tr data-hw="{escape(HOSTILE + " pvt")}">') and row.endswith("</tr>\n")
    texts, attributes = _fragment_text(row)
    assert ("data-sw", HOSTILE) in attributes and ("data-from", HOSTILE) in attributes
    assert texts.count(HOSTILE) >= 3  # chip, revision, build id
    assert "yanked" in texts and "1970-01-02" in texts
    assert len(re.findall(r'class="k id"', row)) == 3  # the revision and both build ids are searchable


# ---------------------------------------------------------------------------------------------
# Release pages: the page around the blocks rendered once (pages.PageFrame)


def _release_pages_inputs(**changes):  # type: ignore[no-untyped-def]
    registry = validate_files(read_worktree(EXAMPLE_REGISTRY)).registry
    config = changes.pop("config", None)
    if config:
        registry = replace(registry, config=replace(registry.config, **config))
    dates = {r.version: ReleaseDates(1_700_000_000 + i * 86_400, 1_700_000_000 + i * 90_000)
             for i, r in enumerate(registry.releases)}
    history = {"production": [
        CohortChange("a" * 40, 1_710_000_000, "Ana", "one", (Activation("2.0.1", 100.0),)),
        CohortChange("b" * 40, 1_720_000_000, "Bo", "two", (Activation("2.0.1", 100.0), Activation("2.1.0", 5.0))),
    ]}
    return replace(SiteInputs(registry=registry, release_dates=dates, cohort_history=history,
                              notes_html={r.version: f"<h2>Notes of {r.version}</h2><p>x &amp; y</p>"
                                          for r in registry.releases}), **changes)


@pytest.mark.parametrize("changes", [
    {},
    {"dirty": True, "commit": "c" * 40},
    {"device_counts": {"2.0.1": 1200, "2.1.0": 7}, "device_counts_date": "2024-05-01"},
    {"config": {"description": 'Firmware "for" <all> & more', "name": "Aurora & <Co>"}},
    {"config": {"repository_url": "https://git.example/fw/commit/{revision}"}},
    {"base_url": "https://fw.example.test/a&b/\"q\"/"},
])
def test_framed_release_pages_equal_the_template_rendered_whole(changes) -> None:  # type: ignore[no-untyped-def]
    inputs = _release_pages_inputs(**changes)
    views = release_views(inputs)
    data = pages.site_data(inputs, views)
    series = rollout_history(inputs.cohort_history, inputs.registry.cohorts).by_release
    renderer = pages.ReleasePages(data)
    template = pages.environment().get_template("release.html")
    assert len(views) >= 5
    for index, view in enumerate(views):
        newer = views[index - 1] if index else None
        older = views[index + 1] if index + 1 < len(views) else None
        context = renderer.context(view, newer, older, series.get(view.version, ()))
        assert renderer.render(view, newer, older, series.get(view.version, ())) == \
            template.render(**context).encode(), view.version


_BASE = ('<title>{% block title %}{% endblock %}</title>{% if site.description %}<meta content="{% block '
         'description %}{{ site.description }}{% endblock %}">{% endif %}<link href="{{ canonical }}">'
         '<nav>{% if path.startswith("pages/") %}<b>in pages</b>{% endif %}{% if path == "index.html" %}home'
         '{% endif %}</nav>{% block main %}{% endblock %}<footer>{% block foot %}base foot{% endblock %}</footer>')
_PAGE = ('{% extends "base.html" %}{% block title %}{{ name }} · {{ site.name }}{% endblock %}'
         '{% block main %}<h1>{{ name }}</h1>{% endblock %}{% block foot %}{{ super() }} and {{ name }}{% endblock %}')


def _frame_templates(base: str = _BASE, page: str = _PAGE):  # type: ignore[no-untyped-def]
    env = Environment(loader=DictLoader({"base.html": base, "page.html": page}), autoescape=True,
                      undefined=StrictUndefined)
    return env.get_template("page.html")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=12), st.text(max_size=12), st.text(max_size=12), st.booleans())
def test_a_frame_renders_what_the_template_renders(name: str, segment: str, canonical: str,
                                                   described: bool) -> None:
    template = _frame_templates()
    site = {"name": "S<&>", "description": "d\"'" if described else ""}
    frame = pages.PageFrame.of(template, {"site": site}, "pages/", "/index.html")
    context = {"site": site, "name": name, "path": f"pages/{segment}/index.html", "canonical": canonical}
    assert frame.render(context) == template.render(**context)


def test_a_frame_prints_the_path_segment_of_each_page() -> None:
    template = _frame_templates(_BASE.replace("<nav>", '<nav data-page="{{ path }}">'))
    frame = pages.PageFrame.of(template, {"site": {"name": "S", "description": ""}}, "pages/", "/index.html")
    for segment in ("1.0.0", "a&b"):
        context = {"site": {"name": "S", "description": ""}, "name": "n", "path": f"pages/{segment}/index.html",
                   "canonical": "https://x/"}
        assert f'data-page="pages/{escape(segment)}/index.html"' in frame.render(context)
        assert frame.render(context) == template.render(**context)


@pytest.mark.parametrize(("base", "error"), [
    (_BASE.replace("<nav>", "<nav>{{ name }}"), UndefinedError),  # a page's variable outside a block
    (_BASE.replace("<nav>", "<nav>{{ path|upper }}"), ValueError),  # the path, transformed
    (_BASE.replace("<nav>", "<nav>{{ canonical[:5] }}"), ValueError),
])
def test_a_frame_refuses_a_base_template_that_reads_what_varies_between_pages(base: str, error: type) -> None:
    with pytest.raises(error):
        pages.PageFrame.of(_frame_templates(base), {"site": {"name": "S", "description": ""}}, "pages/", "/index.html")


def test_a_frame_refuses_a_page_of_another_family() -> None:
    frame = pages.PageFrame.of(_frame_templates(), {"site": {"name": "S", "description": ""}}, "pages/", "/index.html")
    with pytest.raises(ValueError):
        frame.render({"site": {"name": "S", "description": ""}, "name": "n", "path": "other/1/index.html",
                      "canonical": ""})


def _human_size_by_steps(size: int) -> str:
    """human_size as first written: divided by 1024 until it fits a unit."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


@given(st.one_of(st.integers(min_value=0, max_value=2**70),
                 st.integers(min_value=1, max_value=70).map(lambda bits: 2**bits - 1),
                 st.integers(min_value=1, max_value=70).map(lambda bits: 2**bits)))
def test_human_size_equals_dividing_step_by_step(size: int) -> None:
    assert pages.human_size(size) == _human_size_by_steps(size)


@given(st.one_of(st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=3)))
def test_extra_values_that_are_not_text_show_as_json(value: object) -> None:
    import json
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    assert str(pages.extra_value(value)) == f"<code>{escape(text)}</code>"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(), st.one_of(st.just(0), st.integers(min_value=1, max_value=4_000_000_000))),
                max_size=8))
def test_the_sitemap_made_in_python_equals_the_template(urls: list[tuple[str, int]]) -> None:
    template = pages.environment().get_template("sitemap.xml")
    assert pages.sitemap_xml(urls) == template.render(urls=urls).encode()


def test_templates_kept_compiled_give_the_same_pages_and_a_lost_folder_costs_nothing(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    env = pages.environment().overlay()  # its own caches, the same templates and filters
    monkeypatch.setattr(template_cache, "environment", lambda: env)
    plain = env.get_template("sitemap.xml").render(urls=[("https://x/", 1)])
    template_cache.keep_compiled_templates(tmp_path)
    folder, = tmp_path.glob("templates-*")
    env.cache.clear()
    assert env.get_template("sitemap.xml").render(urls=[("https://x/", 1)]) == plain  # compiled and written
    assert list(folder.iterdir())
    env.cache.clear()
    assert env.get_template("sitemap.xml").render(urls=[("https://x/", 1)]) == plain  # loaded
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    env.cache.clear()
    assert env.get_template("sitemap.xml").render(urls=[("https://x/", 1)]) == plain  # nowhere to write: compiled


# release.html's list of facts as the template wrote it before pages.release_facts made it in Python.
_FACTS_TEMPLATE = """<dl class="facts">
<dt>Released</dt><dd><time datetime="{{ view.dates.created|iso }}">{{ view.dates.created|when }}</time></dd>
{% if view.dates.updated != view.dates.created %}
<dt>Last updated</dt><dd><time datetime="{{ view.dates.updated|iso }}">{{ view.dates.updated|when }}</time></dd>
{% endif %}
<dt>Revision</dt><dd>{% if release.revision %}{% set commit_url = site.config.commit_url(release.revision) %}{% if commit_url %}<a href="{{ commit_url }}"><code>{{ release.revision }}</code></a>{% else %}<code>{{ release.revision }}</code>{% endif %}{% else %}<span class="muted">not given</span>{% endif %}</dd>
<dt>Minimum version</dt><dd>{% if release.min_version %}{% if release.min_version in site.by_version %}<a href="../{{ release.min_version|segment }}/index.html">{{ release.min_version }}</a>{% else %}{{ release.min_version }}{% endif %}: devices on an older version install an earlier release first{% else %}<span class="muted">none: any version can update to it</span>{% endif %}</dd>
{% if release.must_pass_through and release.is_yanked %}
<dt>Required step</dt><dd>It was a required step (must pass through); being yanked, it no longer holds devices back: devices on an older version install newer releases directly, without it.</dd>
{% elif release.must_pass_through %}
<dt>Required step</dt><dd>Devices on an older version must install this release before any newer one.</dd>
{% endif %}
<dt>Hardware</dt><dd>{% for name in release.hardware_versions %}<a class="chip" href="../../hardware/{{ name }}/index.html">{{ name }}</a> {% endfor %}</dd>
<dt>Cohorts</dt><dd>{% for row in cohorts %}<a href="../../cohorts/{{ row.cohort.slug }}/index.html">{{ row.cohort.name }}</a>&nbsp;<span class="muted">({{ row.activation.rollout_percent|percent }}{% if row.held_back %}; held back on {{ row.held_back|join(", ") }} in {{ row.cohort.slug }}{% endif %})</span>{{ ", " if not loop.last }}{% else %}<span class="muted">not active in any cohort</span>{% endfor %}</dd>
{% if site.has_device_counts %}
<dt>Devices</dt><dd>{{ "{:,}".format(view.count_devices) }} running it{% if site.device_counts_date %}, in the snapshot of <time datetime="{{ site.device_counts_date }}">{{ site.device_counts_date }}</time>{% endif %}</dd>
{% endif %}
<dt>Update path</dt><dd><a href="../../update/index.html?current={{ view.version|urlencode }}">Plan an update from {{ view.version }}</a></dd>
<dt>JSON</dt><dd><a href="../../api/v1/releases/{{ view.version|segment }}.json">api/v1/releases/{{ view.version }}.json</a></dd>
</dl>"""


def _facts_cases():  # type: ignore[no-untyped-def]
    hostile = _hostile_release()
    yield from [({}, None), ({"device_counts": {"2.0.1": 1200, "2.1.0": 7}, "device_counts_date": "2024-05-01"}, None),
                ({"device_counts": {"2.1.0": 1234567}}, None),
                ({"config": {"repository_url": "https://git.example/fw/commit/{revision}?a=1&b=<2>"}}, hostile),
                ({}, replace(hostile, min_version="2.0.1", must_pass_through=True, revision=None)),
                ({}, replace(hostile, must_pass_through=True, yanked=None)),
                ({"device_counts": {"2.1.0": 3}}, replace(hostile, min_version=HOSTILE, version=f"{HOSTILE} 1/2%"))]


@pytest.mark.parametrize(("changes", "extra"), list(_facts_cases()))
def test_release_facts_equal_what_the_template_wrote(changes, extra) -> None:  # type: ignore[no-untyped-def]
    inputs = _release_pages_inputs(**changes)
    registry = inputs.registry
    if extra is not None:  # a release with values that need escaping, in a cohort, holding some hardware back
        version = extra.version if extra.version != "2.1.0" else "9.9.9"
        extra = replace(extra, version=version)
        held = replace(registry.cohorts[0], name=HOSTILE, releases=(
            *registry.cohorts[0].releases, Activation(version, 12.5, (HOSTILE,))))
        registry = replace(registry, releases=(*registry.releases, extra), cohorts=(held, *registry.cohorts[1:]))
        inputs = replace(inputs, registry=registry, release_dates={**inputs.release_dates,
                                                                   version: ReleaseDates(5, 7)})
    views = release_views(inputs)
    data = pages.site_data(inputs, views)
    template = pages.environment().from_string(_FACTS_TEMPLATE)
    assert any(data.cohorts_of_release.get(view.version) for view in views)
    for view in views:
        cohorts = data.cohorts_of_release.get(view.version, ())
        expected = template.render(view=view, release=view.release, site=data, cohorts=cohorts)
        assert str(pages.release_facts(view, data, cohorts)) == expected, view.version


@pytest.mark.parametrize(("yanked", "says", "never"), [
    (None, "must install this release before any newer one", "no longer holds devices back"),
    ("corrupts settings", "being yanked, it no longer holds devices back", "must install this release"),
])
def test_a_yanked_required_step_says_it_no_longer_holds_devices_back(yanked, says, never) -> None:  # type: ignore[no-untyped-def]
    inputs = _release_pages_inputs()
    registry = inputs.registry
    release = replace(registry.releases[0], must_pass_through=True, yanked=yanked)
    inputs = replace(inputs, registry=replace(registry, releases=(release, *registry.releases[1:])))
    views = release_views(inputs)
    data = pages.site_data(inputs, views)
    [view] = [view for view in views if view.version == release.version]
    facts = str(pages.release_facts(view, data, data.cohorts_of_release.get(view.version, ())))
    assert "<dt>Required step</dt>" in facts and says in facts and never not in facts
