"""The per-process lines the shell writes: `name=value ...` (CPU ticks, RSS or RSS:peak in KiB)."""


def kv_pairs(text):
    """`a=1 b=2:3` → {"a": "1", "b": "2:3"} (values stay text)."""
    return dict(kv.split("=") for kv in text.split())


def rss_and_peak(text):
    """`name=RSS:HWM ...` (KiB, from VmRSS and VmHWM) → {name: (rss, hwm)}."""
    out = {}
    for name, v in kv_pairs(text).items():
        rss, hwm = v.split(":")
        out[name] = (int(rss), int(hwm))
    return out


def cpu_seconds(before, after, clk_tck):
    """Two `name=ticks ...` lines (utime + stime) → {name: CPU seconds between them}."""
    a, b = kv_pairs(before), kv_pairs(after)
    return {k: (int(b[k]) - int(a[k])) / clk_tck for k in a}
