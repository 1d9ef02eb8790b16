"""Print the Markdown tables of docs/results.md from the results.json files of `semret eval` runs.

uv run python scripts/results_markdown.py REPORT_DIR [REPORT_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = ("mAP", "mAHP", "P", "HP", "balanced accuracy")


def weights_label(weights: str) -> str:
    """'imagenet' and 'none' as they are; a weights file (a backbone trained by the run) as 'trained'."""
    return weights if weights in ("imagenet", "none") else "trained"


def tables(report: Path) -> str:
    document = json.loads((report / "results.json").read_text(encoding="utf-8"))
    summary, methods = document["summary"], document["methods"]
    ks = [str(k) for k in sorted(document["config"]["ks"])]
    backbone = summary["backbone"]
    lines = [
        f"### {summary['dataset']}, {backbone['name']} "
        f"({weights_label(backbone['weights'])} weights, {backbone['input_size']} px)",
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


def main_table(reports: list[Path]) -> str:
    lines = [
        "| backbone | method | mAP@250 | mAHP@250 | P@10 | mAP@10 | query ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for report in reports:
        document = json.loads((report / "results.json").read_text(encoding="utf-8"))
        backbone = document["summary"]["backbone"]
        name = f"{backbone['name']} ({weights_label(backbone['weights'])}, {backbone['input_size']} px)"
        for method, values in document["methods"].items():
            m = values["metrics"]
            lines.append(
                f"| {name} | {method} | {m['mAP']['250']:.4f} | {m['mAHP']['250']:.4f} | {m['P']['10']:.4f} | "
                f"{m['mAP']['10']:.4f} | {values['timing']['query_ms_mean']:.2f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    reports = [Path(argument) for argument in sys.argv[1:]]
    print(main_table(reports))
    print("\n".join(tables(report) for report in reports))
