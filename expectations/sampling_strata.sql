-- Frame of suite `sampling_strata`: the mart plus the shortfall its fallback records (shortfall
-- fallback entries 'name:count') and the differences the suite expects to be zero;
-- sampled_minus_wanted_if_no_shortfall is null where a shortfall is recorded.
with

parsed as (

    select
        *,
        list_filter(
            string_split(coalesce(fallback, ''), ';'),
            lambda t: list_contains($shortfall_fallbacks, split_part(t, ':', 1))
        ) as shortfall_entries
    from sampling_strata

)

select
    stratum,
    split,
    n_positives,
    n_wanted,
    n_sampled,
    fallback,
    len(shortfall_entries) > 0 as records_shortfall,
    n_wanted - $neg_pos_ratio * n_positives as wanted_minus_ratio_times_positives,
    n_sampled - n_wanted as sampled_minus_wanted,
    case when len(shortfall_entries) = 0 then n_sampled - n_wanted end as sampled_minus_wanted_if_no_shortfall,
    n_wanted - n_sampled - coalesce(
        list_sum(list_transform(shortfall_entries, lambda t: cast(split_part(t, ':', 2) as bigint))), 0
    ) as unrecorded_shortfall
from parsed
