"""Adapters to field devices other than vehicles and cameras (docks and their weather stations)."""
