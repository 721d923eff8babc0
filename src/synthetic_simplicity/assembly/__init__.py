"""Stage assembly: training and test sets as manifests (Study A's alpha mixes, Study B's supplementation)."""
