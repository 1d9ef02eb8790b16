"""Print the Markdown tables of docs/results.md from the results.json files of `semret eval` runs.

uv run python scripts/results_markdown.py REPORT_DIR [REPORT_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = ("mAP", "mAHP", "P", "balanced accuracy")


def tables(report: Path) -> str:
    document = json.loads((report / "results.json").read_text(encoding="utf-8"))
    summary, methods = document["summary"], document["methods"]
    ks = [str(k) for k in sorted(document["config"]["ks"])]
    backbone = summary["backbone"]
    lines = [
        f"### {summary['dataset']}, {backbone['name']} ({backbone['weights']} weights, {backbone['input_size']} px)",
        "",
        f"{summary['queries']:,} queries, {summary['database_images']:,} database images, "
        f"{summary['train_images']:,} train images; {summary['protocol']}; store: {summary['database_backend']}.",
        "",
    ]
    for metric in METRICS:
        lines += [f"{metric}@k:", "", "| method | " + " | ".join(f"@{k}" for k in ks) + " |"]
        lines.append("|---|" + "---:|" * len(ks))
        for method, values in methods.items():
            row = values["metrics"][metric]
            lines.append(f"| {method} | " + " | ".join(f"{row[k]:.4f}" for k in ks) + " |")
        lines.append("")
    lines += ["| method | build s | query ms (mean) | p50 | p99 |", "|---|---:|---:|---:|---:|"]
    for method, values in methods.items():
        t = values["timing"]
        lines.append(
            f"| {method} | {t['build_seconds']:.2f} | {t['query_ms_mean']:.3f} | {t['query_ms_p50']:.3f} | "
            f"{t['query_ms_p99']:.3f} |"
        )
    if "iwan" in methods:
        accuracy = methods["iwan"]["details"]["classifier"]["query_accuracy"]
        lines += ["", f"IWAN's word classifier: accuracy {accuracy:.4f} on the queries."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print("\n".join(tables(Path(argument)) for argument in sys.argv[1:]))
