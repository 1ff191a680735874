-- Frame of suite `negatives_per_split`: per split, the N2 share of all sampled negatives (every
-- stratum: a stratum short of N1 must not be filled with N2 unnoticed) and the negatives per
-- training-eligible positive over the strata that record no shortfall fallback
-- (shortfall_fallbacks), recomputed from the negatives and positives marts.
with

strata as (

    select
        stratum,
        list_has_any(
            list_transform(string_split(coalesce(fallback, ''), ';'), lambda t: split_part(t, ':', 1)),
            $shortfall_fallbacks
        ) as records_shortfall
    from sampling_strata

),

positive_counts as (

    select
        positives.split,
        count(*) as n_positives,
        count(*) filter (where not strata.records_shortfall) as n_positives_full
    from positives
    left join strata on strata.stratum = positives.stratum
    where positives.is_training_eligible
    group by positives.split

),

negative_counts as (

    select
        negatives.split,
        count(*) as n_negatives,
        avg(cast(negatives.is_n2 as integer)) as n2_share,
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
