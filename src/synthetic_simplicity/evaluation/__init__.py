"""Stage evaluation: Study A's per-cell accuracies and Study B's AUROC statistics."""
