"""Image cutouts for the training set: HTTP, brick-coadd and synthetic sources, and the NPZ store."""
