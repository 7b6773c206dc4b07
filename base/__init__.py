"""The ground floor: the catalog, configuration, Redis key names and the small helpers every layer shares."""
