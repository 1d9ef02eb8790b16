"""Adversarial attacks on the retrieval pipeline (seed 003): FGSM and PGD on pixels
(`gradient.py`), through a backbone and a trained model (`targets.py`), in batches with what changed
(`run.py`), and their pictures (`figures.py`); `semret attack` runs them on a stored collection
(`semret.app.attack`)."""
