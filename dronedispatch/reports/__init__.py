"""Documents built from stored data: the incident record, its map, its PDF and the evidence package.

Pure rendering from plain data; nothing here reaches the API, the runtime or the database.
"""

import logging

# WeasyPrint announces every rendering step (and its stylesheets, on import) at INFO: the service's
# log is no place for them. Set here, before any module of this package imports WeasyPrint.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
