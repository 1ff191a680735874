-- The sampled negatives: neg_pos_ratio per training-eligible matched positive in every stratum, N2
-- at most n2_fraction of them (see sampling_strata for every top-up and shortfall). One boolean
-- column per known N2 category (false where the active preset does not use it).

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
        type_bin,
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
        {%- for category in n2_known_categories() %}
            {{ category }},
        {%- endfor %}
        healpix,
        split,
        sampled_for_stratum as stratum,
        stratum as native_stratum,
        sampling_stage,
        topup_distance,
        sample_hash

    from sampled

)

select * from final
order by galaxy_id
