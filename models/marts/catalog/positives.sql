-- One row per Tier-A/B lens candidate (after merging duplicates across lists), with its DR10
-- counterpart (null when none lies within match_radius_arcsec of its catalogue or name position),
-- HEALPix pixel, split and stratum, and whether it is used for training (is_training_eligible;
-- exclusion_reason says why not).

with

positives as (

    select * from {{ ref('int_positives_stratified') }}

),

final as (

    select
        candidate_id,
        name,
        ra,
        dec,
        name_ra,
        name_dec,
        name_offset_arcsec,
        tier,
        catalogs,
        n_listings,
        is_matched,
        sep_arcsec,
        matched_position,
        release,
        brickid,
        objid,
        galaxy_id,
        dr10_ra,
        dr10_dec,
        type,
        type_bin,
        type_outside_bins,
        is_training_eligible,
        exclusion_reason,
        mag_g_dered,
        mag_r_dered,
        mag_z_dered,
        g_minus_r,
        r_minus_z,
        shape_r,
        nobs_z,
        psfsize_z,
        healpix,
        split,
        stratum

    from positives

)

select * from final
order by candidate_id
