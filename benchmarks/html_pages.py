"""relreg's HTML pages alone, for the side-by-side with Hugo: `python html_pages.py REGISTRY OUT`.

Does what a static site generator does for these pages and nothing more of relreg's build: reads
and validates the registry (no cache, as Hugo reads every front matter), dates the releases from
git, renders the Markdown notes (no cache), and renders and writes the release pages and the list
pages (home, releases list, one page per hardware version) with relreg's writer on every core. The
JSON API, feeds, sitemap and serving files are not written (the feeds and sitemap are rendered by
the same jobs as the list pages and dropped, which counts against relreg). Prints the number of
pages written.

The dates come from relreg's git history cache, which bench.py warms with an untimed run first:
Hugo is handed the same dates in front matter, read from one `git log` before its runs are timed,
so neither side's timed run walks the history (relreg's walk of 10,000 commits is measured by the
full builds of `make bench`). `--cold-history` walks it anyway.
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

from relreg.build import _dates
from relreg.history import gitlog
from relreg.history.cache import WorkCache
from relreg.registry.source import read_worktree
from relreg.registry.validate import validate_files
from relreg.site.jobs import SiteInputs, job_files, release_views
from relreg.site.notes import render_all
from relreg.site.pages import site_jobs
from relreg.site.write import write_jobs


def pages_only(job):
    def run():
        return [(path, content) for path, content in job_files(job()) if path.endswith("index.html")]
    return run


def main() -> None:
    arguments = [argument for argument in sys.argv[1:] if argument != "--cold-history"]
    registry_dir, out = Path(arguments[0]), Path(arguments[1])
    files = read_worktree(registry_dir)
    result = validate_files(files)
    assert result.registry is not None, "the benchmark registry is valid"
    repo = gitlog.open_repository(registry_dir)
    prefix = gitlog.registry_prefix(repo, registry_dir)
    history = gitlog.read_history(repo, gitlog.resolve_commit(repo, "HEAD"), prefix,
                                  use_cache="--cold-history" not in sys.argv)
    # build._dates took the validation result before the twelfth session, the registry since: this script
    # runs against a baseline's code too.
    takes_result = next(iter(inspect.signature(_dates).parameters)) == "result"
    release_dates, cohort_dates = _dates(result if takes_result else result.registry, history, set(), files.root,
                                         gitlog.build_time(), [])
    registry = result.registry
    notes = render_all([(r.notes, r.notes_format) for r in registry.releases], WorkCache())
    # As build.py does: the release files' blob ids stand for their content in the pages' keys, and the
    # forked workers do not inherit the raw files and parsed documents.
    blob_ids = {file.path: file.blob_id for file in files.files}
    inputs = SiteInputs(registry=registry, release_dates=release_dates, cohort_dates=cohort_dates,
                        notes_html={r.version: html for r, html in zip(registry.releases, notes)},
                        release_keys={r.version: blob_ids[r.source_path] for r in registry.releases
                                      if r.source_path in blob_ids})
    del files, blob_ids
    result.documents.clear()
    jobs = [pages_only(job) for job in site_jobs(inputs, release_views(inputs))]
    stats = write_jobs(jobs, lambda paths: {}, out, reuse=False, workers=min(os.cpu_count() or 1, 8))
    print(stats.written)


if __name__ == "__main__":
    main()
