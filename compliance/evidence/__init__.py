"""Verdicts per commitment and the files every run writes (evidence tables, monthly records, the manifest)."""
