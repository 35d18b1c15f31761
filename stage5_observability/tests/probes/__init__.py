"""Probes: small programs a test runs inside the implementation's environment (`RunningService.run_python`)."""
