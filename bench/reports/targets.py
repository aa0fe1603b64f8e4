"""The rows each section adds to the report's targets table (compare.sh's `summary.SECTION`)."""


def write_targets(path, rows):
    """rows: (measure, this run, target, met?) → one markdown table row each in path."""
    with open(path, "w", encoding="utf-8") as f:
        for name, val, target, ok in rows:
            f.write(f"| {name} | {val} | {target} | {'met' if ok else '**not met**'} |\n")
