"""Autobahn|Testsuite verdicts: wstest's index.json to a summary line, each case that is not
clean, and exit status 1 if any failed.

    python bench/autobahn/verdicts.py bench/autobahn/reports/servers/index.json

run.sh runs it with the wstest virtualenv's Python 2.7 (wstest's own), so it stays valid
Python 2.7 as well as 3.
"""
import json
import sys

AGENT = "httpws-echo"  # the server's name in run.sh's spec.json
ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
# Closing-handshake verdicts that pass; an unclean or wrong-code close is a failure too.
CLOSE_PASSES = ("OK", "INFORMATIONAL", "UNIMPLEMENTED")


def case_key(case):
    """Case "9.10.2" as [9, 10, 2], so that cases sort as numbers."""
    return [int(part) for part in case.split(".")]


def main(index_json):
    with open(index_json) as f:
        cases = json.load(f)[AGENT]
    counts = dict.fromkeys(ORDER, 0)
    failed = 0
    for case in sorted(cases, key=case_key):
        r = cases[case]
        counts[r["behavior"]] = counts.get(r["behavior"], 0) + 1
        # The closing handshake is judged apart from the case itself.
        bad = r["behavior"] == "FAILED" or r["behaviorClose"] not in CLOSE_PASSES
        failed += bad
        if bad or r["behavior"] != "OK" or r["behaviorClose"] != "OK":
            print("  %-8s %-13s close: %s" % (case, r["behavior"], r["behaviorClose"]))
    print("autobahn: %d cases: %s" % (len(cases), ", ".join(
        "%s %d" % (b, counts[b]) for b in ORDER + sorted(set(counts) - set(ORDER)))))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
