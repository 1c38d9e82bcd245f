"""Documents built from stored data: the incident record, its map, its PDF and the evidence package.

Pure rendering from plain data; nothing here reaches the API, the runtime or the database.
"""
