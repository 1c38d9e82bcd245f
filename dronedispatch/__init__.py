"""dronedispatch: drone dispatch for smart-city operations centres."""
