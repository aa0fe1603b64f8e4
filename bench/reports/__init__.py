"""The reports of the bench/ scripts, one module per report section or input format.

The shell scripts measure and leave raw files in their temp dir; these modules turn those
files into the markdown the scripts print. `bench/report.py` is the command line over them.
"""
