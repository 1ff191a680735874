-- The sampled negatives: neg_pos_ratio per matched positive in every stratum, with the N2 share
-- n2_fraction inside each stratum (see sampling_strata for every fallback taken).

with

sampled as (

    select * from {{ ref('int_negatives_sampled') }}

),

final as (

    select
        galaxy_id,
        release,
        brickid,
        objid,
        ra,
        dec,
        type,
        mag_r_dered,
        mag_z_dered,
        g_minus_r,
        shape_r,
        sersic,
        ellipticity,
        nobs_z,
        psfsize_z,
        n2_category,
        is_n2,
        {%- for category in var('n2_priority') %}
            {{ category }},
        {%- endfor %}
        healpix,
        split,
        sampled_for_stratum as stratum,
        stratum as native_stratum,
        sampling_stage,
        sample_hash

    from sampled

)

select * from final
order by galaxy_id
