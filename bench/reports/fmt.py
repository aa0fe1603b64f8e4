"""Number formatting shared by the reports (latencies and memory sizes)."""

US_PER_MS = 1000.0
US_PER_S = 1e6
KIB_PER_MIB = 1024


def fmt_us(us):
    """A loadgen latency: whole µs below 10 ms, else ms with one decimal."""
    return f"{us:,.0f} µs" if us < 10 * US_PER_MS else f"{us / US_PER_MS:,.1f} ms"


def fmt_lat(us):
    """A wrk latency: whole µs below 1 ms, else ms or s with two decimals (wrk's own units)."""
    if us < US_PER_MS:
        return f"{us:.0f} µs"
    return f"{us / US_PER_MS:.2f} ms" if us < US_PER_S else f"{us / US_PER_S:.2f} s"


def fmt_kib(kib):
    """A size /proc gives in KiB (a number or its text), as MiB with one decimal."""
    return f"{int(kib) / KIB_PER_MIB:.1f} MiB"
