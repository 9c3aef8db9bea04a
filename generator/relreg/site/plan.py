"""The plan: a pure function from the model to the site's files.

`plan_site` takes everything that varies (dates, device counts, the commit,
the base URL) as input and returns {output path: bytes}. No clock, no disk,
no git: the same inputs always give byte-identical output. `plan_jobs` gives
the same files as independent jobs, for the writer to spread over processes;
`plan_sections` gives them with the jobs of whole parts of the site held in
sections (jobs.KeyedSection), planned only when their key changed.
"""

from __future__ import annotations


from relreg.site.api import api_plan
from relreg.site.device_documents import device_section
from relreg.site.jobs import KeyedSection, PlanJob, SiteInputs, expand_sections, merge_jobs, release_views
from relreg.site.pages import site_jobs
from relreg.site.serving import serving_files


def plan_sections(inputs: SiteInputs) -> "list[PlanJob | KeyedSection]":
    """The whole site but its serving configuration (which needs every path: see serving_files), with the
    JSON API made from the releases and the device documents as sections (see jobs.KeyedSection)."""
    views = release_views(inputs)
    schemas = {f"schemas/{name}": content for name, content in inputs.input_schemas.items()}
    api, site = api_plan(inputs, views), site_jobs(inputs, views)
    # The jobs over every release first (the API's are the first of its section), so that workers never wait
    # on them at the end.
    return [api[0], site[0], *api[1:], device_section(inputs, views), *site[1:], lambda: dict(schemas)]


def plan_jobs(inputs: SiteInputs) -> list[PlanJob]:
    """plan_sections with every section planned: the site's jobs."""
    return expand_sections(plan_sections(inputs))


def plan_site(inputs: SiteInputs) -> dict[str, bytes]:
    """Every file of the site, by path relative to the output folder."""
    files = merge_jobs(plan_sections(inputs))
    files.update(serving_files(list(files)))
    return dict(sorted(files.items()))
