-- One row per stratum holding matched positives: what was wanted, what the pool had, what was
-- sampled, and every fallback taken, so that no under-sampling is ever silent.

with

plan as (

    select * from {{ ref('int_sampling_strata_planned') }}

),

sampled as (

    select
        sampled_for_stratum as stratum,
        count(*) as n_sampled,
        count(*) filter (where is_n2) as n_sampled_n2,
        count(*) filter (where sampling_stage = 2) as n_topped_up

    from {{ ref('int_negatives_sampled') }}
    group by sampled_for_stratum

),

joined as (

    select
        plan.*,
        coalesce(sampled.n_sampled, 0) as n_sampled,
        coalesce(sampled.n_sampled_n2, 0) as n_sampled_n2,
        coalesce(sampled.n_topped_up, 0) as n_topped_up

    from plan
    left join sampled on sampled.stratum = plan.stratum

),

final as (

    select
        stratum,
        split,
        type_bin,
        split_part(stratum, '|', 3) as nobs_z_bin,
        split_part(stratum, '|', 4) as psfsize_z_bin,
        n_positives,
        n_wanted,
        n_available_n1 + n_available_n2 as n_available,
        n_available_n1,
        n_available_n2,
        n2_quota,
        n_sampled,
        n_sampled_n2,
        n_topped_up,
        nullif(concat_ws(
            ';',
            case when n_positives_type_fallback > 0
                    then 'type_outside_bins:' || n_positives_type_fallback
            end,
            case when n2_take < n2_quota then 'n2_short:' || (n2_quota - n2_take) end,
            case when n2_take > n2_quota then 'n1_short:' || (n2_take - n2_quota) end,
            case when n_topped_up > 0 then 'short_stratum:topped_up_' || n_topped_up end,
            case when n_sampled < n_wanted then 'under_sampled:' || (n_wanted - n_sampled) end
        ), '') as fallback

    from joined

)

select * from final
order by stratum
