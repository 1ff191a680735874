-- The sampling plan: for every stratum holding matched positives, how many negatives are wanted
-- (neg_pos_ratio x positives), how many the pool has (N1 and N2), and how many to take from each
-- class so that N2 makes up n2_fraction of the stratum. A class that runs short is filled from the
-- other class (fallback 'n2_short' / 'n1_short'); a stratum that runs short overall is topped up from
-- its split x type bin in int_negatives_sampled (fallback 'short_stratum').
-- `threshold` bounds the sampling hash so that only ~take rows per class are ever ranked: the
-- pool is never sorted. It keeps take + 5 sqrt(take) + 20 rows on average (a shortfall is
-- detected and repaired downstream, so the result never depends on it).

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
        count(*) as n_positives,
        count(*) filter (where type_outside_bins) as n_positives_type_fallback,
        count(*) * {{ var('neg_pos_ratio') }} as n_wanted

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

first_pass as (

    select
        *,
        least(n2_quota, n_available_n2) as n2_first,
        least(n_wanted - least(n2_quota, n_available_n2), n_available_n1) as n1_take

    from quotas

),

final as (

    select
        stratum,
        split,
        type_bin,
        n_positives,
        n_positives_type_fallback,
        n_wanted,
        n_available_n1,
        n_available_n2,
        n2_quota,
        n1_take,
        -- N2 fills what N1 could not provide (never more than the pool has).
        least(n_available_n2, n_wanted - n1_take) as n2_take

    from first_pass

)

select * from final
