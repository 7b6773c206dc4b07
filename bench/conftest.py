"""The baseline app runs in its own venv (bench/baseline.py); pytest's environment has no broadcaster."""
collect_ignore = ["baseline_app.py"]
