"""Injection-recovery selection function of the lens finder (issue 12).

Simulated lensed arcs (SIE + external shear, Sersic source) are rendered in torch, added to real
test-split negative cutouts binned by their own seeing and depth over a theta_E x PSF x depth grid,
scored with the trained :class:`~stronglens.training.finder.Finder`, and turned into completeness
with intervals (:mod:`.stats`), a realism probe (:mod:`.probe`) and reports (:mod:`.reports`).
"""
