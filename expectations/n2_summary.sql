-- Frame of suite `n2_summary`: the mart as built, with each split's N2 share over the strata that
-- met their n2_fraction quota once per split (on its N1 row; null on the others) so that an
-- out-of-band split is reported once. (Strata that ran out of N1 galaxies are filled with N2 ones and
-- record n1_short in sampling_strata; their share says more about the pool than about the sampler.)
select
    split,
    category,
    is_n2,
    n_negatives,
    share,
    n2_share_of_split,
    n2_share_quota_strata,
    case when category = 'N1' then coalesce(n2_share_quota_strata, 0) end as split_n2_share
from n2_summary
