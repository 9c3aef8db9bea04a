"""The plan: a pure function from the model to the site's files.

`plan_site` takes everything that varies (dates, device counts, the commit,
the base URL) as input and returns {output path: bytes}. No clock, no disk,
no git: the same inputs always give byte-identical output. `plan_jobs` gives
the same files as independent jobs, for the writer to spread over processes.
"""

from __future__ import annotations


from relreg.site.api import api_jobs
from relreg.site.device_documents import device_jobs
from relreg.site.jobs import PlanJob, SiteInputs, merge_jobs, release_views
from relreg.site.pages import site_jobs
from relreg.site.serving import serving_files


def plan_jobs(inputs: SiteInputs) -> list[PlanJob]:
    """The whole site but its serving configuration (which needs every path: see serving_files)."""
    views = release_views(inputs)
    schemas = {f"schemas/{name}": content for name, content in inputs.input_schemas.items()}
    api, site = api_jobs(inputs, views), site_jobs(inputs, views)
    # The jobs over every release first, so that workers never wait on them at the end.
    return [api[0], site[0], *api[1:], *device_jobs(inputs, views), *site[1:], lambda: dict(schemas)]


def plan_site(inputs: SiteInputs) -> dict[str, bytes]:
    """Every file of the site, by path relative to the output folder."""
    files = merge_jobs(plan_jobs(inputs))
    files.update(serving_files(list(files)))
    return dict(sorted(files.items()))
