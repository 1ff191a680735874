-- The sampling plan: for every stratum holding matched positives, how many negatives are wanted
-- (neg_pos_ratio x training-eligible positives), how many the pool has (N1 and N2), and how many to
-- take from each class. N2 takes at most its quota (n2_fraction of the wanted count) and never
-- more: where the pool lacks N2, N1 fills the gap (recorded 'n2_short'); where it lacks N1, the
-- stratum is topped up with N1 from neighbouring bins of the same split and type in
-- int_negatives_sampled (n1_deficit), and what is still missing is a recorded shortfall.
-- Strata of positives that are not training-eligible (e.g. PSF counterparts) are listed with
-- n_wanted = 0 so that sampling_strata shows them.
-- `threshold` (in int_negatives_sampled) bounds the sampling hash so that only ~take rows per class
-- are ever ranked: the pool is never sorted.

with

positives as (

    select * from {{ ref('int_positives_stratified') }}
    where is_matched

),

pool as (

    select
        stratum,
        is_n2
    from {{ ref('int_negative_pool') }}

),

wanted as (

    select
        stratum,
        any_value(split) as split,
        any_value(type_bin) as type_bin,
        any_value(bin_indices) as bin_indices,
        count(*) filter (where is_training_eligible) as n_positives,
        count(*) filter (where is_training_eligible and type_outside_bins) as n_positives_type_fallback,
        count(*) filter (where not is_training_eligible) as n_positives_excluded,
        {{ string_agg_distinct('exclusion_reason', ',') }} as exclusion_reasons,
        count(*) filter (where is_training_eligible) * {{ var('neg_pos_ratio') }} as n_wanted

    from positives
    group by stratum

),

available as (

    select
        stratum,
        count(*) filter (where not is_n2) as n_available_n1,
        count(*) filter (where is_n2) as n_available_n2

    from pool
    group by stratum

),

quotas as (

    select
        wanted.*,
        coalesce(available.n_available_n1, 0) as n_available_n1,
        coalesce(available.n_available_n2, 0) as n_available_n2,
        cast(round(wanted.n_wanted * {{ var('n2_fraction') }}) as bigint) as n2_quota

    from wanted
    left join available on available.stratum = wanted.stratum

),

takes as (

    select
        *,
        least(n2_quota, n_available_n2) as n2_take,
        n_wanted - least(n2_quota, n_available_n2) as n1_quota

    from quotas

),

final as (

    select
        stratum,
        split,
        type_bin,
        bin_indices,
        n_positives,
        n_positives_type_fallback,
        n_positives_excluded,
        exclusion_reasons,
        n_wanted,
        n_available_n1,
        n_available_n2,
        n2_quota,
        n2_take,
        least(n1_quota, n_available_n1) as n1_take,
        n1_quota - least(n1_quota, n_available_n1) as n1_deficit

    from takes

)

select * from final
