-- What the cutout models fetch, one row per sample: the selection of int_cutout_samples_selected
-- (matched positives, a deterministic subset of cutout_max_positives, plus their photometric
-- nearest neighbours among their strata's negatives) with the content-keyed store path
-- <cutout_params_key>/<sample_id>.npz, the Legacy Survey URL and the Tractor parameters a source
-- needs.

with

selected as (

    select * from {{ ref('int_cutout_samples_selected') }}

),

final as (

    select
        sample_id,
        galaxy_id,
        label,
        is_lens,
        tier,
        n2_category,
        split,
        stratum,
        match_distance,
        in_negatives_sample,
        ra,
        dec,
        type,
        shape_r,
        shape_e1,
        shape_e2,
        sersic,
        {%- for band in ['g', 'r', 'z'] %}
            flux_{{ band }},
            psfsize_{{ band }},
            psfdepth_{{ band }},
        {%- endfor %}
        flux_w1,
        flux_w2,
        nobs_z,
        cutout_url,
        -- keyed by content (the render/fetch vars of this build), never by split
        {{ sql_string(cutout_params_key() ~ '/') }} || sample_id || '.npz' as path

    from selected

)

select * from final
order by sample_id
