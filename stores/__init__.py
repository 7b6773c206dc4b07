"""Redis records shared by the web, the engine and the workers, without HTTP: silences and histograms."""
