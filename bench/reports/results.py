"""Putting compare.sh's report into bench/RESULTS.md, between its markers."""
import os

BEGIN, END = "<!-- compare.sh:begin -->", "<!-- compare.sh:end -->"
# What a RESULTS.md that does not exist yet starts with.
NEW_FILE = "# Benchmark results\n"


def splice(path, report):
    """Replace the text between the markers in path with report (appended, markers and all,
    if the markers are not both there)."""
    # Headings move down two levels so the report nests under RESULTS.md's own sections.
    body = "\n".join(("##" + line if line.startswith("#") else line) for line in report.splitlines())
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    else:
        text = NEW_FILE
    block = f"{BEGIN}\n{body}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
