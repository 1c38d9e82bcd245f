"""API routers: parse, call a service function, map the result."""
