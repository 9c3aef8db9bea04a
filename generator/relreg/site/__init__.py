"""From the model to the site's files: the plan and its jobs, the JSON API, the HTML pages and notes,
the device documents, the serving policy and the atomic writer."""
