-- One row per stratum holding matched positives: what was wanted, what the pool had, what was
-- sampled, where N1 top-ups came from and every fallback taken, so that no under-sampling is ever
-- silent. Strata whose positives are all excluded from training (e.g. PSF counterparts) appear with
-- n_wanted = 0 and the reason in `fallback`.

with

plan as (

    select * from {{ ref('int_sampling_strata_planned') }}

),

sampled_rows as (

    select * from {{ ref('int_negatives_sampled') }}

),

sampled as (

    select
        sampled_for_stratum as stratum,
        count(*) as n_sampled,
        count(*) filter (where is_n2) as n_sampled_n2,
        count(*) filter (where sampling_stage = 2) as n_topped_up

    from sampled_rows
    group by sampled_for_stratum

),

donors as (

    select
        sampled_for_stratum as stratum,
        stratum as donor_stratum,
        count(*) as n
    from sampled_rows
    where sampling_stage = 2
    group by sampled_for_stratum, stratum

),

donor_lists as (

    select
        stratum,
        {{ string_agg_ordered("donor_stratum || '=' || n", 'donor_stratum', ';') }} as topped_up_from
    from donors
    group by stratum

),

joined as (

    select
        plan.*,
        coalesce(sampled.n_sampled, 0) as n_sampled,
        coalesce(sampled.n_sampled_n2, 0) as n_sampled_n2,
        coalesce(sampled.n_topped_up, 0) as n_topped_up,
        donor_lists.topped_up_from

    from plan
    left join sampled on sampled.stratum = plan.stratum
    left join donor_lists on donor_lists.stratum = plan.stratum

),

final as (

    select
        stratum,
        split,
        type_bin,
        {%- for dim in ['nobs_z', 'psfsize_z', 'mag_z_dered'] %}
            {%- if dim in stratify_dimensions() %}
                regexp_extract(stratum, '[|]{{ dim }}:([^|]*)', 1) as {{ dim }}_bin,
            {%- else %}
                cast(null as string) as {{ dim }}_bin,
            {%- endif %}
        {%- endfor %}
        n_positives,
        n_positives_excluded,
        n_wanted,
        n_available_n1 + n_available_n2 as n_available,
        n_available_n1,
        n_available_n2,
        n2_quota,
        n_sampled,
        n_sampled_n2,
        n_sampled_n2 / nullif(n_sampled, 0) as n2_share,
        n_topped_up,
        topped_up_from,
        nullif(concat_ws(
            ';',
            case when n_positives_excluded > 0
                    then 'positives_excluded:' || n_positives_excluded || ':' || exclusion_reasons
            end,
            case when n_positives_type_fallback > 0
                    then 'type_outside_bins:' || n_positives_type_fallback
            end,
            case when n2_take < n2_quota then 'n2_short:' || (n2_quota - n2_take) end,
            case when n_topped_up > 0 then 'n1_topped_up:' || n_topped_up end,
            case when n_sampled < n_wanted then 'under_sampled:' || (n_wanted - n_sampled) end
        ), '') as fallback

    from joined

)

select * from final
order by stratum
