"""Synthetic sample exports for the demo and the tests (``compliance-report generate``)."""
