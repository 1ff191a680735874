"""The DR10 Tractor sweep schema as the warehouse stores it (Parquet, lower-case names).

Real sweeps are FITS with upper-case names and big-endian dtypes; ``convert-sweeps`` lowers the
names and stores native dtypes, and ``synth`` writes exactly this schema, so every downstream
model sees one layout whatever the origin of the rows.  The columns the dbt models *need* (and the
types they accept) live in ``seeds/sweep_required_columns.csv``; a test keeps the two in step.
"""

from __future__ import annotations

import pyarrow as pa

#: DR10 sweep bands.  DECam (DR10 south) adds i to the g, r, z of DR9.
OPTICAL_BANDS: tuple[str, ...] = ("g", "r", "i", "z")
WISE_BANDS: tuple[str, ...] = ("w1", "w2", "w3", "w4")

#: Release codes: 10000 = DR10, 10002 = DR10.1 (DOMAIN.md).
RELEASE_DR10 = 10000

#: MASKBITS bit numbers used by the warehouse (legacysurvey.org/dr10/bitmasks).
MASKBITS = {
    "NPRIMARY": 0,
    "BRIGHT": 1,
    "SATUR_G": 2,
    "SATUR_R": 3,
    "SATUR_Z": 4,
    "ALLMASK_G": 5,
    "ALLMASK_R": 6,
    "ALLMASK_Z": 7,
    "WISEM1": 8,
    "WISEM2": 9,
    "BAILOUT": 10,
    "MEDIUM": 11,
    "GALAXY": 12,
    "CLUSTER": 13,
    "SATUR_I": 14,
    "ALLMASK_I": 15,
    "SUB_BLOB": 16,
}

TRACTOR_TYPES: tuple[str, ...] = ("PSF", "REX", "DEV", "EXP", "SER", "DUP")


def _fields() -> list[pa.Field]:
    f32, i16 = pa.float32(), pa.int16()
    fields = [
        pa.field("release", i16),
        pa.field("brickid", pa.int32()),
        pa.field("brickname", pa.string()),
        pa.field("objid", pa.int32()),
        pa.field("type", pa.string()),
        pa.field("ra", pa.float64()),
        pa.field("dec", pa.float64()),
        pa.field("ra_ivar", f32),
        pa.field("dec_ivar", f32),
        pa.field("ebv", f32),
    ]
    all_bands = OPTICAL_BANDS + WISE_BANDS
    fields += [pa.field(f"flux_{b}", f32) for b in all_bands]
    fields += [pa.field(f"flux_ivar_{b}", f32) for b in all_bands]
    fields += [pa.field(f"mw_transmission_{b}", f32) for b in all_bands]
    fields += [pa.field(f"nobs_{b}", i16) for b in OPTICAL_BANDS]
    fields += [pa.field(f"anymask_{b}", i16) for b in OPTICAL_BANDS]
    fields += [pa.field(f"allmask_{b}", i16) for b in OPTICAL_BANDS]
    fields += [pa.field(f"fracflux_{b}", f32) for b in OPTICAL_BANDS]
    fields += [pa.field(f"fracmasked_{b}", f32) for b in OPTICAL_BANDS]
    fields += [pa.field(f"fracin_{b}", f32) for b in OPTICAL_BANDS]
    fields += [pa.field(f"psfsize_{b}", f32) for b in OPTICAL_BANDS]
    fields += [pa.field(f"psfdepth_{b}", f32) for b in (*OPTICAL_BANDS, "w1", "w2")]
    fields += [pa.field(f"galdepth_{b}", f32) for b in OPTICAL_BANDS]
    fields += [pa.field(f"fiberflux_{b}", f32) for b in OPTICAL_BANDS]
    for name in ("shape_r", "shape_e1", "shape_e2", "sersic"):
        fields += [pa.field(name, f32), pa.field(f"{name}_ivar", f32)]
    fields += [
        pa.field("maskbits", pa.int32()),
        pa.field("fitbits", i16),
        pa.field("ref_cat", pa.string()),
        pa.field("ref_id", pa.int64()),
    ]
    return fields


#: The full schema ``synth`` writes: a superset of what the models need.
SWEEP_SCHEMA: pa.Schema = pa.schema(_fields())


def sweep_filename(ra_min: int, dec_min: int, ra_max: int, dec_max: int, suffix: str = "parquet") -> str:
    """Name a sweep tile like DR10 does, e.g. ``sweep-000m010-005m005.parquet``.

    RA is three digits; Dec is ``p``/``m`` for the sign followed by three digits.
    """

    def dec_part(d: int) -> str:
        return f"{'m' if d < 0 else 'p'}{abs(d):03d}"

    return f"sweep-{ra_min:03d}{dec_part(dec_min)}-{ra_max:03d}{dec_part(dec_max)}.{suffix}"
