-- Tier-A/B candidates (grades A and B) with their nearest DR10 counterpart
-- (int_lens_candidates_nearest) and the counterpart's photometry and observing conditions.

with

candidates as (

    select * from {{ ref('int_lens_candidates_deduplicated') }}
    where grade in ('A', 'B')

),

nearest as (

    select * from {{ ref('int_lens_candidates_nearest') }}

),

sweeps as (

    select * from {{ ref('stg_dr10__sweeps') }}

),

final as (

    select
        candidates.candidate_id,
        candidates.name,
        candidates.ra,
        candidates.dec,
        candidates.name_ra,
        candidates.name_dec,
        candidates.name_offset_arcsec,
        candidates.grade as tier,
        candidates.catalogs,
        candidates.n_listings,
        nearest.galaxy_id is not null as is_matched,
        nearest.sep_arcsec,
        nearest.matched_position,
        sweeps.galaxy_id,
        sweeps.release,
        sweeps.brickid,
        sweeps.objid,
        sweeps.ra as dr10_ra,
        sweeps.dec as dr10_dec,
        sweeps.type,
        sweeps.mag_g_dered,
        sweeps.mag_r_dered,
        sweeps.mag_z_dered,
        sweeps.g_minus_r,
        sweeps.r_minus_z,
        sweeps.shape_r,
        sweeps.nobs_z,
        sweeps.psfsize_z,
        -- The one HEALPix pixel of a positive (int_healpix_splits and int_positives_stratified read
        -- it): the DR10 counterpart's position when matched (the cutout is centred there), else
        -- the candidate's.
        {{ healpix_nest('coalesce(sweeps.ra, candidates.ra)', 'coalesce(sweeps.dec, candidates.dec)',
                        var('healpix_nside')) }} as healpix

    from candidates
    left join nearest on nearest.candidate_id = candidates.candidate_id
    left join sweeps on sweeps.galaxy_id = nearest.galaxy_id

)

select * from final
