"""Evaluation: retrieval metrics (P@k, mAP@k, mAHP@k, balanced accuracy), batch runs, tables and plots."""
