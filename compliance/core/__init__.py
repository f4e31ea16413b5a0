"""The bottom layer: the SQL toolkit, files and hashes, timings. It imports nothing else of the package."""
