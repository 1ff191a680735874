"""A synthetic DR10-south sky written as sweep Parquet files: the warehouse's embedded default data.

Why synthetic: the real DR10 sweeps are ~3e9 rows / several TB; the warehouse, its tests and its
benchmarks need a sky that *behaves* like DR10 (crossmatch, negative pools with hard confusers,
HEALPix splits, stratified sampling, cutouts, injection-recovery) and can be regenerated anywhere
in seconds, bit for bit.

Layout (as the real sweeps, DOMAIN.md): one file per 5 x 5 deg tile named by
:func:`stronglens.schema.sweep_filename`, ``SWEEP_SCHEMA`` exactly, zstd, fixed-size row groups,
only tiles that touch the footprint.  Rows are ordered brick by brick, ``objid`` ascending.

Determinism and independence of tiles
-------------------------------------
Every random quantity is derived from ``seed`` plus *where* it lives, never from the order of work:

* the number of objects in each piece ``brick x tile`` is a Poisson draw whose uniform variate is a
  counter-based hash of ``(seed, brickid, tile)`` (splitmix64), so any tile can compute the counts of
  the pieces of its bricks that lie in *neighbouring* tiles; ``objid`` of a piece starts after the
  pieces of the same brick in earlier tiles, which makes ``(release, brickid, objid)`` unique over the
  whole sky and a tile's content independent of which other tiles are requested;
* the objects of one chunk of a tile (whole brick rows, grouped by the tile's own piece counts)
  come from ``numpy.random.SeedSequence([seed, tile, first brick row])``;
* sky maps (seeing, depth, passes, dust) are sums of random plane waves on the sphere drawn once
  from the seed and evaluated on a global 0.25 deg node grid, so they are continuous across tiles;
* mask sources (bright stars, large galaxies, clusters) are drawn per tile and every tile also
  applies those of its 8 neighbours, so masks are seamless;
* lens counterparts are drawn per candidate from ``(seed, candidate list)``.

Each object lies in the tile of its own position (as real sweeps cut by RA/Dec), and inside the
bounds of its brick as :mod:`stronglens.bricks` reports them.

The ``tiles`` argument
----------------------
A list whose items are tile names (``sweep-000m010-005m005`` with or without ``.parquet``) or
compact boxes ``'RAMIN,RAMAX,DECMIN,DECMAX'`` in degrees (e.g. ``'150,160,0,5'``), which select every
footprint tile overlapping ``[RAMIN, RAMAX) x [DECMIN, DECMAX)``; ``RAMIN > RAMAX`` wraps through
RA = 0.  A named tile outside the footprint is an error.

Physical model
--------------
Every number is a field of :class:`SkyModel` (or :class:`Footprint`) whose docstring gives its source.
Magnitudes are intrinsic (extinction-corrected) AB; the catalogue fluxes are
``10**(-0.4 (m - 22.5)) * MW_TRANSMISSION`` plus noise, so ``flux / mw_transmission`` recovers the
extinction-corrected magnitude that ``mag_limit`` and the pool cut ``z < 20`` refer to.

Modules: :mod:`.footprint` (tiles, bricks, selection), :mod:`.model` (:class:`SkyModel` and its
draws), :mod:`.counterparts` (lens galaxies of published candidates), :mod:`.masks` (bright stars,
large galaxies, clusters), :mod:`.chunks` (rows of one tile), :mod:`.writer` (Parquet files and
:func:`generate_sky`).
"""

from stronglens.synth.counterparts import DEFAULT_CANDIDATES_CSV
from stronglens.synth.footprint import (
    Footprint,
    Tile,
    footprint_area,
    footprint_bricks,
    footprint_tiles,
    icrs_to_galactic,
    parse_tile,
    select_tiles,
)
from stronglens.synth.model import DEFAULT_DENSITY, DEFAULT_MAG_LIMIT, SkyModel
from stronglens.synth.writer import SynthReport, generate_sky

__all__ = [
    "DEFAULT_CANDIDATES_CSV",
    "DEFAULT_DENSITY",
    "DEFAULT_MAG_LIMIT",
    "Footprint",
    "SkyModel",
    "SynthReport",
    "Tile",
    "footprint_area",
    "footprint_bricks",
    "footprint_tiles",
    "generate_sky",
    "icrs_to_galactic",
    "parse_tile",
    "select_tiles",
]
