-- Frame of suite `negatives_per_split`: per split, the N2 share of the sampled negatives in the
-- strata that met their N2 quota (no n1_short / n2_short fallback) and the negatives per matched
-- positive over the strata that record no shortfall fallback (shortfall_fallbacks), recomputed from
-- the negatives and positives marts.
with

strata as (

    select
        stratum,
        list_has_any(
            list_transform(string_split(coalesce(fallback, ''), ';'), lambda t: split_part(t, ':', 1)),
            $shortfall_fallbacks
        ) as records_shortfall,
        coalesce(fallback, '') not similar to '.*(n1_short|n2_short).*' as quota_met
    from sampling_strata

),

positive_counts as (

    select
        positives.split,
        count(*) as n_positives,
        count(*) filter (where not strata.records_shortfall) as n_positives_full
    from positives
    left join strata on strata.stratum = positives.stratum
    where positives.is_matched
    group by positives.split

),

negative_counts as (

    select
        negatives.split,
        count(*) as n_negatives,
        avg(cast(negatives.is_n2 as integer)) filter (where strata.quota_met) as n2_share,
        count(*) filter (where not strata.records_shortfall) as n_negatives_full
    from negatives
    left join strata on strata.stratum = negatives.stratum
    group by negatives.split

)

select
    coalesce(negative_counts.n2_share, 0) as n2_share,
    coalesce(positive_counts.split, negative_counts.split) as split,
    coalesce(positive_counts.n_positives, 0) as n_positives,
    coalesce(negative_counts.n_negatives, 0) as n_negatives,
    coalesce(negative_counts.n_negatives_full, 0)
    / nullif(positive_counts.n_positives_full, 0) as negatives_per_positive
from positive_counts
full outer join negative_counts on negative_counts.split = positive_counts.split
