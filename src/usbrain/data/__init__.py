"""Data layer: NIfTI I/O with geometry, preprocessing to model space, datasets, built-in cohort."""
