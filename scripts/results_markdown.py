"""Print the Markdown tables of docs/results.md from `semret eval` report folders: a main table
(mAP@250, mAHP@250, P@10, mAP@10 and query time per method), then each run's tables, a table per
convention and metric (mean ± std where the run had several seeds), read with
`semret.evaluation.load_results` from each folder's results.csv.

uv run python scripts/results_markdown.py REPORT_DIR [REPORT_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from semret.evaluation import load_results
from semret.evaluation.conventions import CONVENTIONS, degenerate
from semret.evaluation.results_table import format_value, markdown_grid


def weights_label(weights: str) -> str:
    """'imagenet' and 'none' as they are; a weights file (a backbone trained by the run) as 'trained'."""
    return weights if weights in ("imagenet", "none") else "trained"


def _document(report: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((report / "results.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def heading(report: Path) -> str:
    document = _document(report)
    summary, backbone = document["summary"], document["summary"]["backbone"]
    seeds = summary.get("seeds", [document["config"]["seed"]])
    return (
        f"### {report.name}: {summary['dataset']}, {backbone['name']} "
        f"({weights_label(backbone['weights'])} weights, {backbone['input_size']} px)\n\n"
        f"{summary['queries']:,} queries, {summary['database_images']:,} database images, "
        f"{summary['train_images']:,} train images; {summary['protocol']}; store: {summary['database_backend']}; "
        f"seeds {', '.join(map(str, seeds))}.\n"
    )


def tables(report: Path) -> str:
    frame = load_results(report)
    lines = [heading(report)]
    for convention in dict.fromkeys(frame["convention"]):
        for metric in CONVENTIONS[convention].metrics:
            if metric not in set(frame[frame["convention"] == convention]["metric"]):
                continue
            in_database = _document(report)["config"]["protocol"] == "test"
            notes = [
                f"@{k}: {n}"
                for k in sorted(set(frame["k"]))
                if (n := degenerate(convention, metric, int(k), queries_in_database=in_database))
            ]
            lines += [f"{metric}@k ({convention}):", "", markdown_grid(frame, convention, metric), ""]
            if notes:
                lines += ["; ".join(notes), ""]
    timings = frame.drop_duplicates("method")
    lines += ["| method | build s | query ms (mean) | p50 | p99 |", "|---|---:|---:|---:|---:|"]
    for row in timings.itertuples():
        lines.append(
            f"| {row.method} | {row.build_seconds:.2f} | {row.query_ms_mean:.3f} | {row.query_ms_p50:.3f} | "
            f"{row.query_ms_p99:.3f} |"
        )
    methods = _document(report)["methods"]
    classifier = methods.get("iwan", {}).get("details", {}).get("classifier", {})
    if "query_accuracy" in classifier:
        lines += [
            "",
            f"iwan's word classifier (first seed): accuracy {classifier['query_accuracy']:.4f} on the queries.",
        ]
    return "\n".join(lines) + "\n"


def main_table(reports: list[Path]) -> str:
    lines = [
        "| run | method | mAP@250 | mAHP@250 | P@10 | mAP@10 | query ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for report in reports:
        frame = load_results(report)
        default = frame[frame["convention"] == frame["convention"].iloc[0]]
        for method in dict.fromkeys(default["method"]):
            rows = default[default["method"] == method]

            def cell(metric: str, k: int, rows: object = rows) -> str:
                found = rows[(rows["metric"] == metric) & (rows["k"] == k)]  # type: ignore[index]
                if found.empty:
                    return "-"
                row = found.iloc[0]
                return format_value(row["value"], row["std"], int(row["seeds"]))

            lines.append(
                f"| {report.name} | {method} | {cell('mAP', 250)} | {cell('mAHP', 250)} | {cell('P', 10)} | "
                f"{cell('mAP', 10)} | {rows['query_ms_mean'].iloc[0]:.2f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    reports = [Path(argument) for argument in sys.argv[1:]]
    print(main_table(reports))
    print("\n".join(tables(report) for report in reports))
